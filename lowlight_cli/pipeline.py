"""`Enhancer`: the Python API the CLI is a thin layer over.

Load the denoiser and the prior producer once, then `enhance()` many images.
One photo flows: working copy → region prior → DDIM sampling → shadow-noise
suppression → reconstruction to full resolution. Batch and video reuse one `Enhancer`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lowlight_cli.checkpoint import load_checkpoint
from lowlight_cli.condition import develop
from lowlight_cli.devices import autocast_dtype, resolve_device
from lowlight_cli.diffusion.sampling import Conditioning, sample_residual
from lowlight_cli.errors import DeviceError, UsageError, WeightsError
from lowlight_cli.memory import free_bytes, sampling_bytes
from lowlight_cli.models.denoiser import PriorGuidedDenoiser
from lowlight_cli.prepare import WorkingCopy, make_working_copy, to_tensor
from lowlight_cli.priors.factory import make_prior_fn
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.reconstruct import reconstruct
from lowlight_cli.shadow_noise import input_noise_sigma, luma, suppress_shadow_noise

DEFAULT_MODEL = "lowlight-default"
DEFAULT_STEPS = 1
DEFAULT_WORK_SIZE = 384
DEFAULT_DETAIL_THRESHOLD = 2.0  # noise sigmas; 0 scores higher on the 512-px eval sets, but in big photos this band is grain (README)
DEFAULT_SHADOW_DENOISE = 0.5  # x expected noise; neutral on SICE val, +0.07 SSIM on the cast + noise set (README)
# Photos up to this long side are sampled at their own size when they are clean enough: for them the
# working copy's reconstruction costs more structure (SICE val SSIM) than the extra pixels cost time.
DEFAULT_DIRECT_SIZE = 640
# ...but only while the noise brightening will lift (input noise σ × the gain to a mean of 0.45) stays under
# this: full-size noise is what the denoiser, trained on mostly downscaled crops, removes worst, where the
# working copy's area averaging removes it for free (casts + noise set: SSIM 0.54 sampled directly, 0.70 not).
DIRECT_MAX_NOISE = 0.02
MAX_EXPOSURE = 3.0  # stops either way; the tone branch was trained with biases within ±2


def default_model_path() -> Path:
    """The checkpoint installed with the package (top-level `weights/` in the repo).

    Installed, `weights/` is the package `lowlight_cli.bundled_weights`; run from a
    source checkout (tests, development), it is the folder beside `lowlight_cli/`.
    """
    filename = f"{DEFAULT_MODEL}.safetensors"
    try:
        return Path(str(resources.files("lowlight_cli.bundled_weights").joinpath(filename)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "weights" / filename


def resolve_model_path(model: str | Path, option: str = "--model") -> Path:
    """`default`/`lowlight-default` → the bundled file; anything else must be a .safetensors path.

    `option` names the command-line option the path came from, for the error message.
    """
    if str(model) in {"default", DEFAULT_MODEL}:
        path = default_model_path()
        if not path.exists():
            raise WeightsError(
                f"the bundled default model is missing ({path}); reinstall lowlight-cli or pass --model PATH")
        return path
    path = Path(model)
    if not path.exists():
        raise WeightsError(f"{option} {model}: no such checkpoint file (use 'default' or a .safetensors path)")
    return path


def lifted_noise(rgb: np.ndarray) -> float:
    """The input's luma noise σ times the gain that brings its mean to 0.45: how loud brightening makes it."""
    y = luma(rgb)
    return input_noise_sigma(y) * 0.45 / max(float(y.mean()), 1e-3)


@dataclass
class EnhanceResult:
    rgb: np.ndarray  # full resolution, float32 in [0,1]
    prior: RegionPrior
    timings: dict[str, float] = field(default_factory=dict)


