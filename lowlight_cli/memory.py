"""How much memory a device has free, and how much one sampling pass needs.

The prior model (SAM ViT-H is 2.5 GB) and the denoiser share one device. When
what is free would not cover the denoiser's pass, the pipeline asks the prior
producer to make room first, so a large photo does not fail with "out of
memory" that a smaller prior footprint would have avoided. The estimate errs
high: a wrong "short" only costs moving or reloading SAM, a wrong "enough"
costs the photo.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lowlight_cli.models.config import ModelConfig

ACTIVATION_BYTES_PER_PIXEL = 1000  # fp32 U-Net activations at inference, measured on the default model


def free_bytes(device: torch.device) -> int | None:
    """Bytes the device can still allocate, or None where that is unknown (MPS, non-Linux CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def sampling_bytes(height: int, width: int, config: ModelConfig, dtype: torch.dtype, tile: int | None = None) -> int:
    """Peak bytes of one denoiser pass over an image (or one tile): activations plus bottleneck self-attention."""
    if tile:
        height, width = min(height, tile), min(width, tile)
    itemsize = torch.finfo(dtype).bits // 8
    tokens = (height // config.downsample_factor) * (width // config.downsample_factor)
    activations = ACTIVATION_BYTES_PER_PIXEL * height * width * itemsize // 4
    attention = config.attn_heads * tokens * tokens * itemsize
    return activations + attention
