"""Training settings: one validated dataclass for `lowlight train`, and recipes, which are files of them.

`TrainSettings` is made like `EnhanceSettings`: the `train` command's options
are made from its fields (flag, default, help), `training.setup.prepare_run`
takes one, and each default is written here only. Torch-free.

A recipe is a TOML file of `TrainSettings` fields (`ssim_weight = 0.8`, the
field names, not the flags), read by `lowlight train --recipe FILE`; options
given on the command line override the file. Paths in a recipe are taken as
they would be on the command line, relative to the current folder. The
shipped model's recipes are in the repository's `recipes/` folder.
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowlight_cli.errors import InputError, Setting, UsageError
from lowlight_cli.settings.common import (
    SettingError,
    Settings,
    check_at_least,
    check_choice,
    check_share,
    meta,
)
from lowlight_cli.settings.enhance import DEVICE_CHOICES
from lowlight_cli.settings.names import DEFAULT_SAM_MODEL, PRIOR_KINDS, SAM_MODEL_TYPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

TONE_PARTS = ("all", "look")


@dataclass(frozen=True)
class TrainSettings(Settings):
    """What to train on, the model to train and how. Validated on creation; `data` and `out` are needed to run
    (`check_ready`), not to be valid, so that a recipe may leave them to the command line."""

    data: tuple[Path, ...] = field(
        default=(),
        metadata=meta(
            "--data",
            "DIR,...",
            "Comma-separated folders: SICE layout (pairs.csv), low/+high/ pairs, "
            "or plain photos for synthetic darkening.",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=meta(
            "--out",
            "PATH",
            "Checkpoint to write (.safetensors); <out>.state.safetensors holds the resumable state.",
        ),
    )
    init: Path | None = field(
        default=None,
        metadata=meta(
            "--init",
            "PATH",
            "Fine-tune: start from this checkpoint's weights ('default' = the shipped model) with a fresh "
            "optimiser and schedule. Ignored when --out already has a state to resume.",
        ),
    )
    save_every: int = field(default=200, metadata=meta("--save-every", "N", "Write checkpoint + state every N steps."))
    stop_at: int | None = field(
        default=None,
        metadata=meta(
            "--stop-at",
            "N",
            "End this run at this step (resumable later); the learning-rate schedule still spans --steps.",
        ),
    )
    steps: int = field(
        default=8000,
        metadata=meta("--steps", "N", "Denoiser optimiser steps (a resumed run continues to this count)."),
    )
    tone_steps: int = field(
        default=2500,
        metadata=meta(
            "--tone-steps",
            "N",
            "Steps of the global tone branch on whole frames, before the denoiser's steps (0 with --no-tone).",
        ),
    )
    batch_size: int = field(default=16, metadata=meta("--batch-size", "N", "Crops per denoiser step."))
    tone_batch_size: int = field(default=32, metadata=meta("--tone-batch-size", "N", "Whole frames per tone step."))
    crop: int = field(default=128, metadata=meta("--crop", "PX", "Crop side in pixels (a multiple of 8)."))
    native_share: float = field(
        default=0.0,
        metadata=meta(
            "--native-share",
            "SHARE",
            "Share of crops cut at the photo's own pixels instead of a random downscale, so the denoiser "
            "learns the full-size noise of small photos, which are sampled at their own size.",
        ),
    )
    lr: float = field(
        default=2e-4, metadata=meta("--lr", "RATE", "Peak learning rate of the denoiser (AdamW, cosine decay).")
    )
    tone_lr: float = field(default=1e-3, metadata=meta("--tone-lr", "RATE", "Peak learning rate of the tone phase."))
    ema_decay: float = field(
        default=0.999,
        metadata=meta("--ema-decay", "DECAY", "Decay of the exported weights' moving average (after a warm-up)."),
    )
    seed: int = field(default=0, metadata=meta("--seed", "N", "Random seed (initial weights and data order)."))
    base_channels: int = field(
        default=24, metadata=meta("--base-channels", "N", "U-Net width at full resolution (a multiple of 8).")
    )
    tone: bool = field(
        default=True,
        metadata=meta(
            "--tone/--no-tone",
            None,
            "Give the model a global tone branch (exposure, white balance, tone curve from a thumbnail of the "
            "whole photo); --no-tone keeps the first release's auto-gamma base.",
        ),
    )
    look: bool = field(
        default=True,
        metadata=meta(
            "--look/--no-look",
            None,
            "The tone branch also judges each photo's black point and local exposure (needs --tone).",
        ),
    )
    tone_parts: str = field(
        default="all",
        metadata=meta(
            "--tone-parts",
            None,
            "What the tone phase trains: the whole branch, or only its look head (black point, "
            "local exposure) on --init's finished branch.",
            TONE_PARTS,
        ),
    )
    no_diffusion: bool = field(
        default=False,
        metadata=meta(
            "--no-diffusion",
            None,
            "Train the plain U-Net regression baseline instead (with --prior none: no prior either).",
        ),
    )
    mean_start: bool = field(
        default=True,
        metadata=meta(
            "--mean-start/--no-mean-start",
            None,
            "Query the last timestep with zeros (the noise's mean) instead of a noise draw, in training and sampling.",
        ),
    )
    prior_map_scale: int = field(
        default=8,
        metadata=meta(
            "--prior-map-scale",
            "N",
            "Average the structural prior map over N×N blocks before the denoiser's first layer (1 = full resolution).",
        ),
    )
    ssim_weight: float = field(
        default=0.2,
        metadata=meta("--ssim-weight", "W", "Weight of the structure (1 - SSIM) term on the predicted image."),
    )
    colour_weight: float = field(
        default=0.1,
        metadata=meta("--colour-weight", "W", "Weight of the colour (1 - cosine) term on the predicted image."),
    )
    teacher_gains: bool = field(
        default=True,
        metadata=meta(
            "--teacher-gains/--no-teacher-gains",
            None,
            "Develop training photos at their target's exposure and white balance and learn those gains apart, "
            "so the curve learns contrast instead of hedging an uncertain exposure.",
        ),
    )
    semantic_weight: float = field(
        default=0.5, metadata=meta("--semantic-weight", "W", "Weight of the semantic-context regularisation loss.")
    )
    final_step_share: float = field(
        default=0.5,
        metadata=meta(
            "--final-step-share",
            "SHARE",
            "Share of diffusion samples at the last timestep, where few-step sampling queries the model.",
        ),
    )
    refine_share: float = field(
        default=0.0,
        metadata=meta(
            "--refine-share",
            "SHARE",
            "Share of diffusion samples at the 2-step sampler's second timestep, noised around the model's own "
            "first estimate, so that a second step corrects the first (costs one more forward pass for those "
            "samples).",
        ),
    )
    prior: str = field(
        default="fallback",
        metadata=meta(
            "--prior",
            None,
            "Region prior for training: fallback (built-in), sam, none, or auto, which trains on the built-in "
            "prior like fallback (it never downloads SAM; choose sam for SAM priors).",
            PRIOR_KINDS,
        ),
    )
    sam_model: str = field(
        default=DEFAULT_SAM_MODEL, metadata=meta("--sam-model", None, "SAM size when --prior sam.", SAM_MODEL_TYPES)
    )
    sam_checkpoint: Path | None = field(
        default=None, metadata=meta("--sam-checkpoint", None, "Local SAM checkpoint (.safetensors).")
    )
    device: str = field(default="auto", metadata=meta("--device", None, "Compute device.", DEVICE_CHOICES))
    threads: int = field(default=0, metadata=meta("--threads", "N", "CPU threads for torch (0 = torch's default)."))
    workers: int | None = field(
        default=None,
        metadata=meta(
            "--workers",
            "N",
            "Processes that load the data and make batches (0 = one background thread; default: up to 8 on "
            "CUDA, else 0).",
        ),
    )

    def __post_init__(self) -> None:
        data = (self.data,) if isinstance(self.data, (str, Path)) else self.data
        object.__setattr__(self, "data", tuple(Path(folder) for folder in data))  # frozen: set directly
        for name in ("out", "init", "sam_checkpoint"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        check_choice("tone_parts", self.tone_parts, TONE_PARTS)
        check_choice("prior", self.prior, PRIOR_KINDS)
        check_choice("sam_model", self.sam_model, SAM_MODEL_TYPES)
        check_choice("device", self.device, DEVICE_CHOICES)
        self.check_counts()
        self.check_model()
        self.check_losses()

    def check_counts(self) -> None:
        for name in ("steps", "batch_size", "tone_batch_size", "save_every", "stop_at", "prior_map_scale"):
            check_at_least(name, getattr(self, name), 1)
        for name in ("tone_steps", "threads", "workers"):
            check_at_least(name, getattr(self, name), 0)
        if self.crop < 16 or self.crop % 8:
            raise SettingError("crop", f"must be a multiple of 8 and at least 16, got {self.crop}")
        for name in ("lr", "tone_lr"):
            if not getattr(self, name) > 0:
                raise SettingError(name, f"must be positive, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise SettingError("ema_decay", f"must be in [0, 1), got {self.ema_decay}")

    def check_model(self) -> None:
        if self.base_channels < 8 or self.base_channels % 8:
            raise SettingError(
                "base_channels", f"must be a multiple of 8 (group normalisation), got {self.base_channels}"
            )
        if self.tone_parts == "look" and not self.look:
            raise SettingError("tone_parts", "look needs the look head (", Setting("look"), ")")
        if self.tone_steps and not self.tone:
            raise SettingError("tone_steps", "needs a tone branch: use ", Setting("tone_steps"), " 0 without one")

    def check_losses(self) -> None:
        for name in ("ssim_weight", "colour_weight", "semantic_weight"):
            check_at_least(name, getattr(self, name), 0)
        check_share("native_share", self.native_share)
        check_share("final_step_share", self.final_step_share)
        check_share("refine_share", self.refine_share, 1 - self.final_step_share, ("1 - ", Setting("final_step_share")))
        if self.refine_share and self.no_diffusion:
            raise SettingError("refine_share", "needs a diffusion model (not ", Setting("no_diffusion"), ")")

    def check_ready(self) -> None:
        """What a run needs beyond valid settings: data to train on and a checkpoint to write."""
        if not self.data:
            raise SettingError("data", "names no folder: give the training data's folders")
        if self.out is None:
            raise SettingError("out", "is needed: the checkpoint to write")

    def model_config_fields(self) -> dict[str, Any]:
        """The `ModelConfig` fields these settings choose (the rest keep ModelConfig's own values)."""
        return dict(
            base_channels=self.base_channels,
            diffusion=not self.no_diffusion,
            use_prior=self.prior != "none",
            mean_start=self.mean_start and not self.no_diffusion,
            prior_map_scale=self.prior_map_scale,
            tone_curve=self.tone,
            tone_look=self.tone and self.look,
        )

    @property
    def prior_kind(self) -> str:
        """The prior the data is labelled with: `auto` trains on the built-in one (it never downloads SAM)."""
        return "fallback" if self.prior == "auto" else self.prior

    @classmethod
    def from_recipe(cls, path: Path, **given: Any) -> TrainSettings:
        """The settings of recipe `path`, with `given` (the command line's) over the file's.

        A bad value from the file is named as the recipe names it."""
        values = read_recipe(path)
        try:
            return cls(**{**values, **given})
        except SettingError as exc:
            if exc.setting in given or exc.setting not in values:
                raise
            raise RecipeError(path, exc.setting, exc.reason) from None


class RecipeError(SettingError):
    """A bad setting in a recipe file, worded as the file words it (`recipe.toml: crop must be ...`)."""

    def __init__(self, path: Path, setting: str, reason: str) -> None:
        self.setting, self.reason = setting, reason
        UsageError.__init__(self, f"{path}: {setting} {reason}")  # the file's name for it, not a Setting part


def read_recipe(path: Path) -> dict[str, Any]:
    """The `TrainSettings` fields a recipe file sets, each of its field's type (not yet validated together)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the recipe ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not a TOML recipe ({exc})") from None
    hints = typing.get_type_hints(TrainSettings)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise UsageError(
            f"{path}: no setting named {', '.join(unknown)} (a recipe uses the settings' names: ssim_weight for "
            "--ssim-weight)"
        )
    return {name: recipe_value(path, name, value, hints[name]) for name, value in raw.items()}


def recipe_value(path: Path, name: str, value: Any, hint: Any) -> Any:
    """`value` as field `name` of type `hint` takes it (a path from a string, a number from an integer)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None: TOML has no None, so an X
        hint = next(kind for kind in typing.get_args(hint) if kind is not type(None))
    if typing.get_origin(hint) is tuple:  # the data folders: a list of paths
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(Path(item) for item in value)
    elif hint is Path and isinstance(value, str):
        return Path(value)
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint in (bool, str) and isinstance(value, hint):
        return value
    wanted = {float: "a number", int: "an integer", bool: "true or false", str: "a string", Path: "a path"}
    raise RecipeError(path, name, f"must be {wanted.get(hint, 'a list of folders')}, got {value!r}")
