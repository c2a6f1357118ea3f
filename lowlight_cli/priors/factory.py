"""Choosing a prior producer from `--prior` / `--sam-model` / `--sam-checkpoint`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lowlight_cli.checkpoints.locate import locate_sam_checkpoint, sam_checkpoint_name
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.settings import PRIOR_KINDS, check_choice

PriorFn = Callable[[np.ndarray], RegionPrior]


def make_prior_fn(
    kind: str,
    max_regions: int,
    sam_model: str = "vit_b",
    sam_checkpoint: Path | None = None,
    device: str = "cpu",
    notify: Callable[[str], None] = lambda message: None,
) -> PriorFn | None:
    """A function base_rgb → RegionPrior for `kind`, or None for `--prior none`.

    `auto` uses SAM when its weights are already on disk (never downloads
    silently) and otherwise the built-in prior, saying so through `notify`.
    """
    check_choice("prior", kind, PRIOR_KINDS)
    if kind == "none":
        return None
    if kind in {"sam", "auto"}:
        path = locate_sam_checkpoint(sam_model, sam_checkpoint, download=(kind == "sam"))
        if path is not None:
            from lowlight_cli.priors.sam import SamPriorProducer

            producer = SamPriorProducer(sam_model, path, device=device, max_regions=max_regions)
            return producer
        notify(
            f"SAM {sam_model} weights not found locally: using the built-in region prior "
            f"(run `lowlight models download {sam_checkpoint_name(sam_model)}` to use SAM)"
        )
    from lowlight_cli.priors.fallback import fallback_prior

    return lambda base_rgb: fallback_prior(base_rgb, max_regions=max_regions)