class Enhancer:
    """Loads models once; `enhance(rgb)` then runs the whole pipeline on one image."""

    def __init__(self, model: str | Path | PriorGuidedDenoiser = "default", device: str = "auto",
                 prior: str = "auto", sam_model: str = "vit_b", sam_checkpoint: Path | None = None,
                 steps: int = DEFAULT_STEPS, work_size: int = DEFAULT_WORK_SIZE, seed: int = 0,
                 full_res: bool = False, tile: int = 512, detail_threshold: float = DEFAULT_DETAIL_THRESHOLD,
                 shadow_denoise: float = DEFAULT_SHADOW_DENOISE, exposure: float = 0.0,
                 direct_size: int = DEFAULT_DIRECT_SIZE, notify: Callable[[str], None] = lambda m: None) -> None:
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        if work_size < 16:
            raise UsageError(f"--work-size must be at least 16 pixels, got {work_size}")
        if tile < 64:
            raise UsageError(f"--tile must be at least 64 pixels, got {tile}")
        if detail_threshold < 0:
            raise UsageError(f"--detail-threshold must be at least 0, got {detail_threshold}")
        if shadow_denoise < 0:
            raise UsageError(f"--shadow-denoise must be at least 0, got {shadow_denoise}")
        if not -MAX_EXPOSURE <= exposure <= MAX_EXPOSURE:
            raise UsageError(f"--exposure must be within ±{MAX_EXPOSURE:g} EV, got {exposure:g}")
        if direct_size < 0:
            raise UsageError(f"direct_size must be at least 0, got {direct_size}")
        self.device = resolve_device(device)
        self.dtype = autocast_dtype(self.device) or torch.float32
        if isinstance(model, PriorGuidedDenoiser):
            self.model = model.to(self.device).eval()
        else:
            self.model = load_checkpoint(resolve_model_path(model), self.device)
        # The tone branch sees a 64-px thumbnail: it runs on the CPU in float32 whatever the denoiser's device.
        self.tone = copy.deepcopy(self.model.tone).float().cpu() if self.model.tone is not None else None
        self.model.to(dtype=self.dtype)
        config = self.model.config
        if exposure and self.tone is None:
            raise UsageError("--exposure needs a model with a tone branch; this checkpoint predates it")
        if steps > config.num_train_timesteps:
            raise UsageError(f"--steps must be at most {config.num_train_timesteps} (the schedule length), got {steps}")
        self.steps, self.work_size, self.seed = steps, work_size, seed
        self.full_res, self.tile, self.detail_threshold = full_res, tile, detail_threshold
        self.shadow_denoise, self.exposure, self.direct_size = shadow_denoise, exposure, direct_size
        if not config.use_prior and prior != "none":
            notify("this model was trained without region priors: running it with --prior none")
            prior = "none"
        self.prior_fn = make_prior_fn(prior, config.max_regions, sam_model, sam_checkpoint,
                                      device=str(self.device), notify=notify)

    @property
    def config(self):
        return self.model.config

    def compute_prior(self, working: WorkingCopy) -> RegionPrior:
        if self.prior_fn is None:
            return RegionPrior.empty(*working.shape)
        return self.prior_fn(working.base)

    def conditioning(self, working: WorkingCopy, prior: RegionPrior) -> Conditioning:
        max_regions = self.config.max_regions
        scores = np.zeros((1, max_regions), np.float32)
        scores[0, : prior.num_regions] = prior.scores[:max_regions]
        return Conditioning(
            base=to_tensor(working.base),
            log_gain=torch.tensor([working.log_gain], dtype=torch.float32),
            labels=torch.from_numpy(np.minimum(prior.labels, max_regions).astype(np.int64))[None],
            scores=torch.from_numpy(scores),
            boundary=torch.from_numpy(prior.boundary.astype(np.float32))[None, None],
        )

    def working_copy(self, rgb: np.ndarray, direct: bool | None = None) -> WorkingCopy:
        """The image at the resolution the denoiser runs at: full size with --full-res or when small and clean.

        `direct` overrides that choice (video never samples small frames directly: see `video.enhance_frame`).
        """
        long_side = max(rgb.shape[:2])
        if direct is None:
            direct = self.full_res or (long_side <= self.direct_size and lifted_noise(rgb) <= DIRECT_MAX_NOISE)
        return make_working_copy(rgb, long_side if direct else self.work_size, self.develop)

    def develop(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base of a (1,3,H,W) working copy and its log gain, with the user's exposure bias."""
        return develop(low, self.tone, self.config.target_brightness, ev=self.exposure)

    def enhance_working(self, rgb: np.ndarray, prior: RegionPrior | None = None, working: WorkingCopy | None = None
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
            residual = sample_residual(self.model, cond, self.steps, self.seed, self.device, self.dtype,
                                       tile=self.tile if self.full_res else None)
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

    def reconstruct(self, rgb: np.ndarray, working: WorkingCopy, work_output: np.ndarray) -> np.ndarray:
        """Quiet the noise the gain lifted out of the shadows, then carry the result to full resolution."""
        work_output = suppress_shadow_noise(working.low, work_output, self.shadow_denoise)
        return reconstruct(rgb, working.low, work_output, noise_threshold=self.detail_threshold, device=self.device)

    def out_of_memory(self) -> DeviceError:
        hint = "a smaller --tile" if self.full_res else "a smaller --work-size"
        return DeviceError(f"out of memory on {self.device}: try {hint}"
                           + (", or --device cpu" if self.device.type != "cpu" else ""))

    def enhance(self, rgb: np.ndarray, prior: RegionPrior | None = None) -> EnhanceResult:
        """Enhance an H×W×3 float image in [0,1]; `prior` (at working resolution) skips prior extraction."""
        working, work_output, prior, timings = self.enhance_working(rgb, prior)
        start = time.perf_counter()
        out = self.reconstruct(rgb, working, work_output)
        timings["reconstruct"] = time.perf_counter() - start
        return EnhanceResult(rgb=out, prior=prior, timings=timings)
