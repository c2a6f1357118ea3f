"""The prior registry: each prior kind (`settings.names.PRIOR_KINDS`) → the function that builds its producer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowlight_cli.checkpoints.locate import locate_sam_checkpoint
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.settings.names import DEFAULT_SAM_MODEL, sam_size

PriorFn = Callable[[np.ndarray], RegionPrior]


@dataclass(frozen=True)
class PriorRequest:
    """What a producer is built for: the model's region count, the SAM choice, the device, and whom to tell."""

    max_regions: int
    sam_model: str = DEFAULT_SAM_MODEL
    sam_checkpoint: Path | None = None
    device: str = "cpu"
    notify: Callable[[str], None] = lambda message: None


def _none(request: PriorRequest) -> PriorFn | None:
    return None


def _fallback(request: PriorRequest) -> PriorFn:
    from lowlight_cli.priors.fallback import fallback_prior

    return lambda base_rgb: fallback_prior(base_rgb, max_regions=request.max_regions)


def _sam_or_fallback(request: PriorRequest, download: bool) -> PriorFn:
    path = locate_sam_checkpoint(request.sam_model, request.sam_checkpoint, download=download)
    if path is not None:
        from lowlight_cli.priors.sam import SamPriorProducer

        return SamPriorProducer(request.sam_model, path, device=request.device, max_regions=request.max_regions)
    request.notify(
        f"SAM {request.sam_model} weights not found locally: using the built-in region prior "
        f"(run `lowlight models download {sam_size(request.sam_model).checkpoint}` to use SAM)"
    )
    return _fallback(request)


def _sam(request: PriorRequest) -> PriorFn:
    """SAM, downloaded when it is not on disk yet."""
    return _sam_or_fallback(request, download=True)


def _auto(request: PriorRequest) -> PriorFn:
    """SAM when its weights are already on disk (never downloads silently), else the built-in prior."""
    return _sam_or_fallback(request, download=False)


PRODUCERS: dict[str, Callable[[PriorRequest], PriorFn | None]] = {
    "auto": _auto,
    "sam": _sam,
    "fallback": _fallback,
    "none": _none,
}


def make_prior_fn(
    kind: str,
    max_regions: int,
    sam_model: str = DEFAULT_SAM_MODEL,
    sam_checkpoint: Path | None = None,
    device: str = "cpu",
    notify: Callable[[str], None] = lambda message: None,
) -> PriorFn | None:
    """A function base_rgb → RegionPrior for `kind` (a validated setting), or None for `none`.

    `ValueError` for a kind the registry does not hold."""
    if kind not in PRODUCERS:
        raise ValueError(f"unknown prior kind {kind!r}: one of {', '.join(PRODUCERS)}")
    return PRODUCERS[kind](PriorRequest(max_regions, sam_model, sam_checkpoint, device, notify))
