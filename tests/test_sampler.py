"""DDIM schedule and sampler: step count, determinism, validation, tiling."""

import pytest
import torch

from lowlight_cli.diffusion.ddim import DDIMScheduler
from lowlight_cli.diffusion.sampling import sample_residual, tile_windows
from lowlight_cli.errors import UsageError
from lowlight_cli.models.condition import Conditioning
from tests.conftest import tiny_model


def conditioning(height=24, width=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 9, (1, height, width), generator=gen)
    return Conditioning(
        base=torch.rand(1, 3, height, width, generator=gen),
        log_gain=torch.tensor([1.5]),
        labels=labels,
        scores=torch.rand(1, 8, generator=gen),
        boundary=torch.zeros(1, 1, height, width),
    )


@pytest.mark.parametrize("steps", [1, 4, 7, 50])
def test_step_count_is_honoured(steps):
    model = tiny_model()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(int(args[1][0])))
    sample_residual(model, conditioning(), steps, seed=0, device=torch.device("cpu"))
    assert len(calls) == steps
    assert calls == sorted(calls, reverse=True) and calls[0] == 49  # trailing spacing starts from pure noise


def test_same_seed_same_result_other_seed_differs():
    model = tiny_model()
    cond = conditioning()
    a = sample_residual(model, cond, 4, seed=3, device=torch.device("cpu"))
    b = sample_residual(model, cond, 4, seed=3, device=torch.device("cpu"))
    c = sample_residual(model, cond, 4, seed=4, device=torch.device("cpu"))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_mean_start_one_step_ignores_the_seed_and_more_steps_use_it():
    model = tiny_model(mean_start=True)
    cond = conditioning()
    one = [sample_residual(model, cond, 1, seed=s, device=torch.device("cpu")) for s in (3, 4)]
    two = [sample_residual(model, cond, 2, seed=s, device=torch.device("cpu")) for s in (3, 4)]
    assert torch.equal(one[0], one[1])
    assert not torch.allclose(two[0], two[1])


def test_every_step_count_gives_exactly_that_many_distinct_timesteps():
    scheduler = DDIMScheduler(1000)
    for steps in range(1, 1001):
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps.tolist()
        assert len(timesteps) == steps and timesteps[0] == 999 and timesteps[-1] >= 0
        assert all(a > b for a, b in zip(timesteps, timesteps[1:], strict=False))


@pytest.mark.parametrize("steps", [0, -1, 51])
def test_invalid_step_counts_are_refused(steps):
    scheduler = DDIMScheduler(50)
    with pytest.raises(UsageError, match="^steps"):
        scheduler.set_timesteps(steps)


def test_odd_sizes_are_padded_and_cropped_back():
    out = sample_residual(tiny_model(), conditioning(1, 1), 2, seed=0, device=torch.device("cpu"))
    assert out.shape == (1, 3, 1, 1)
    out = sample_residual(tiny_model(), conditioning(13, 29), 2, seed=0, device=torch.device("cpu"))
    assert out.shape == (1, 3, 13, 29)


def test_tiles_cover_the_image_and_blend_close_to_whole_image():
    assert tile_windows(100, 64, 16) == [0, 36]
    assert tile_windows(64, 64, 16) == [0]
    model = tiny_model()
    cond = conditioning(64, 96)
    whole = sample_residual(model, cond, 2, seed=0, device=torch.device("cpu"))
    tiled = sample_residual(model, cond, 2, seed=0, device=torch.device("cpu"), tile=48, overlap=16)
    assert tiled.shape == whole.shape
    assert torch.isfinite(tiled).all()
    # Tiles see less context, so results differ a little, but not wildly.
    assert (tiled - whole).abs().mean() < 0.5 * whole.abs().mean() + 1e-3


def test_regression_checkpoint_is_one_forward_pass():
    model = tiny_model(diffusion=False)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    sample_residual(model, conditioning(), 10, seed=0, device=torch.device("cpu"))
    assert len(calls) == 1


def test_a_half_precision_model_samples_like_the_float32_one():
    """The CUDA path casts the model and its inputs to bf16; the same cast on the CPU must run and agree."""
    model = tiny_model()
    cond = conditioning(64, 64)
    full = sample_residual(model, cond, 1, seed=0, device=torch.device("cpu"))
    half = sample_residual(model.to(torch.bfloat16), cond, 1, seed=0, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert half.dtype == torch.float32 or half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), full, atol=0.05)


def test_region_sums_are_accumulated_in_float32_for_half_precision_inputs():
    """On a GPU a bf16 running count would stop at 256 (256 + 1 rounds to 256); the pooling must not depend on it."""
    from lowlight_cli.models.prior_encoder import region_pool, region_stats

    image = torch.full((1, 3, 200, 200), 0.5, dtype=torch.bfloat16)
    labels = torch.zeros(1, 200, 200, dtype=torch.long)
    labels[:, :, 100:] = 1
    sums, counts = region_pool(image, labels, 2)
    assert sums.dtype == counts.dtype == torch.float32
    assert counts[0, :, 0].tolist() == [20000.0, 20000.0]  # not representable in bf16
    mean, std, _ = region_stats(image, labels, 2)
    assert mean.dtype == torch.bfloat16 and torch.allclose(mean.float(), torch.full_like(mean.float(), 0.5))
