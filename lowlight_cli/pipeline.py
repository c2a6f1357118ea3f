"""`Enhancer`: the Python API the CLI is a thin layer over.

Load the denoiser and the prior producer once, then `enhance()` many images.
One photo flows: working copy → region prior → DDIM sampling → shadow-noise
suppression → reconstruction to full resolution. Batch and video reuse one `Enhancer`.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lowlight_cli.checkpoints.locate import resolve_model_path
from lowlight_cli.diffusion.sampling import sample_residual
from lowlight_cli.errors import DeviceError, Setting
from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.imaging.prepare import WorkingCopy, developed, shrink, to_tensor
from lowlight_cli.imaging.reconstruct import reconstruct
from lowlight_cli.imaging.shadow_noise import input_noise_sigma, suppress_shadow_noise
from lowlight_cli.models.checkpoint import load_checkpoint
from lowlight_cli.models.condition import Conditioning, develop, develop_full, judge
from lowlight_cli.models.denoiser import PriorGuidedDenoiser
from lowlight_cli.models.tone import ToneParams
from lowlight_cli.priors.factory import make_prior_fn
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.runtime.devices import autocast_dtype, resolve_device
from lowlight_cli.runtime.memory import free_bytes, sampling_bytes
from lowlight_cli.settings import EnhanceSettings, SettingError, check_steps

# Small photos (settings.DEFAULT_DIRECT_SIZE) are sampled at their own size, noisy ones too since model v4,
# whose denoiser trained on crops at photos' own pixels (`train --native-share`). Such a photo keeps all of
# its noise, where a working copy's area averaging removes much of it: when the noise brightening lifts (input
# noise σ × the gain to a mean of 0.45) is above NOISY, the shadow-noise filter works DIRECT_NOISE_BOOST times
# harder (casts + noise set SSIM 0.631 → 0.668, LOL eval15 0.759 → 0.761).
NOISY = 0.02
DIRECT_NOISE_BOOST = 2.0


def lifted_noise(rgb: np.ndarray) -> float:
    """The input's luma noise σ times the gain that brings its mean to 0.45: how loud brightening makes it."""
    y = luma(rgb, REC601)
    return input_noise_sigma(y) * 0.45 / max(float(y.mean()), 1e-3)


@dataclass
class EnhanceResult:
    rgb: np.ndarray  # full resolution, float32 in [0,1]
    prior: RegionPrior
    timings: dict[str, float] = field(default_factory=dict)


def _setting(name: str) -> property:
    """An `Enhancer` attribute that reads and replaces (validated) one field of its settings."""
    return property(
        lambda self: getattr(self.settings, name),
        lambda self, value: setattr(self, "settings", self.settings.with_changes(**{name: value})),
    )


