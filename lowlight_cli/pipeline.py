"""`Pipeline`: one photo's enhancement, composed of parts handed in, run as explicit stages over one `State`.

The parts are the denoiser, the look (the tone branch, which judges a photo
and develops its working copy), the region-prior producer and the sampler's
settings (steps, seed, tiles). `build` loads them once from
`EnhanceSettings` (the checkpoint, a SAM model), as segment-anything's
builders and diffusers' `from_pretrained` do; a part may also be handed in
(`dataclasses.replace(pipeline, prior=producer)`). A `Pipeline` is frozen:
batch, video, the Python API and a Ray actor share one without one caller's
change reaching another's photos. Other settings make a new pipeline over
the same loaded parts (`with_settings`), and `steps` and `seed` are
arguments of each call.

One photo flows through the stages, each taking a `State` and returning it
with its own part filled in:

    start (the photo) → prepare (working copy) → find_prior → sample (DDIM)
      → finish (shadow noise, then reconstruction to full resolution)

Video (`run/temporal.py`) runs the same stages: it prepares each frame's
working copy with its shot's tone judgement (`shrink`, `judge`,
`develop_copy`), hands in the shot's prior, and smooths the working output
over time between `sample` and `finish`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.models.denoiser import PriorGuidedDenoiser
from lowlight_cli.models.tone import ToneEstimator, ToneParams, is_night
from lowlight_cli.priors.factory import PriorFn, make_prior_fn
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
# --highlights as the roll-off takes it: local exposure first, never, or for a night scene (`tone.is_night`)
LOCAL: dict[str, bool | None] = {"local": True, "curve": False, "auto": None}
# The settings that choose the parts themselves (which checkpoint, where, which prior producer): changing one
# loads other parts, so it takes `build`, not `with_settings`.
PART_SETTINGS = frozenset({"model", "device", "prior", "sam_model", "sam_checkpoint"})


def lifted_noise(rgb: np.ndarray) -> float:
    """The input's luma noise σ times the gain that brings its mean to 0.45: how loud brightening makes it."""
    y = luma(rgb, REC601)
    return input_noise_sigma(y) * 0.45 / max(float(y.mean()), 1e-3)


@dataclass(frozen=True)
class EnhanceResult:
    """What `Pipeline.enhance` gives back: the full-resolution photo, the prior it was guided by, and what each
    stage cost (seconds, by stage: prepare, prior, sample, reconstruct)."""

    rgb: np.ndarray  # full resolution, float32 in [0,1]
    prior: RegionPrior
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    """One photo between stages: each stage fills in its part and returns a new state.

    Video hands a stage a state it changed (a shot's prior, a working output
    averaged over time), so the parts are plain fields rather than hidden in
    the pipeline.
    """

    rgb: np.ndarray  # the photo, H×W×3 float32 in [0,1], full resolution
    working: WorkingCopy | None = None  # `prepare`: the working copy and its developed base
    prior: RegionPrior | None = None  # `find_prior`, or handed in (one of another size is made afresh)
    output: np.ndarray | None = None  # `sample`: the working-resolution output
    result: np.ndarray | None = None  # `finish`: the full-resolution output
    timings: Mapping[str, float] = field(default_factory=dict)

    def timed(self, stage: str, began: float, **changes: Any) -> State:
        """The state with `changes` and the seconds since `began` recorded for `stage`."""
        return replace(self, timings={**self.timings, stage: time.perf_counter() - began}, **changes)


def _needed(value: Any, stage: str) -> Any:
    """`value`, which an earlier stage sets; a stage run out of order is a bug in the caller."""
    if value is None:
        raise ValueError(f"run the {stage} stage first")
    return value


