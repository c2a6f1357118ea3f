"""How far the tone branch's exposure is from each target's: the part of the error `--exposure` would fix.

    python benchmarks/exposure_error.py --models default,runs/t5/tone.safetensors

Per model and set (the real sets of benchmarks/sets.py), the mean and the mean absolute difference, in stops,
between the exposure the tone branch predicts from the dark photo and the one that brings the photo's
log-average luminance to its target's (`models/tone.target_gains`, what training regresses to). A mean near 0
is an unbiased guess; the absolute error is what a wrong guess costs on average.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from sets import real_sets  # benchmarks/ is on sys.path when this file is run as a script

from lowlight_cli.imaging.prepare import to_tensor
from lowlight_cli.io.datasets import paired_rows
from lowlight_cli.io.images import load_image
from lowlight_cli.models.tone import target_gains
from lowlight_cli.pipeline import Pipeline, build


def errors(enhancer: Pipeline, folder: Path, split: str) -> np.ndarray:
    """Predicted minus target exposure, in stops, per pair."""
    out = []
    with torch.no_grad():
        for low_path, high_path, _ in paired_rows(folder, split):
            low, high = to_tensor(load_image(low_path).rgb), to_tensor(load_image(high_path).rgb)
            predicted = enhancer.look(low).log_exposure
            target, _ = target_gains(low, high)
            out.append(float(predicted - target) / math.log(2.0))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", default="default", help="comma-separated checkpoints ('default' = shipped)")
    args = parser.parse_args()
    lines = ["| model | set | pairs | mean error (stops) | mean absolute error (stops) |", "|---|---|---|---|---|"]
    for model in args.models.split(","):
        enhancer = build(model=model, device="cpu", prior="none")
        if enhancer.tone is None:
            raise SystemExit(f"{model}: this model has no tone branch, so no exposure to measure")
        for name, folder, split in real_sets(args.data):
            error = errors(enhancer, folder, split)
            lines.append(f"| {model} | {name} | {len(error)} | {error.mean():+.2f} | {np.abs(error).mean():.2f} |")
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
