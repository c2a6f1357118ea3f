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
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # only the type: the model's parts sit above this module
    from lowlight_cli.models.config import ModelConfig


ACTIVATION_BYTES_PER_PIXEL = 1000  # fp32 U-Net activations at inference, measured on the default model
# While sampling in tiles, image-sized tensors stay on the device: conditioning, noise, x_t, x_0, the
# blend's running sum and weights, and their quotient (values in the compute dtype), plus int64 labels.
TILED_VALUES_PER_PIXEL = 24


def free_bytes(device: torch.device) -> int | None:
    """Bytes the device can still allocate, or None where that is unknown (MPS, non-Linux CPU)."""
    if device.type == "cuda":  # what the caching allocator holds but does not use is free to torch too
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + int(cached)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def sampling_bytes(height: int, width: int, config: ModelConfig, dtype: torch.dtype, tile: int | None = None) -> int:
    """Peak bytes of one denoiser pass: activations plus bottleneck self-attention of the image or one tile,
    and with tiles, the image-sized tensors that stay on the device meanwhile."""
    itemsize = torch.finfo(dtype).bits // 8
    held = 0
    if tile and (height > tile or width > tile):
        held = height * width * (TILED_VALUES_PER_PIXEL * itemsize + 8)
        height, width = min(height, tile), min(width, tile)
    tokens = (height // config.downsample_factor) * (width // config.downsample_factor)
    activations = ACTIVATION_BYTES_PER_PIXEL * height * width * itemsize // 4
    attention = config.attn_heads * tokens * tokens * itemsize
    return activations + attention + held