@dataclass(frozen=True)
class Pipeline:
    """The parts and the settings that steer them; `enhance(rgb)` runs every stage on one photo.

    Made by `build` (or from parts handed in); frozen, so one pipeline can
    serve every photo of a batch, every frame of a video and every thread.
    """

    denoiser: PriorGuidedDenoiser  # on `device`, in `dtype`
    look: ToneEstimator | None  # the tone branch: a 64-px thumbnail's judgement, on the CPU in float32
    prior: PriorFn | None  # the region-prior producer (None: `--prior none`)
    settings: EnhanceSettings  # the sampler's (steps, seed, full_res, tile) and the look's and finish's
    device: torch.device
    dtype: torch.dtype
    model_name: str = "in use"  # how errors about the model's output name it (run.photo.check_finite)

    def __post_init__(self) -> None:
        """Check the settings against the parts, however the pipeline was made (`build`, `with_settings`)."""
        check_against(self.settings, self.denoiser, self.look)

    @property
    def config(self) -> ModelConfig:
        return self.denoiser.config

    def with_settings(self, **changes: Any) -> Pipeline:
        """A pipeline over the same loaded parts with `changes` to its settings (validated); the settings that
        choose the parts (`PART_SETTINGS`) take `build` instead."""
        parts = sorted(PART_SETTINGS & set(changes))
        if parts:
            raise ValueError(f"{', '.join(parts)} choose the pipeline's parts: build a new pipeline for them")
        return replace(self, settings=self.settings.with_changes(**changes))

    # --- the stages ------------------------------------------------------------------------------------------
    def start(self, rgb: np.ndarray, prior: RegionPrior | None = None) -> State:
        """The state of a photo no stage has run on; `prior` (at working resolution) skips prior extraction."""
        return State(rgb=rgb, prior=prior)

    def prepare(self, state: State) -> State:
        """The working copy (`shrink`'s image, developed by the look's own judgement), unless one is there."""
        if state.working is not None:
            return state
        began = time.perf_counter()
        return state.timed("prepare", began, working=self.develop_copy(self.shrink(state.rgb)))

    def find_prior(self, state: State) -> State:
        """The region prior of the working copy's base, unless the state holds one of its size."""
        working = _needed(state.working, "prepare")
        began = time.perf_counter()
        prior = state.prior
        if prior is None or prior.labels.shape != working.shape:
            prior = self.prior(working.base) if self.prior is not None else RegionPrior.empty(*working.shape)
        return state.timed("prior", began, prior=prior)

    def sample(self, state: State, steps: int | None = None, seed: int | None = None) -> State:
        """DDIM × `steps` of the denoiser from the noise of `seed` (the settings' when None): the working output."""
        working, prior = _needed(state.working, "prepare"), _needed(state.prior, "find_prior")
        steps = self.settings.steps if steps is None else steps
        check_steps(steps, self.config.num_train_timesteps)
        began = time.perf_counter()
        self.make_room(*working.shape)
        cond = self.conditioning(working, prior)
        tile = self.settings.tile if self.settings.full_res else None
        try:
            residual = sample_residual(
                self.denoiser,
                cond,
                steps,
                self.settings.seed if seed is None else seed,
                self.device,
                self.dtype,
                tile=tile,
            )
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise self.out_of_memory() from exc
        except RuntimeError as exc:  # the CPU and MPS allocators report exhaustion as a plain RuntimeError
            if not any(sign in str(exc) for sign in ("can't allocate memory", "out of memory")):
                raise
            raise self.out_of_memory() from exc
        output = np.clip(working.base + residual[0].permute(1, 2, 0).numpy(), 0.0, 1.0)
        return state.timed("sample", began, output=output)

    def finish(self, state: State) -> State:
        """The last steps on the working output: quiet the noise the gain lifted out of the shadows
        (`shadow_noise`, harder on a noisy photo sampled at its own size), carry the result to full
        resolution (`reconstruct`), and hand back the share of the photo held as it is (`WorkingCopy.held`)."""
        working, output, rgb = _needed(state.working, "prepare"), _needed(state.output, "sample"), state.rgb
        began = time.perf_counter()
        direct = working.shape == rgb.shape[:2]
        strength = self.settings.shadow_denoise
        if direct and lifted_noise(working.low) > NOISY:
            strength *= DIRECT_NOISE_BOOST
        output = suppress_shadow_noise(working.low, output, strength)
        if direct:
            result = np.clip(output, 0.0, 1.0).astype(np.float32)
        else:
            rows = working.develop_full(rgb)
            threshold, workers = self.settings.detail_threshold, torch.get_num_threads()
            result = reconstruct(rgb, rows, working.low, working.base, output, threshold, workers)
        if working.held > 0:  # what needed no development needs no denoising either: the photo's own pixels
            result += np.float32(working.held) * (rgb - result)
        return state.timed("reconstruct", began, result=result)

    def enhance(
        self, rgb: np.ndarray, prior: RegionPrior | None = None, *, steps: int | None = None, seed: int | None = None
    ) -> EnhanceResult:
        """Enhance an H×W×3 float image in [0,1] through every stage; `prior` (at working resolution) skips
        prior extraction; `steps` and `seed` default to the settings'."""
        state = self.sample(self.find_prior(self.prepare(self.start(rgb, prior))), steps, seed)
        state = self.finish(state)
        return EnhanceResult(
            rgb=_needed(state.result, "finish"), prior=_needed(state.prior, "find_prior"), timings=state.timings
        )

    # --- what the stages are made of (video prepares its own working copy with them) ---------------------------
    def shrink(self, rgb: np.ndarray, direct: bool | None = None) -> np.ndarray:
        """The image at the resolution the denoiser runs at: full size with --full-res or when small.

        `direct` overrides that choice (video never samples small frames directly: see `temporal.enhance_frame`).
        """
        long_side = max(rgb.shape[:2])
        if direct is None:
            direct = self.settings.full_res or long_side <= self.settings.direct_size
        return shrink(rgb, long_side if direct else self.settings.work_size)

    def local_highlights(self, low: np.ndarray) -> bool:
        """Whether the highlight roll-off lowers lit regions locally first for this working-size image: as
        `--highlights local` or `curve` say, or for `auto` whether it is a night scene (`tone.is_night`)."""
        chosen = LOCAL[self.settings.highlights]
        return bool(is_night(to_tensor(low))[0]) if chosen is None else chosen

    def judge(self, low: np.ndarray, local: bool | None = None) -> ToneParams | None:
        """The look's judgement of a working-size image (None for a model without a tone branch); `local`:
        the roll-off's choice when made elsewhere (video: once per shot), else `local_highlights`'s. A
        part-lit photo's lit regions are held near their level only when the user chose `local`."""
        if self.look is None:
            return None
        chosen = LOCAL[self.settings.highlights]
        with torch.no_grad():
            return judge(to_tensor(low), self.look, local=chosen if local is None else local, keep_level=chosen is True)

    def develop_copy(self, low: np.ndarray, params: ToneParams | None = None) -> WorkingCopy:
        """A working copy of the working-size `low`, its base developed by `params` (video: a shot's
        judgement), or by the look's own judgement of `low` when None; with the user's exposure bias."""
        judged = params if params is not None else self.judge(low)
        brightness, ev = self.config.target_brightness, self.settings.exposure

        def base(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return develop(tensor, self.look, brightness, ev=ev, params=judged)

        def full(rgb: np.ndarray) -> Callable[[slice], np.ndarray]:
            return develop_full(rgb, to_tensor(low), judged, brightness, ev)

        # a photo held as it is comes back as it went in, unless the user asked for another exposure
        held = float(judged.held[0]) if judged is not None and ev == 0 else 0.0
        return developed(low, base, full, held)

    def conditioning(self, working: WorkingCopy, prior: RegionPrior) -> Conditioning:
        """What the denoiser is conditioned on: the base, its log gain, and the prior capped to the model's
        regions."""
        return Conditioning.from_prior(
            to_tensor(working.base),
            torch.tensor([working.log_gain], dtype=torch.float32),
            prior,
            self.config.max_regions,
        )

    def make_room(self, height: int, width: int) -> bool:
        """Ask the prior producer to free its memory when the device is short for sampling at this size.

        Returns whether it did.
        """
        release = getattr(self.prior, "release", None)
        if release is None:
            return False
        free = free_bytes(self.device)
        tile = self.settings.tile if self.settings.full_res else None
        need = sampling_bytes(height, width, self.config, self.dtype, tile)
        return free is not None and free < need and release()

    def out_of_memory(self) -> DeviceError:
        hint = Setting("tile" if self.settings.full_res else "work_size")
        other = (", or ", Setting("device"), " cpu") if self.device.type != "cpu" else ()
        return DeviceError(f"out of memory on {self.device}: try a smaller ", hint, *other)


def build(
    settings: EnhanceSettings | None = None,
    *,
    denoiser: PriorGuidedDenoiser | None = None,
    model_name: str | None = None,
    notify: Callable[[str], None] = lambda message: None,
    **options: Any,
) -> Pipeline:
    """A `Pipeline` with its parts loaded from `settings` (or their fields as keyword arguments:
    `build(steps=2, device="cpu")`).

    The parts: the checkpoint `settings.model` names, or a `denoiser` already
    in memory; its tone branch copied to the CPU as the look; the prior
    producer `settings.prior` names (`none` for a model trained without
    priors, said through `notify`). `model_name` names the model in errors
    about its output (a Ray worker's copy of the checkpoint is named as the
    user gave it); by default `settings.model`.
    """
    settings = (settings or EnhanceSettings()).with_changes(**options)
    device = resolve_device(settings.device)
    dtype = autocast_dtype(device) or torch.float32
    if denoiser is not None:
        name = model_name or "in use"
        denoiser = denoiser.to(device).eval()
    else:
        name = model_name or settings.model
        denoiser = load_checkpoint(resolve_model_path(settings.model), device)
    # The tone branch sees a 64-px thumbnail: it runs on the CPU in float32 whatever the denoiser's device.
    look = copy.deepcopy(denoiser.tone).float().cpu() if denoiser.tone is not None else None
    denoiser.to(dtype=dtype)
    check_against(settings, denoiser, look)  # before a SAM model is loaded for nothing
    prior_kind = settings.prior
    if not denoiser.config.use_prior and prior_kind != "none":
        notify("this model was trained without region priors: running it without one (prior none)")
        prior_kind = "none"
    producer = make_prior_fn(
        prior_kind,
        denoiser.config.max_regions,
        settings.sam_model,
        settings.sam_checkpoint,
        device=str(device),
        notify=notify,
    )
    return Pipeline(denoiser, look, producer, settings, device, dtype, name)


def check_against(settings: EnhanceSettings, denoiser: PriorGuidedDenoiser, look: ToneEstimator | None) -> None:
    """The settings' checks that need the model: steps within its schedule, an exposure bias only with a look."""
    if settings.exposure and look is None:
        raise SettingError("exposure", "needs a model with a tone branch; this checkpoint predates it")
    check_steps(settings.steps, denoiser.config.num_train_timesteps)
