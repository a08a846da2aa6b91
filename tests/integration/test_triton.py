"""A tiny torch model served by the real Triton server (PyTriton, CPU) answers tritonclient.grpc."""

import numpy as np
import torch
import tritonclient.grpc as triton_grpc

from longtail_dev.infra.triton_server import TINY_MODEL, tiny_model


def test_tiny_torch_model_answers_a_grpc_inference_call(triton):
    client = triton_grpc.InferenceServerClient(triton)
    assert client.is_model_ready(TINY_MODEL)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    inp = triton_grpc.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = client.infer(TINY_MODEL, [inp], outputs=[triton_grpc.InferRequestedOutput("y")]).as_numpy("y")
    with torch.no_grad():
        want = tiny_model()(torch.from_numpy(x)).numpy()
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got, want, atol=1e-5)
    client.close()
