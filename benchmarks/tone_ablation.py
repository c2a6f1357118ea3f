"""What each loss term buys the global tone branch: an ablation on whole frames.

    python benchmarks/tone_ablation.py --steps 800 [--threads 1]

Trains the tone branch alone (`lowlight train`'s first phase, same data and sampler, no region prior
needed) once per loss recipe, then scores the *developed base* alone (no denoiser) on LOL eval15,
LOL's held-out scene groups, SICE val and the casts + noise set, beside the first release's
parameter-free auto-gamma base. The denoiser refines this base, so its errors in exposure, black level,
contrast and white balance are what the branch is for; noise is left to the denoiser and costs every
row alike. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from robustness import build  # benchmarks/ is on sys.path when this file is run as a script

from lowlight_cli.evaluation.metrics import psnr, ssim
from lowlight_cli.io.images import load_image
from lowlight_cli.models.checkpoint import load_checkpoint
from lowlight_cli.models.condition import develop
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.models.tone import ToneEstimator
from lowlight_cli.training.data import TrainingData, paired_rows
from lowlight_cli.training.trainer import TrainOptions, train

RECIPES = {  # label: (ssim weight, colour weight, teacher-forced gains)
    "L1": (0.0, 0.0, False),
    "L1 + SSIM": (0.2, 0.0, False),
    "L1 + SSIM + colour": (0.2, 0.1, False),
    "L1 + SSIM + colour, gains learned apart (teacher-forced)": (0.2, 0.1, True),
}


def score(tone: ToneEstimator | None, folder: Path, split: str) -> tuple[float, float]:
    values = []
    for low_path, high_path, _ in paired_rows(folder, split):
        low, high = load_image(low_path).rgb, load_image(high_path).rgb
        with torch.no_grad():
            base = develop(torch.from_numpy(low).permute(2, 0, 1)[None], tone, 0.42)[0]
        out = base[0].permute(1, 2, 0).numpy()
        values.append((psnr(out, high), ssim(out, high)))
    return tuple(np.mean(values, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--robust", type=Path, default=Path("runs/robust"))
    parser.add_argument("--recipes", default="", help="comma-separated 1-based rows of RECIPES to train (default all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folders = [args.data / "sice", args.data / "normal", args.data / "lol" / "train"]
    data = TrainingData(folders, None, 0.42, crop=128, log=lambda m: None)
    sets = [
        ("LOL eval15", args.data / "lol" / "eval15", "all"),
        ("LOL val", args.data / "lol" / "train", "val"),
        ("SICE val", args.data / "sice", "val"),
        ("casts + noise", build(args.data / "sice", args.robust), "all"),
    ]
    header = "| base | " + " | ".join(f"{name} PSNR / SSIM" for name, _, _ in sets) + " |"
    lines = [header, "|---" * (len(sets) + 1) + "|"]

    def add(label: str, tone: ToneEstimator | None) -> None:
        cells = [score(tone, folder, split) for _, folder, split in sets]
        lines.append(f"| {label} | " + " | ".join(f"{p:.2f} / {s:.4f}" for p, s in cells) + " |")
        print(lines[-1], flush=True)

    add("auto-gamma (first release)", None)
    add("tone branch, untrained (filmic default curve)", ToneEstimator())
    with tempfile.TemporaryDirectory() as tmp:
        rows = [int(r) for r in args.recipes.split(",")] if args.recipes else range(1, len(RECIPES) + 1)
        for label, (ssim_weight, colour_weight, teacher_gains) in (list(RECIPES.items())[r - 1] for r in rows):
            out = Path(tmp) / f"{len(lines)}.safetensors"
            options = TrainOptions(
                data=folders,
                out=out,
                steps=0,
                tone_steps=args.steps,
                save_every=10**9,
                prior="none",
                ssim_weight=ssim_weight,
                colour_weight=colour_weight,
                teacher_gains=teacher_gains,
                config=ModelConfig(tone_curve=True, use_prior=False),
            )
            train(options, data, notify=lambda m: None)
            add(f"tone branch, {label}, {args.steps} steps", load_checkpoint(out).tone)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
