"""Training inputs: where the diffusion timesteps land, and the regression baseline's fixed inputs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight_cli.diffusion.ddim import DDIMScheduler
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.training.trainer import make_model_inputs


def batch(size: int = 64) -> dict[str, torch.Tensor]:
    return {
        "low": torch.rand(size, 3, 8, 8) * 0.1,
        "high": torch.rand(size, 3, 8, 8),
        "labels": torch.zeros(size, 8, 8, dtype=torch.long),
        "scores": torch.zeros(size, 4),
        "boundary": torch.zeros(size, 1, 8, 8),
    }


def test_final_step_share_puts_that_share_of_samples_where_one_step_sampling_queries():
    config = ModelConfig()
    scheduler = DDIMScheduler(config.num_train_timesteps)
    scheduler.set_timesteps(1)
    last = int(scheduler.timesteps[0])
    counts = {}
    for share in (0.0, 0.25, 1.0):
        inputs, _, _ = make_model_inputs(batch(4000), config, scheduler, torch.Generator().manual_seed(0), share)
        counts[share] = float((inputs["timesteps"] == last).float().mean())
    assert counts[0.0] < 0.01 and 0.2 < counts[0.25] < 0.3 and counts[1.0] == 1.0


def test_regression_baseline_sees_no_noise():
    config = dataclasses.replace(ModelConfig(), diffusion=False)
    data = batch()
    inputs, x0, base = make_model_inputs(
        data, config, DDIMScheduler(config.num_train_timesteps), torch.Generator().manual_seed(0), final_step_share=0.5
    )
    assert torch.all(inputs["x_t"] == 0) and torch.all(inputs["timesteps"] == 0)
    torch.testing.assert_close(x0, (data["high"] - base) * config.residual_scale)


def test_mean_start_zeroes_only_the_last_timestep_inputs():
    config = dataclasses.replace(ModelConfig(), mean_start=True)
    inputs, _, _ = make_model_inputs(
        batch(64),
        config,
        DDIMScheduler(config.num_train_timesteps),
        torch.Generator().manual_seed(0),
        final_step_share=0.5,
    )
    last = inputs["timesteps"] == config.num_train_timesteps - 1
    assert 0 < int(last.sum()) < 64
    assert torch.all(inputs["x_t"][last] == 0)
    assert torch.all(inputs["x_t"][~last].abs().flatten(1).amax(dim=1) > 0)


@pytest.mark.parametrize("mean_start", [True, False])
def test_refine_samples_are_what_two_step_sampling_feeds_the_model_at_its_second_step(mean_start):
    """`--refine-share` trains the second query on exactly the input the 2-step sampler gives it."""
    from lowlight_cli.diffusion.sampling import initial_noise, sample_residual
    from lowlight_cli.models.condition import Conditioning
    from lowlight_cli.training.trainer import first_transition, two_step_sampler
    from tests.conftest import tiny_model

    model = tiny_model(mean_start=mean_start)
    config = model.config
    data = batch(1)
    base = torch.rand(1, 3, 8, 8)
    cond = Conditioning(base, torch.zeros(1), data["labels"], torch.zeros(1, 8), data["boundary"])
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append((args[0].clone(), int(args[1][0]))))
    sample_residual(model, cond, steps=2, seed=3, device=torch.device("cpu"))
    hook.remove()
    assert [t for _, t in seen] == [config.num_train_timesteps - 1, int(two_step_sampler(config).timesteps[1])]
    inputs = dict(x_t=torch.zeros(1, 3, 8, 8), timesteps=torch.zeros(1, dtype=torch.long), cond=cond)
    with torch.no_grad():
        trained_on = first_transition(
            inputs, initial_noise((1, 3, 8, 8), 3), config.mean_start, two_step_sampler(config), lambda kw: model(**kw)
        )
    torch.testing.assert_close(trained_on, seen[1][0])


def test_refine_share_puts_that_share_at_the_second_timestep_around_the_models_estimate():
    from lowlight_cli.training.trainer import two_step_sampler

    config = dataclasses.replace(ModelConfig(), mean_start=True)
    second = int(two_step_sampler(config).timesteps[1])
    calls = []

    def estimate(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        calls.append(inputs)
        return torch.full_like(inputs["x_t"], 5.0)  # far from every target

    inputs, x0, _ = make_model_inputs(
        batch(2000),
        config,
        DDIMScheduler(config.num_train_timesteps),
        torch.Generator().manual_seed(0),
        0.5,
        0.3,
        estimate=estimate,
    )
    refine = inputs["timesteps"] == second
    assert 0.25 < float(refine.float().mean()) < 0.35
    assert len(calls) == 1 and torch.all(calls[0]["x_t"] == 0)  # queried as the sampler's first step is
    assert torch.all(calls[0]["timesteps"] == config.num_train_timesteps - 1)
    abar = float(DDIMScheduler(config.num_train_timesteps).alphas_cumprod[second])
    assert abs(float(inputs["x_t"][refine].mean()) - 5.0 * abar**0.5) < 0.05  # noised around the estimate
    assert float(inputs["x_t"][~refine & (inputs["timesteps"] > 0)].mean()) < 1.0  # the rest around the target
    with pytest.raises(ValueError, match="estimate"):
        make_model_inputs(
            batch(200), config, DDIMScheduler(config.num_train_timesteps), torch.Generator().manual_seed(0), 0.5, 0.3
        )


needs_fork = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(), reason="training workers are forked"
)


FAILING_SAMPLER = """
import sys
from lowlight_cli.training.data import TrainingData

