"""Memory estimates that decide when the prior model makes room for the denoiser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lowlight_cli.models.config import ModelConfig
from lowlight_cli.runtime.memory import free_bytes, sampling_bytes


def test_sampling_estimate_covers_attention_and_shrinks_with_half_precision_and_tiles():
    config = ModelConfig()
    small = sampling_bytes(384, 576, config, torch.float32)
    assert 300 << 20 < small < 600 << 20  # measured peak of the default model at this size: ~400 MiB
    big = sampling_bytes(768, 1152, config, torch.float32)
    assert big > 6 * small  # bottleneck self-attention grows with the square of the pixel count
    assert sampling_bytes(768, 1152, config, torch.float16) * 2 == big
    one_tile = sampling_bytes(512, 512, config, torch.float32)
    tiled = sampling_bytes(4000, 6000, config, torch.float32, tile=512)
    assert tiled >= one_tile + 4000 * 6000 * 100  # the image-sized tensors kept while tiling (~100 B/px in fp32)
    assert tiled < sampling_bytes(4000, 6000, config, torch.float32) / 10
    assert sampling_bytes(400, 500, config, torch.float32, tile=512) == sampling_bytes(400, 500, config, torch.float32)


def test_free_memory_is_known_on_this_cpu():
    free = free_bytes(torch.device("cpu"))
    assert free is None or free > 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():  # Linux: the kernel's own estimate of what can be allocated without swapping
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
        available = int(line.split()[1]) * 1024
        assert free is not None and abs(free - available) < 0.1 * available  # read moments apart
        assert free <= mem_total()
    assert free_bytes(torch.device("meta")) is None  # a device without a free-memory query


def mem_total() -> int:
    """Total RAM from /proc/meminfo (MemTotal), which MemAvailable never exceeds."""
    line = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize("user_setting, expected", [(None, False), ("1", True)])
def test_numpy_asks_for_no_huge_pages_unless_the_user_does(user_setting, expected):
    """`lowlight_cli` switches NumPy's huge-page request off before NumPy loads (each fresh large array
    could stall on memory compaction), and leaves a user's own setting alone."""
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if user_setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = user_setting
    code = (
        "import sys, lowlight_cli; assert 'numpy' not in sys.modules; import numpy; "
        "multiarray = getattr(numpy, '_core', None) or numpy.core; "  # numpy 2, else 1.x (pyproject: >=1.24)
        "print(multiarray.multiarray._get_madvise_hugepage())"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(expected)