class Enhancer:
    """Loads models once; `enhance(rgb)` then runs the whole pipeline on one image.

    `Enhancer(settings=EnhanceSettings(...))`, or the settings' fields as keyword
    arguments (`Enhancer("default", steps=2, device="cpu")`); `model` may also be
    a `PriorGuidedDenoiser` already in memory.
    """

    steps, seed, work_size, full_res, tile = map(_setting, ("steps", "seed", "work_size", "full_res", "tile"))
    detail_threshold, shadow_denoise, exposure, direct_size, highlights = map(
        _setting, ("detail_threshold", "shadow_denoise", "exposure", "direct_size", "highlights")
    )

    def __init__(
        self,
        model: str | os.PathLike[str] | PriorGuidedDenoiser | None = None,
        *,
        settings: EnhanceSettings | None = None,
        notify: Callable[[str], None] = lambda m: None,
        **options: Any,
    ) -> None:
        if model is not None and not isinstance(model, PriorGuidedDenoiser):
            options["model"] = model
        self.settings = settings = (settings or EnhanceSettings()).with_changes(**options)
        # How errors about the model's output name it (run.photo.check_finite).
        self.model_name = "in use" if isinstance(model, PriorGuidedDenoiser) else settings.model
        self.device = resolve_device(settings.device)
        self.dtype = autocast_dtype(self.device) or torch.float32
        if isinstance(model, PriorGuidedDenoiser):
            self.model = model.to(self.device).eval()
        else:
            self.model = load_checkpoint(resolve_model_path(settings.model), self.device)
        # The tone branch sees a 64-px thumbnail: it runs on the CPU in float32 whatever the denoiser's device.
        self.tone = copy.deepcopy(self.model.tone).float().cpu() if self.model.tone is not None else None
        self.model.to(dtype=self.dtype)
        config = self.model.config
        if settings.exposure and self.tone is None:
            raise SettingError("exposure", "needs a model with a tone branch; this checkpoint predates it")
        check_steps(settings.steps, config.num_train_timesteps)
        prior = settings.prior
        if not config.use_prior and prior != "none":
            notify("this model was trained without region priors: running it without one (prior none)")
            prior = "none"
        self.prior_fn = make_prior_fn(
            prior,
            config.max_regions,
            settings.sam_model,
            settings.sam_checkpoint,
            device=str(self.device),
            notify=notify,
        )

    @property
    def config(self):
        return self.model.config

    def compute_prior(self, working: WorkingCopy) -> RegionPrior:
        if self.prior_fn is None:
            return RegionPrior.empty(*working.shape)
        return self.prior_fn(working.base)

    def conditioning(self, working: WorkingCopy, prior: RegionPrior) -> Conditioning:
        return Conditioning.from_prior(
            to_tensor(working.base),
            torch.tensor([working.log_gain], dtype=torch.float32),
            prior,
            self.config.max_regions,
        )

    def shrink(self, rgb: np.ndarray, direct: bool | None = None) -> np.ndarray:
        """The image at the resolution the denoiser runs at: full size with --full-res or when small.

        `direct` overrides that choice (video never samples small frames directly: see `temporal.enhance_frame`).
        """
        long_side = max(rgb.shape[:2])
        if direct is None:
            direct = self.full_res or long_side <= self.direct_size
        return shrink(rgb, long_side if direct else self.work_size)

    def working_copy(self, rgb: np.ndarray, direct: bool | None = None) -> WorkingCopy:
        """`shrink`'s image and its base, developed by the tone branch's own judgement."""
        return self.develop_copy(self.shrink(rgb, direct))

    def develop(self, low: torch.Tensor, params: ToneParams | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The base of a (1,3,H,W) working copy and its log gain, with the user's exposure bias; `params`: a
        tone judgement already made (else the tone branch judges `low`)."""
        return develop(
            low,
            self.tone,
            self.config.target_brightness,
            ev=self.exposure,
            params=params,
            local=self.highlights == "local",
        )

    def judge(self, low: np.ndarray) -> ToneParams | None:
        """The tone branch's judgement of a working-size image (None for a model without one)."""
        if self.tone is None:
            return None
        with torch.no_grad():
            return judge(to_tensor(low), self.tone, local=self.highlights == "local")

    def develop_copy(self, low: np.ndarray, params: ToneParams | None = None) -> WorkingCopy:
        """A working copy of the working-size `low`, its base developed by `params` (video: a shot's
        judgement), or by the tone branch's own judgement of `low` when None."""
        judged = params if params is not None else self.judge(low)

        def full(rgb: np.ndarray) -> np.ndarray:
            return develop_full(rgb, to_tensor(low), judged, self.config.target_brightness, self.exposure)

        return developed(low, lambda tensor: self.develop(tensor, judged), full)

    def enhance_working(
        self, rgb: np.ndarray, prior: RegionPrior | None = None, working: WorkingCopy | None = None
    ) -> tuple[WorkingCopy, np.ndarray, RegionPrior, dict[str, float]]:
        """Prior + sampling at working resolution: (working copy, working output, prior, timings).

        Split from `reconstruct` so video can compare frames at working size
        and smooth the working output over time before it is carried to full
        resolution; `working` may be passed in when the caller already made it.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        working = working if working is not None else self.working_copy(rgb)
        timings["prepare"] = time.perf_counter() - start
        start = time.perf_counter()
        if prior is None or prior.labels.shape != working.shape:
            prior = self.compute_prior(working)
        timings["prior"] = time.perf_counter() - start
        start = time.perf_counter()
        self.make_room(*working.shape)
        cond = self.conditioning(working, prior)
        try:
            residual = sample_residual(
                self.model,
                cond,
                self.steps,
                self.seed,
                self.device,
                self.dtype,
                tile=self.tile if self.full_res else None,
            )
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise self.out_of_memory() from exc
        except RuntimeError as exc:  # the CPU and MPS allocators report exhaustion as a plain RuntimeError
            if not any(sign in str(exc) for sign in ("can't allocate memory", "out of memory")):
                raise
            raise self.out_of_memory() from exc
        work_output = np.clip(working.base + residual[0].permute(1, 2, 0).numpy(), 0.0, 1.0)
        timings["sample"] = time.perf_counter() - start
        return working, work_output, prior, timings

    def make_room(self, height: int, width: int) -> bool:
        """Ask the prior producer to free its memory when the device is short for sampling at this size.

        Returns whether it did.
        """
        release = getattr(self.prior_fn, "release", None)
        if release is None:
            return False
        free = free_bytes(self.device)
        need = sampling_bytes(height, width, self.config, self.dtype, self.tile if self.full_res else None)
        return free is not None and free < need and release()

    def finish(self, rgb: np.ndarray, working: WorkingCopy, work_output: np.ndarray) -> np.ndarray:
        """The last two steps on a working output: quiet the noise the gain lifted out of the shadows
        (`shadow_noise`, harder on a noisy photo sampled at its own size), then carry the result to full
        resolution (`reconstruct`)."""
        strength = self.shadow_denoise
        if working.shape == rgb.shape[:2] and lifted_noise(working.low) > NOISY:
            strength *= DIRECT_NOISE_BOOST
        work_output = suppress_shadow_noise(working.low, work_output, strength)
        if working.shape == rgb.shape[:2]:
            return np.clip(work_output, 0.0, 1.0).astype(np.float32)
        full_base = working.develop_full(rgb)
        return reconstruct(
            rgb, full_base, working.low, working.base, work_output, noise_threshold=self.detail_threshold
        )

    def out_of_memory(self) -> DeviceError:
        hint = Setting("tile" if self.full_res else "work_size")
        other = (", or ", Setting("device"), " cpu") if self.device.type != "cpu" else ()
        return DeviceError(f"out of memory on {self.device}: try a smaller ", hint, *other)

    def enhance(self, rgb: np.ndarray, prior: RegionPrior | None = None) -> EnhanceResult:
        """Enhance an H×W×3 float image in [0,1]; `prior` (at working resolution) skips prior extraction."""
        working, work_output, prior, timings = self.enhance_working(rgb, prior)
        start = time.perf_counter()
        out = self.finish(rgb, working, work_output)
        timings["reconstruct"] = time.perf_counter() - start
        return EnhanceResult(rgb=out, prior=prior, timings=timings)
