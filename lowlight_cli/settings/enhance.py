"""Enhancement settings: one validated dataclass, its defaults and its choice lists.

The one place that says what `--steps`, `--work-size`, `--prior`… are, what
they default to and which values are allowed. The command-line options of
every enhancing command (`cli/options.py`) and the keyword arguments of the
Python API (`api.Enhancer`) are both made from `EnhanceSettings`, and the
pipeline takes one. Torch-free, so that `lowlight --help` stays instant.

A bad value raises `SettingError` (`settings/common.py`), which names the
setting and words its message with the command-line option the field is
exposed as (`--steps must be at least 1, got 0`), since the CLI and the
API's keyword arguments are the same options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lowlight_cli.settings.common import SettingError, Settings, check_at_least, check_choice, meta
from lowlight_cli.settings.names import DEFAULT_SAM_MODEL, PRIOR_KINDS, SAM_MODEL_TYPES

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
HIGHLIGHT_MODES = ("auto", "curve", "local")

DEFAULT_MODEL = "lowlight-default"
DEFAULT_STEPS = 1
DEFAULT_WORK_SIZE = 384
DEFAULT_DETAIL_THRESHOLD = (
    2.0  # noise sigmas; 0 scores higher on the 512-px eval sets, but in big photos this band is grain (README)
)
DEFAULT_SHADOW_DENOISE = 0.5  # x expected noise; neutral on SICE val, +0.07 SSIM on the cast + noise set (README)
DEFAULT_TILE = 512
# Photos up to this long side are sampled at their own size when they are clean enough: for them the
# working copy's reconstruction costs more structure (SICE val SSIM) than the extra pixels cost time.
DEFAULT_DIRECT_SIZE = 640
MAX_EXPOSURE = 3.0  # stops either way; the tone branch was trained with biases within ±2
MIN_WORK_SIZE = 16
MIN_TILE = 64


def check_steps(steps: int, schedule_length: int | None = None) -> None:
    """Steps run by the DDIM sampler: at least 1, at most the model's schedule length when known."""
    if steps < 1:
        raise SettingError("steps", f"must be at least 1, got {steps}")
    if schedule_length is not None and steps > schedule_length:
        raise SettingError("steps", f"must be at most {schedule_length} (the schedule length), got {steps}")


