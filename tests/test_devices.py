"""Device choice: which half precision a CUDA card gets, and the MPS fallback switch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lowlight_cli.runtime.devices import autocast_dtype


@pytest.mark.parametrize(
    "capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)]
)
def test_cards_without_native_bf16_get_fp16(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert autocast_dtype(torch.device("cuda")) == expected
    assert autocast_dtype(torch.device("cpu")) is None


def test_mps_fallback_is_switched_on_before_torch_loads():
    """Torch reads the switch once, at import; `lowlight_cli` is imported first by every entry point."""
    code = (
        "import os, sys; os.environ.pop('PYTORCH_ENABLE_MPS_FALLBACK', None); import lowlight_cli; "
        "assert 'torch' not in sys.modules; assert os.environ['PYTORCH_ENABLE_MPS_FALLBACK'] == '1'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