TrainingData.sample = lambda self, rng, max_regions: 1 / 0
data = TrainingData.__new__(TrainingData)
try:
    next(data.batches(batch_size=2, max_regions=4, seed=0, workers=int(sys.argv[1])))
except ZeroDivisionError:
    print("raised")
"""


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=needs_fork)])
def test_a_failing_batch_sampler_stops_training_instead_of_hanging(workers):
    """The sampler's error reaches the training loop, from a thread or a forked worker.

    In a fresh interpreter, as `lowlight train` runs: forking this test process, whose earlier tests leave
    daemon threads drawing batches, can copy a lock one of them holds into the worker, which then hangs
    on it whatever the sampler does (it did once in CI).
    """
    run = subprocess.run(
        [sys.executable, "-c", FAILING_SAMPLER, str(workers)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "raised", "the training loop would wait forever on a dead sampler"


def photo_folders(root: Path, count: int = 3) -> list[Path]:
    """A `low/`+`high/` pair folder and a folder of photos for synthesis, all small."""
    rng = np.random.default_rng(0)
    for sub in ("pairs/low", "pairs/high", "photos"):
        (root / sub).mkdir(parents=True)
    for i in range(count):
        high = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(high).save(root / "photos" / f"{i}.png")
        Image.fromarray(high).save(root / "pairs/high" / f"{i}.png")
        Image.fromarray(high // 6).save(root / "pairs/low" / f"{i}.png")
    return [root / "pairs", root / "photos"]


@pytest.fixture
def fallback_prior():
    from lowlight_cli.priors.factory import make_prior_fn

    return make_prior_fn("fallback", 8, "vit_b", None, device="cpu", notify=print)


@needs_fork
def test_forked_start_up_loads_the_same_images_and_priors_as_one_process(tmp_path, fallback_prior):
    from lowlight_cli.training.data import TrainingData

    folders = photo_folders(tmp_path, count=10)  # > 2 workers × 4 jobs a chunk: both workers load some
    serial, forked = (
        TrainingData(folders, fallback_prior, 0.42, crop=32, log=lambda m: None, workers=n) for n in (0, 2)
    )
    assert repr(serial) == repr(forked) == "TrainingData(10 real pairs in 10 scenes, 10 photos for synthesis)"
    for a, b in zip(serial.normal, forked.normal, strict=False):
        assert np.array_equal(a.high, b.high) and np.array_equal(a.labels, b.labels)
    for key in serial.groups:
        assert np.array_equal(serial.paired[key][0].labels, forked.paired[key][0].labels)
    assert any(len(np.unique(item.labels)) > 1 for item in serial.normal)  # real regions, not empty maps


@needs_fork
def test_worker_batches_are_seeded_and_shaped_like_the_threads(tmp_path, fallback_prior):
    import itertools

    from lowlight_cli.training.data import TrainingData

    data = TrainingData(photo_folders(tmp_path), fallback_prior, 0.42, crop=32, log=lambda m: None)
    runs = [list(itertools.islice(data.batches(batch_size=3, max_regions=8, seed=7, workers=2), 2)) for _ in range(2)]
    threaded = next(data.batches(batch_size=3, max_regions=8, seed=7))
    for key, value in runs[0][0].items():
        assert value.shape == threaded[key].shape and value.dtype == threaded[key].dtype
        assert torch.equal(value, runs[1][0][key]) and torch.equal(runs[0][1][key], runs[1][1][key])  # same seed
    assert not torch.equal(runs[0][0]["low"], runs[0][1]["low"]), "the two workers must draw different crops"
    assert runs[0][0]["low"].shape == (3, 3, 32, 32)


@needs_fork
def test_forking_after_opencv_has_used_its_threads_does_not_hang(tmp_path):
    """Training forks after the parent has run OpenCV's thread pool (as the test suite and SAM set-up do).

    Run in a subprocess, so a hang fails this test at its timeout instead of stopping the suite.
    """
    import subprocess
    import sys

    folders = photo_folders(tmp_path)
    script = f"""
