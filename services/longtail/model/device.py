"""Which device a network trains or infers on: CUDA when a GPU is present, else the CPU.

`LONGTAIL_DEVICE` overrides the choice: `cpu` keeps a machine with a GPU on the CPU (bit-identical
runs across machines), `cuda` or `cuda:<n>` insists on a GPU and fails clearly when there is none.
Nothing requires a GPU: on a machine without one the default is the CPU, exactly as before.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail import config


class DeviceSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True)
    device: str = Field("auto", validation_alias="LONGTAIL_DEVICE", description="auto (CUDA when available, else the CPU), cpu, cuda or cuda:<n>")

    @field_validator("device")
    @classmethod
    def _known(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in ("auto", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError(f"expected auto, cpu, cuda or cuda:<n>, got {v!r}")
        return v


def preferred(choice: str | None = None) -> torch.device:
    """The device to use: `choice` (or LONGTAIL_DEVICE) — `auto` is CUDA when available, else the CPU."""
    choice = choice if choice is not None else config.load(DeviceSettings).device
    if choice == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise config.ConfigError(f"LONGTAIL_DEVICE={choice}: no CUDA device is available here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})")
    return torch.device(choice)


def describe(device: torch.device) -> str:
    """`cpu (2 threads)` or `cuda:0 (<GPU name>)`: what the logs say a job runs on."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
