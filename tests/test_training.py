"""Training inputs: where the diffusion timesteps land, and the regression baseline's fixed inputs."""

from __future__ import annotations

import dataclasses

import torch

from lowlight_cli.diffusion.ddim import DDIMScheduler
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.training.trainer import make_model_inputs


def batch(size: int = 64) -> dict[str, torch.Tensor]:
    return {"low": torch.rand(size, 3, 8, 8) * 0.1, "high": torch.rand(size, 3, 8, 8),
            "labels": torch.zeros(size, 8, 8, dtype=torch.long), "scores": torch.zeros(size, 4),
            "boundary": torch.zeros(size, 1, 8, 8)}


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
    inputs, x0, base = make_model_inputs(data, config, DDIMScheduler(config.num_train_timesteps),
                                         torch.Generator().manual_seed(0), final_step_share=0.5)
    assert torch.all(inputs["x_t"] == 0) and torch.all(inputs["timesteps"] == 0)
    torch.testing.assert_close(x0, (data["high"] - base) * config.residual_scale)


def test_mean_start_zeroes_only_the_last_timestep_inputs():
    config = dataclasses.replace(ModelConfig(), mean_start=True)
    inputs, _, _ = make_model_inputs(batch(64), config, DDIMScheduler(config.num_train_timesteps),
                                     torch.Generator().manual_seed(0), final_step_share=0.5)
    last = inputs["timesteps"] == config.num_train_timesteps - 1
    assert 0 < int(last.sum()) < 64
    assert torch.all(inputs["x_t"][last] == 0)
    assert torch.all(inputs["x_t"][~last].abs().flatten(1).amax(dim=1) > 0)


def test_a_failing_batch_sampler_stops_training_instead_of_hanging(monkeypatch):
    import threading

    from lowlight_cli.training.data import TrainingData

    data = TrainingData.__new__(TrainingData)
    monkeypatch.setattr(TrainingData, "sample", lambda self, rng, max_regions: 1 / 0)
    raised = []

    def first_batch() -> None:
        try:
            next(data.batches(batch_size=2, max_regions=4, seed=0))
        except ZeroDivisionError as exc:
            raised.append(exc)

    waiter = threading.Thread(target=first_batch, daemon=True)
    waiter.start()
    waiter.join(timeout=20)
    assert raised, "the training loop would wait forever on a dead sampler"