@dataclass(frozen=True)
class EnhanceSettings(Settings):
    """How to enhance: the model, where it runs, and every knob of the pipeline. Validated on creation."""

    steps: int = field(
        default=DEFAULT_STEPS,
        metadata=meta(
            "--steps",
            "N",
            "DDIM sampling steps (1 to 1000). The default 1 is the model's one-pass estimate and "
            "scores best on every evaluation set; more steps add sampled texture that scores lower on "
            "every set we measure (docs/EXPERIMENTS.md) and cost one denoiser pass each, at --work-size "
            "(most photos up to 640 px: at their own, larger size). A busy 2-core CPU: 1200x900 5.5 s at "
            "1 step, 13 s at 4; 640x480 7.3 s at 1, 26 s at 4.",
        ),
    )
    seed: int = field(
        default=0,
        metadata=meta(
            "--seed",
            "N",
            "Noise seed: the same seed draws the same noise on every device (CUDA computes in 16 bits, "
            "so slightly different pixels). At 1 step the default model starts from the noise's mean, "
            "so only --steps > 1 uses it.",
        ),
    )
    device: str = field(
        default="auto", metadata=meta("--device", None, "auto picks CUDA, then Apple MPS, then CPU.", DEVICE_CHOICES)
    )
    model: str = field(
        default="default",
        metadata=meta("--model", "default|PATH", "'default' (bundled) or a .safetensors checkpoint path."),
    )
    prior: str = field(
        default="auto",
        metadata=meta(
            "--prior",
            None,
            "Region prior: auto (SAM if its weights are present, else the built-in one), sam, "
            "fallback (built-in), or none.",
            PRIOR_KINDS,
        ),
    )
    sam_model: str = field(
        default=DEFAULT_SAM_MODEL, metadata=meta("--sam-model", None, "SAM size for --prior sam/auto.", SAM_MODEL_TYPES)
    )
    sam_checkpoint: Path | None = field(
        default=None,
        metadata=meta("--sam-checkpoint", None, "Local SAM .safetensors (Hugging Face or segment-anything names)."),
    )
    work_size: int = field(
        default=DEFAULT_WORK_SIZE,
        metadata=meta(
            "--work-size",
            "PX",
            "Long side (px) at which the diffusion model runs; the result is carried to full "
            "resolution by guided reconstruction. Photos up to 640 px with little noise are "
            "sampled at their own size.",
        ),
    )
    detail_threshold: float = field(
        default=DEFAULT_DETAIL_THRESHOLD,
        metadata=meta(
            "--detail-threshold",
            "SIGMAS",
            "When carrying the result to full resolution, keep the colour of the photo's "
            "fine detail only above this many noise sigmas (its grey texture is always kept). "
            "Lower keeps more colour noise; 0 keeps all of it.",
            min=0.0,
        ),
    )
    shadow_denoise: float = field(
        default=DEFAULT_SHADOW_DENOISE,
        metadata=meta(
            "--shadow-denoise",
            "K",
            "Smooth noise the brightening lifts out of near-black areas (night skies, deep "
            "shadow): strength in units of the expected noise. 0 turns it off; above 1 also "
            "flattens texture.",
            min=0.0,
        ),
    )
    exposure: float = field(
        default=0.0,
        metadata=meta(
            "--exposure",
            "EV",
            "Brightness bias in EV around the model's own choice, -3..+3 (its judgement is trained "
            "within about ±2); applied through "
            "the model's tone conditioning, 0 = the model's choice.",
            min=-MAX_EXPOSURE,
            max=MAX_EXPOSURE,
        ),
    )
    highlights: str = field(
        default="auto",
        metadata=meta(
            "--highlights",
            None,
            "What keeps highlights the brightening would blow: curve (the tone curve's shoulder "
            "is compressed; bright skies stay bright, as in a single exposure), local (lit "
            "regions the camera already exposed, a floodlit facade at night, a candle, a window, "
            "are brought down as a whole and keep their detail; a bright sky can come out darker, "
            "except in a daylight photo more than a tenth lit, whose lit part rises half a stop at "
            "most and keeps its colour) "
            "or auto (local for a night scene, most of the frame near black; curve otherwise).",
            HIGHLIGHT_MODES,
        ),
    )
    full_res: bool = field(
        default=False,
        metadata=meta("--full-res", None, "Sample at full resolution in blended tiles instead (slow; GPU advised)."),
    )
    tile: int = field(default=DEFAULT_TILE, metadata=meta("--tile", "PX", "Tile side for --full-res."))
    direct_size: int = field(default=DEFAULT_DIRECT_SIZE, metadata=meta())  # Python API and benchmarks only

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model))  # a path may come as a Path (frozen: set directly)
        if self.sam_checkpoint is not None:
            object.__setattr__(self, "sam_checkpoint", Path(self.sam_checkpoint))
        check_choice("device", self.device, DEVICE_CHOICES)
        check_choice("prior", self.prior, PRIOR_KINDS)
        check_choice("highlights", self.highlights, HIGHLIGHT_MODES)
        check_choice("sam_model", self.sam_model, SAM_MODEL_TYPES)
        check_steps(self.steps)
        limits = (
            ("work_size", self.work_size, MIN_WORK_SIZE, " pixels"),
            ("tile", self.tile, MIN_TILE, " pixels"),
            ("detail_threshold", self.detail_threshold, 0, ""),
            ("shadow_denoise", self.shadow_denoise, 0, ""),
            ("direct_size", self.direct_size, 0, ""),
        )
        for name, value, least, unit in limits:
            check_at_least(name, value, least, unit)
        if not -MAX_EXPOSURE <= self.exposure <= MAX_EXPOSURE:
            raise SettingError("exposure", f"must be within ±{MAX_EXPOSURE:g} EV, got {self.exposure:g}")

    def describe(self) -> str:
        """One line for `--verbose`: what the run uses."""
        return (
            f"{self.steps} steps, work size {self.work_size}, prior {self.prior}, "
            f"exposure {self.exposure:+g} EV, highlights {self.highlights}"
        )
