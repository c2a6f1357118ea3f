"""`Enhancer` on its own: which resolution it samples at."""

from __future__ import annotations

import numpy as np

from lowlight_cli.pipeline import Enhancer, lifted_noise
from tests.conftest import tiny_model


def scene(height: int, width: int, noise: float, seed: int = 0) -> np.ndarray:
    """A dim, smooth gradient (mean ≈ 0.1) with Gaussian noise of std `noise`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 0.05 + 0.1 * (x / width)[..., None] * np.array([1.0, 0.8, 0.6]) + 0.02 * np.sin(y / 7.0)[..., None]
    return np.clip(base + rng.normal(0, noise, (height, width, 3)), 0, 1).astype(np.float32)


def test_small_photos_are_sampled_at_their_own_size_and_large_ones_through_the_working_copy():
    enhancer = Enhancer(tiny_model(), device="cpu", prior="none", work_size=128)
    clean, noisy, large = scene(300, 400, 0.0005), scene(300, 400, 0.01), scene(600, 800, 0.0005)
    assert enhancer.working_copy(clean).shape == (300, 400)  # direct: no reconstruction to lose structure in
    assert enhancer.working_copy(noisy).shape == (300, 400)
    assert enhancer.working_copy(large).shape == (96, 128)  # over direct_size (640): cost must not grow with size
    assert Enhancer(tiny_model(), device="cpu", prior="none", work_size=128, direct_size=0).working_copy(
        clean
    ).shape == (96, 128)
    assert Enhancer(tiny_model(), device="cpu", prior="none", work_size=128, full_res=True).working_copy(
        large
    ).shape == (600, 800)


def test_a_noisy_photo_sampled_at_its_own_size_gets_the_stronger_shadow_noise_filter(monkeypatch):
    import lowlight_cli.pipeline as pipeline

    strengths = []
    monkeypatch.setattr(pipeline, "suppress_shadow_noise", lambda low, out, strength: strengths.append(strength) or out)
    clean, noisy = scene(120, 160, 0.0005), scene(120, 160, 0.01)
    assert lifted_noise(clean) < pipeline.NOISY < lifted_noise(noisy)
    direct = Enhancer(tiny_model(), device="cpu", prior="none", work_size=64, shadow_denoise=0.5)
    through_copy = Enhancer(tiny_model(), device="cpu", prior="none", work_size=64, direct_size=0, shadow_denoise=0.5)
    for enhancer, rgb in ((direct, noisy), (direct, clean), (through_copy, noisy)):
        enhancer.enhance(rgb)
    assert strengths == [0.5 * pipeline.DIRECT_NOISE_BOOST, 0.5, 0.5]


def test_enhance_is_the_working_output_carried_to_full_resolution_and_is_deterministic():
    enhancer = Enhancer(tiny_model(), device="cpu", prior="fallback", work_size=64, steps=2, direct_size=0)
    rgb = scene(120, 160, 0.01)
    result = enhancer.enhance(rgb)
    working, work_output, prior, timings = enhancer.enhance_working(rgb)
    assert working.shape == (48, 64) and work_output.shape == (48, 64, 3) and prior.labels.shape == (48, 64)
    assert np.array_equal(result.rgb, enhancer.finish(rgb, working, work_output))
    assert np.array_equal(result.rgb, enhancer.enhance(rgb).rgb)
    assert result.rgb.dtype == np.float32 and 0.0 <= result.rgb.min() and result.rgb.max() <= 1.0
    assert result.prior.source == "fallback" and result.prior.num_regions >= 1
    assert sorted(result.timings) == ["prepare", "prior", "reconstruct", "sample"]
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert float(result.rgb.mean()) > 2 * float(rgb.mean())  # the base alone lifts a 0.1-mean scene


def test_conditioning_is_the_prior_capped_and_padded_to_the_models_regions():
    import pytest

    from lowlight_cli.priors.region_prior import RegionPrior

    enhancer = Enhancer(tiny_model(), device="cpu", prior="none", work_size=32)  # max_regions 8
    working = enhancer.working_copy(scene(24, 32, 0.0))
    labels = np.zeros((24, 32), np.int32)
    labels[:, 16:] = 1
    labels[:12, :8] = 2
    prior = RegionPrior.from_labels(labels, "test", max_regions=8, scores=np.array([0, 0.9, 0.4], np.float32))
    cond = enhancer.conditioning(working, prior)
    assert cond.base.shape == (1, 3, 24, 32) and cond.log_gain.shape == (1,)
    assert float(cond.log_gain[0]) == float(np.float32(working.log_gain)) > 0  # brightening: a gain above 1
    assert cond.scores[0].tolist() == pytest.approx([0.9, 0.4, 0, 0, 0, 0, 0, 0])  # largest region first, zero-padded
    assert np.array_equal(cond.labels[0].numpy(), prior.labels) and cond.labels.dtype.is_floating_point is False
    assert np.array_equal(cond.boundary[0, 0].numpy(), prior.boundary) and cond.boundary.shape == (1, 1, 24, 32)


def test_settings_are_validated_when_changed_and_checked_against_the_model():
    import pytest

    from lowlight_cli.settings import EnhanceSettings, SettingError

    enhancer = Enhancer(tiny_model(), settings=EnhanceSettings(device="cpu", prior="none", steps=3))
    assert (enhancer.steps, enhancer.model_name, enhancer.settings.prior) == (3, "in use", "none")
    enhancer.steps = 2
    assert enhancer.settings.steps == 2
    with pytest.raises(SettingError, match="^work_size must be at least 16 pixels, got 8"):
        enhancer.work_size = 8
    assert enhancer.work_size == 384  # a refused change leaves the settings as they were
    with pytest.raises(SettingError, match="^steps must be at most 50 \\(the schedule length\\), got 51"):
        Enhancer(tiny_model(), device="cpu", prior="none", steps=51)
    notes = []
    Enhancer(tiny_model(use_prior=False), device="cpu", prior="fallback", notify=notes.append)
    assert notes == ["this model was trained without region priors: running it without one (prior none)"]