import cv2, numpy as np
cv2.GaussianBlur(np.random.rand(1500, 1500, 3).astype(np.float32), (21, 21), 5)  # spins up OpenCV's pool
from pathlib import Path
from lowlight_cli.priors.factory import make_prior_fn
from lowlight_cli.training.data import TrainingData
prior = make_prior_fn("fallback", 8, "vit_b", None, device="cpu", notify=print)
data = TrainingData([Path(p) for p in {[str(f) for f in folders]}], prior, 0.42, crop=32, log=print, workers=2)
batch = next(data.batches(batch_size=2, max_regions=8, seed=0, workers=2))
print("ok", tuple(batch["low"].shape))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ok (2, 3, 32, 32)" in done.stdout, done.stderr[-2000:]


def test_native_share_cuts_crops_at_the_photos_own_pixels():
    """--native-share: that share of windows is crop×crop source pixels (all the noise); the rest are larger
    windows shrunk to the crop, as the working copy of a bigger photo is."""
    from lowlight_cli.training.data import TrainingData

    data = TrainingData.__new__(TrainingData)
    data.crop = 32
    sides = {}
    for share in (0.0, 0.5, 1.0):
        data.native_share, rng = share, np.random.default_rng(3)
        windows = [data._window(300, 400, rng) for _ in range(400)]
        sides[share] = np.array([w[0].stop - w[0].start for w in windows])
    assert (sides[1.0] == 32).all()
    assert 0.4 < float((sides[0.5] == 32).mean()) < 0.65
    assert float((sides[0.0] == 32).mean()) < 0.05 and sides[0.0].mean() > 50


def test_degrading_a_window_gives_the_pixels_of_the_degraded_whole_image():
    """The sampler degrades only a margin around its crop; without noise, that is the same crop."""
    from lowlight_cli.training.data import TrainingData, degrade_window
    from lowlight_cli.training.synth import DarkeningParams, darken

    rng = np.random.default_rng(0)
    image = np.clip(rng.random((140, 170, 3)) * 0.3 + np.linspace(0, 0.7, 170)[None, :, None], 0, 1).astype(np.float32)
    # Every local step at its widest: demosaicing, chroma blur of sigma 3, JPEG with colour subsampling.
    params = DarkeningParams(
        exposure=0.1,
        wb_gains=(1.4, 1.0, 0.6),
        shot=0.0,
        read=0.0,
        jpeg_quality=70,
        sensor_gains=(2.0, 1.0, 1.6),
        chroma_smoothing=3.0,
    )
    degrade = lambda im: darken(im, params, np.random.default_rng(1))  # noqa: E731 - no noise: deterministic
    whole = degrade(image).astype(int)
    data = TrainingData.__new__(TrainingData)
    data.crop, data.native_share = 32, 0.5
    for _ in range(40):
        rows, cols = data._window(140, 170, rng)
        assert 0 <= rows.start < rows.stop <= 140 and 0 <= cols.start < cols.stop <= 170
        assert 32 <= rows.stop - rows.start <= 107 and abs((rows.stop - rows.start) - (cols.stop - cols.start)) <= 2
        crop = degrade_window(image, (rows, cols), degrade).astype(int)
        assert np.abs(crop - whole[rows, cols]).max() <= 1, "the window must come out as in the whole image"
