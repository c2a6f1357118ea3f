"""The `Pipeline` on its own: which resolution it samples at, its stages, and that it cannot be changed."""

from __future__ import annotations

import numpy as np

from lowlight_cli.pipeline import Pipeline, build, lifted_noise
from tests.conftest import tiny_model


def scene(height: int, width: int, noise: float, seed: int = 0) -> np.ndarray:
    """A dim, smooth gradient (mean ≈ 0.1) with Gaussian noise of std `noise`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 0.05 + 0.1 * (x / width)[..., None] * np.array([1.0, 0.8, 0.6]) + 0.02 * np.sin(y / 7.0)[..., None]
    return np.clip(base + rng.normal(0, noise, (height, width, 3)), 0, 1).astype(np.float32)


def working_shape(pipeline: Pipeline, rgb: np.ndarray) -> tuple[int, int]:
    """The size the `prepare` stage samples `rgb` at."""
    working = pipeline.prepare(pipeline.start(rgb)).working
    assert working is not None
    return working.shape


def test_small_photos_are_sampled_at_their_own_size_and_large_ones_through_the_working_copy():
    pipeline = build(denoiser=tiny_model(), device="cpu", prior="none", work_size=128)
    clean, noisy, large = scene(300, 400, 0.0005), scene(300, 400, 0.01), scene(600, 800, 0.0005)
    assert working_shape(pipeline, clean) == (300, 400)  # direct: no reconstruction to lose structure in
    assert working_shape(pipeline, noisy) == (300, 400)
    assert working_shape(pipeline, large) == (96, 128)  # over direct_size (640): cost must not grow with size
    assert working_shape(pipeline.with_settings(direct_size=0), clean) == (96, 128)
    assert working_shape(pipeline.with_settings(full_res=True), large) == (600, 800)


def test_a_noisy_photo_sampled_at_its_own_size_gets_the_stronger_shadow_noise_filter(monkeypatch):
    import lowlight_cli.pipeline as pipeline

    strengths = []
    monkeypatch.setattr(pipeline, "suppress_shadow_noise", lambda low, out, strength: strengths.append(strength) or out)
    clean, noisy = scene(120, 160, 0.0005), scene(120, 160, 0.01)
    assert lifted_noise(clean) < pipeline.NOISY < lifted_noise(noisy)
    direct = build(denoiser=tiny_model(), device="cpu", prior="none", work_size=64, shadow_denoise=0.5)
    through_copy = direct.with_settings(direct_size=0)
    for enhancer, rgb in ((direct, noisy), (direct, clean), (through_copy, noisy)):
        enhancer.enhance(rgb)
    assert strengths == [0.5 * pipeline.DIRECT_NOISE_BOOST, 0.5, 0.5]


def test_enhance_is_its_stages_in_order_and_is_deterministic():
    enhancer = build(denoiser=tiny_model(), device="cpu", prior="fallback", work_size=64, steps=2, direct_size=0)
    rgb = scene(120, 160, 0.01)
    result = enhancer.enhance(rgb)
    sampled = enhancer.sample(enhancer.find_prior(enhancer.prepare(enhancer.start(rgb))))
    working, work_output, prior = sampled.working, sampled.output, sampled.prior
    assert working.shape == (48, 64) and work_output.shape == (48, 64, 3) and prior.labels.shape == (48, 64)
    assert sorted(sampled.timings) == ["prepare", "prior", "sample"] and sampled.result is None
    assert np.array_equal(result.rgb, enhancer.finish(sampled).result)
    assert np.array_equal(result.rgb, enhancer.enhance(rgb).rgb)
    assert result.rgb.dtype == np.float32 and 0.0 <= result.rgb.min() and result.rgb.max() <= 1.0
    assert result.prior.source == "fallback" and result.prior.num_regions >= 1
    assert sorted(result.timings) == ["prepare", "prior", "reconstruct", "sample"]
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert float(result.rgb.mean()) > 2 * float(rgb.mean())  # the base alone lifts a 0.1-mean scene


def test_conditioning_is_the_prior_capped_and_padded_to_the_models_regions():
    import pytest

    from lowlight_cli.priors.region_prior import RegionPrior

    enhancer = build(denoiser=tiny_model(), device="cpu", prior="none", work_size=32)  # max_regions 8
    working = enhancer.prepare(enhancer.start(scene(24, 32, 0.0))).working
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


def test_steps_and_seed_are_per_call_and_a_pipeline_never_changes():
    import dataclasses

    import pytest

    from lowlight_cli.settings import EnhanceSettings, SettingError

    pipeline = build(EnhanceSettings(device="cpu", prior="none", steps=3), denoiser=tiny_model())
    assert (pipeline.settings.steps, pipeline.model_name, pipeline.settings.prior) == (3, "in use", "none")
    rgb = scene(48, 64, 0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pipeline.settings = pipeline.settings.with_changes(steps=2)  # type: ignore[misc]
    two_steps = pipeline.enhance(rgb, steps=2, seed=7).rgb
    assert np.array_equal(two_steps, pipeline.with_settings(steps=2, seed=7).enhance(rgb).rgb)
    assert not np.array_equal(two_steps, pipeline.enhance(rgb, steps=2, seed=8).rgb)  # the seed draws the noise
    assert pipeline.settings.steps == 3 and pipeline.settings.seed == 0  # a call's choices do not stay
    with pytest.raises(SettingError, match="^steps must be at most 50 \\(the schedule length\\), got 51"):
        pipeline.enhance(rgb, steps=51)
    with pytest.raises(SettingError, match="^work_size must be at least 16 pixels, got 8"):
        pipeline.with_settings(work_size=8)
    faster = pipeline.with_settings(work_size=32)
    assert faster.denoiser is pipeline.denoiser and faster.prior is pipeline.prior  # the loaded parts, reused
    with pytest.raises(ValueError, match="prior choose the pipeline's parts"):
        pipeline.with_settings(prior="fallback")
    with pytest.raises(SettingError, match="^steps must be at most 50 \\(the schedule length\\), got 51"):
        build(denoiser=tiny_model(), device="cpu", prior="none", steps=51)
    notes = []
    build(denoiser=tiny_model(use_prior=False), device="cpu", prior="fallback", notify=notes.append)
    assert notes == ["this model was trained without region priors: running it without one (prior none)"]
