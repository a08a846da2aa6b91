"""Local NVIDIA Triton on CPU through PyTriton (the real tritonserver binary, Python backend).

Serves `tiny_linear`, a seeded torch model the tests use to prove the path end to end
(tritonclient.grpc -> Triton -> torch). The inference service adds the real models.
"""

from __future__ import annotations

import argparse
import signal
import sys

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
    from pytriton.triton import Triton, TritonConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc-port", type=int, default=18001)
    parser.add_argument("--http-port", type=int, default=18000)
    parser.add_argument("--metrics-port", type=int, default=18002)
    args = parser.parse_args(argv)
    import torch

    model = tiny_model()

    @batch
    def infer(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"y": model(torch.from_numpy(x)).numpy()}

    # SIGTERM (from `longtail infra down`) leaves through the context manager, which stops Triton.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = TritonConfig(
        grpc_address="127.0.0.1", grpc_port=args.grpc_port,
        http_address="127.0.0.1", http_port=args.http_port,
        metrics_address="127.0.0.1", metrics_port=args.metrics_port,
        exit_timeout_secs=5,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=TINY_MODEL,
            infer_func=infer,
            inputs=[Tensor(name="x", dtype=np.float32, shape=(TINY_INPUTS,))],
            outputs=[Tensor(name="y", dtype=np.float32, shape=(TINY_OUTPUTS,))],
            config=ModelConfig(max_batch_size=64),
        )
        triton.serve()


if __name__ == "__main__":
    main()
