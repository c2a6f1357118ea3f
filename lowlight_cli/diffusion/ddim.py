"""Cosine noise schedule and a deterministic DDIM sampler for x_0-predicting models.

The API mirrors diffusers' schedulers (`set_timesteps`, `step`, `add_noise`)
so the sampler loop reads the same. We do not depend on diffusers itself:
this is ~80 lines, and diffusers would add a large dependency tree and
import time to a CLI whose start-up we want fast.
"""

from __future__ import annotations

import math

import torch

from lowlight_cli.settings import check_steps


def cosine_alphas_cumprod(num_steps: int, s: float = 0.008) -> torch.Tensor:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), float64 for precision."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphas = (f[1:] / f[:-1]).clamp(min=1e-4, max=0.9999)
    return torch.cumprod(alphas, dim=0)


class DDIMScheduler:
    """DDIM (η=0) over a cosine schedule, with "trailing" timestep spacing.

    Trailing spacing starts sampling at the last training timestep (pure
    noise, or its mean for a mean-start model); with the few steps we run
    (1 by default) leading spacing would start from a partially clean state
    the model never saw there.
    """

    def __init__(self, num_train_timesteps: int = 1000) -> None:
        self.num_train_timesteps = num_train_timesteps
        self.alphas_cumprod = cosine_alphas_cumprod(num_train_timesteps)
        self.timesteps = torch.tensor([], dtype=torch.long)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose `num_inference_steps` timesteps, descending, ending near 0."""
        check_steps(num_inference_steps, self.num_train_timesteps)
        ratio = self.num_train_timesteps / num_inference_steps
        # Indexed, not a float `arange`: its rounding gives n + 1 values for some n (61, 103, …).
        steps = [round(self.num_train_timesteps - index * ratio) - 1 for index in range(num_inference_steps)]
        self.timesteps = torch.tensor(steps, dtype=torch.long).clamp(min=0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_t | x_0), for training."""
        abar = self.alphas_cumprod.to(x0.device)[timesteps].to(x0.dtype).view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def step(
        self, x0_pred: torch.Tensor, timestep: int, sample: torch.Tensor, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One DDIM update from x_t to x_{t_prev} given the model's x_0 estimate.

        `eps` overrides the noise direction implied by `sample`; a mean-start
        sampler passes its noise draw here, since a zero sample implies none.
        """
        index = int((self.timesteps == timestep).nonzero()[0, 0])
        prev_t = int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1
        abar = float(self.alphas_cumprod[timestep])
        abar_prev = float(self.alphas_cumprod[prev_t]) if prev_t >= 0 else 1.0
        if eps is None:
            eps = (sample - math.sqrt(abar) * x0_pred) / math.sqrt(1 - abar)
        return math.sqrt(abar_prev) * x0_pred + math.sqrt(1 - abar_prev) * eps
