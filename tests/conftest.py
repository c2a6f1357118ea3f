"""Shared fixtures: tiny random models and small images built in the test itself.

No test downloads anything or depends on the shipped weights: the models
here are randomly initialised, so tests check the machinery, not quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight_cli.models import ModelConfig, PriorGuidedDenoiser
from lowlight_cli.models.checkpoint import save_checkpoint

TINY = dict(base_channels=8, channel_mults=(1, 2, 2), token_dim=16, attn_heads=2, max_regions=8, num_train_timesteps=50)


@pytest.fixture(autouse=True)
def private_user_cache(tmp_path_factory, monkeypatch) -> Path:
    """Priors and verification stamps go to a per-test folder, never the user's ~/.cache."""
    root = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    monkeypatch.delenv("LOWLIGHT_PRIOR_CACHE", raising=False)
    return root


def tiny_model(seed: int = 0, **overrides) -> PriorGuidedDenoiser:
    torch.manual_seed(seed)
    model = PriorGuidedDenoiser(ModelConfig(**{**TINY, **overrides}))
    # The output layer starts at zero; give it weights so the model's output depends on its input.
    torch.nn.init.normal_(model.out_conv.weight, std=0.05)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_checkpoint(tiny_model(), path)
    return path


def dark_array(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A dim, noisy, colour-cast gradient scene as uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    scene = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 5.0)], axis=2)
    dark = scene * np.array([0.12, 0.08, 0.05]) + rng.normal(0, 0.01, scene.shape)
    return (np.clip(dark, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def dark_jpeg(tmp_path) -> Path:
    path = tmp_path / "dark photo.jpg"
    Image.fromarray(dark_array()).save(path, quality=92)
    return path
