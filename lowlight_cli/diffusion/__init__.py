"""Noise schedule and samplers (diffusers-style `set_timesteps`/`step` API)."""

from lowlight_cli.diffusion.ddim import DDIMScheduler

__all__ = ["DDIMScheduler"]
