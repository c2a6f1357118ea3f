"""Device choice for SAM and the denoiser alike (`--device auto|cuda|mps|cpu`)."""

from __future__ import annotations

import torch

from lowlight_cli.errors import DeviceError, Setting
from lowlight_cli.settings import DEVICE_CHOICES

DEVICE = Setting("device")


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """auto → CUDA, then MPS, then CPU; an explicit device that is missing is a clear error.

    `name` is a validated setting (`EnhanceSettings.device`): another is a `ValueError`."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}: one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(DEVICE, " cuda: no CUDA GPU is available to this torch build (use ", DEVICE, " cpu)")
    if name == "mps" and not mps_available():
        raise DeviceError(DEVICE, " mps: Apple MPS is not available on this machine (use ", DEVICE, " cpu)")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Half precision where it is fast and safe: bf16 on CUDA that supports it, else fp16 on CUDA; none on CPU/MPS."""
    if device.type == "cuda":
        # bf16 is native from compute capability 8 (Ampere) and on ROCm; torch emulates it, slowly, on
        # older cards such as T4 and V100 (and `is_bf16_supported()` says yes there), so those get fp16.
        native_bf16 = torch.version.hip is not None or torch.cuda.get_device_capability(device)[0] >= 8
        return torch.bfloat16 if native_bf16 else torch.float16
    return None
