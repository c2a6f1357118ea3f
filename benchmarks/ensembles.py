"""Inference-time averages that only a diffusion + prior model can make, against its plain output.

    python benchmarks/ensembles.py --model default [--data ../shared/data/sice --split val]
    python benchmarks/ensembles.py --model default --data runs/robust --split all   # after benchmarks/robustness.py

Issue 4 asks whether the diffusion and the prior earn their cost. A regression
model has one output per photo; a diffusion model can average several samples
(an estimate of the posterior mean, which is what PSNR rewards), and a model
trained with prior dropout can average its outputs with and without the prior.
Rows, each averaged at working resolution before the reconstruction:

- `plain`: the default output (1 step);
- `samples`: the mean of 4 two-step samples (seeds 0-3);
- `prior+none`: the mean of the outputs with the built-in prior and with none;
- `mirror`: the mean of the outputs for the photo and its mirror image (any model can do this);
- `coarse`: not an average: the output with a coarser built-in segmentation (a median of 12 regions
  instead of 27 on SICE's validation photos, close to the count in a 128-px training crop);
- `scales`: the mean of the outputs with the default and the coarser segmentation.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np

from lowlight_cli.evaluation.paired import evaluate_pairs
from lowlight_cli.imaging.prepare import WorkingCopy
from lowlight_cli.pipeline import EnhanceResult, Pipeline, State, build
from lowlight_cli.priors.fallback import fallback_prior
from lowlight_cli.priors.region_prior import RegionPrior

VARIANTS = ("plain", "samples", "prior+none", "mirror", "coarse", "scales")
COARSENESS = 2.0


def sampled(
    pipeline: Pipeline,
    rgb: np.ndarray,
    working: WorkingCopy | None = None,
    prior: RegionPrior | None = None,
    steps: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """The pipeline's working output for `rgb`, from the working copy and prior given (else its own)."""
    state = pipeline.prepare(replace(pipeline.start(rgb, prior), working=working))
    return cast(np.ndarray, pipeline.sample(pipeline.find_prior(state), steps, seed).output)


class Averaged:
    """Quacks like `Pipeline` for `evaluate_pairs`: averages working-size outputs, then reconstructs once."""

    def __init__(self, model: str, variant: str) -> None:
        self.variant = variant
        self.with_prior = build(model=model, device="auto", prior="fallback")
        self.without_prior = build(model=model, device="auto", prior="none")
        self.settings = self.with_prior.settings

    def outputs(self, rgb: np.ndarray, working: WorkingCopy) -> list[np.ndarray]:
        pipeline = self.with_prior
        if self.variant in {"coarse", "scales"}:
            coarse = fallback_prior(working.base, pipeline.config.max_regions, coarseness=COARSENESS)
            coarse_output = sampled(pipeline, rgb, working, coarse)
            if self.variant == "coarse":
                return [coarse_output]
        state = pipeline.find_prior(replace(pipeline.start(rgb), working=working))
        plain = cast(np.ndarray, pipeline.sample(state).output)
        if self.variant == "samples":  # the prior is made once; only the sampling repeats
            return [sampled(pipeline, rgb, working, state.prior, steps=2, seed=seed) for seed in range(4)]
        if self.variant == "prior+none":
            return [plain, sampled(self.without_prior, rgb, working)]
        if self.variant == "mirror":
            return [plain, sampled(pipeline, np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1]]
        if self.variant == "scales":
            return [plain, coarse_output]
        return [plain]

    def enhance(self, rgb: np.ndarray) -> EnhanceResult:
        state: State = self.with_prior.prepare(self.with_prior.start(rgb))
        mean = np.mean(self.outputs(rgb, cast(WorkingCopy, state.working)), axis=0, dtype=np.float32)
        finished = self.with_prior.finish(replace(state, output=mean))
        return EnhanceResult(rgb=cast(np.ndarray, finished.result), prior=RegionPrior.empty(*mean.shape[:2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default="default")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    lines = ["| average | PSNR dB | SSIM | PSNR GT-mean dB | s/image |", "|---|---|---|---|---|"]
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
        summary = evaluate_pairs(args.data, args.split, "model", Averaged(args.model, variant))
        lines.append(
            f"| {variant} | {summary.psnr:.2f} | {summary.ssim:.4f} | {summary.psnr_gt_mean:.2f} | "
            f"{summary.seconds:.2f} |"
        )
        print(lines[-1], flush=True)
    print(f"\n{args.model} on {args.data} [{args.split}]")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
