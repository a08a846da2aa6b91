"""Local NVIDIA Triton on CPU through PyTriton (the real tritonserver binary, Python backend).

Two kinds of models, one server:
- `tiny_linear`, a seeded torch model bound through PyTriton, which the tests use to prove the
  path end to end (tritonclient.grpc -> Triton -> torch);
- the longtail model repository in the object store (`--model-repository s3://...`, Triton's own
  S3 support, credentials from AWS_* variables), in explicit model-control mode: nothing of it is
  loaded until a client (the inference service) calls `load_model` with the versions it wants,
  exactly as the stock Triton image does in production (docs/inference.md).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

TINY_MODEL = "tiny_linear"
TINY_INPUTS, TINY_OUTPUTS = 4, 2


def tiny_model():
    """Deterministic weights, so a test can compute the expected answer locally."""
    import torch

    torch.manual_seed(1234)
    return torch.nn.Linear(TINY_INPUTS, TINY_OUTPUTS).eval()


def main(argv: list[str] | None = None) -> None:
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc-port", type=int, default=18001)
    parser.add_argument("--http-port", type=int, default=18000)
    parser.add_argument("--metrics-port", type=int, default=18002)
    parser.add_argument("--model-repository", default="", help="e.g. s3://http://127.0.0.1:19000/longtail/models (explicit model control)")
    args = parser.parse_args(argv)
    import torch

    model = tiny_model()

    @batch
    def infer(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"y": model(torch.from_numpy(x)).numpy()}

    # SIGTERM (from `longtail infra down`) leaves through the context manager, which stops Triton.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # PyTriton loads its bound models through load_model with inline files, so its own model store
    # only needs to exist; it stays first so Triton starts even while the object store is down.
    scratch = Path(tempfile.mkdtemp(prefix="longtail-triton-"))
    workspace = scratch / "workspace"
    repositories = [str(workspace / "model-store")] + ([args.model_repository] if args.model_repository else [])
    config = TritonConfig(
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        http_address="127.0.0.1",
        http_port=args.http_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        exit_timeout_secs=5,
        exit_on_error=False,  # a broken model in the repository must not take the server down
        model_repository=repositories,
    )
    # Loopback only: the model-control API stays open so the inference service can load versions
    # (PyTriton would otherwise guard it with a token only it knows).
    triton = Triton(config=config, workspace=workspace, security_config=TritonSecurityConfig(restricted_endpoints=[]))
    # PyTriton starts Triton with --load-model=*, which would load every model of the repository
    # at start-up; explicit control means the service decides, so drop it (PyTriton binds its own
    # models after start-up through load_model anyway).
    triton._triton_server_config["load-model"] = None
    try:
        with triton:
            triton.bind(
                model_name=TINY_MODEL,
                infer_func=infer,
                inputs=[Tensor(name="x", dtype=np.float32, shape=(TINY_INPUTS,))],
                outputs=[Tensor(name="y", dtype=np.float32, shape=(TINY_OUTPUTS,))],
                config=ModelConfig(max_batch_size=64),
            )
            triton.serve()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
