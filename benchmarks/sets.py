"""Score models on every evaluation set at once: the model issue's quality table.

    python benchmarks/sets.py --models default,runs/v1/lowlight-default.safetensors [--direct-sizes 640,0]

Sets (pairs never trained on):
- LOL-v1 eval15, the literature's benchmark (15 pairs, 600×400);
- LOL held-out scene groups (`lol/train`, the tenth of scene groups `training/data.is_held_out` keeps back);
- SICE val (36 pairs of 17 held-out scenes, 512×512);
- casts + noise: SICE val with four illuminant casts and extra sensor noise (built by benchmarks/robustness.py);
- irrgb40: 40 real pairs from a camera no training set comes from (validation only; benchmarks/ood.py adds
  its tone figures and the unpaired checks).

Each model gets its own `--direct-sizes` entry (photos up to that long side are sampled at full size;
0 = always through the working copy, the first release's pipeline). Prints one markdown row per model and
set: PSNR, SSIM (raw output) and PSNR after GT-mean scaling (labelled, never the headline).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustness import build  # benchmarks/ is on sys.path when this file is run as a script

from lowlight_cli.evaluation.paired import evaluate_pairs
from lowlight_cli.pipeline import build as build_pipeline
from lowlight_cli.settings import DEFAULT_DIRECT_SIZE


def real_sets(data: Path) -> list[tuple[str, Path, str]]:
    """The sets of real pairs: (name, folder, split)."""
    return [
        ("LOL eval15", data / "lol" / "eval15", "all"),
        ("LOL val groups", data / "lol" / "train", "val"),
        ("SICE val", data / "sice", "val"),
    ]


def sets(data: Path, robust: Path) -> list[tuple[str, Path, str]]:
    """The real sets and casts + noise (built under `robust` on first use)."""
    return real_sets(data) + [
        ("casts + noise", build(data / "sice", robust), "all"),
        ("irrgb40 (unseen camera)", data / "irrgb40", "all"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--robust", type=Path, default=Path("runs/robust"), help="where the casts + noise set is built")
    parser.add_argument("--models", default="default", help="comma-separated checkpoints ('default' = shipped)")
    parser.add_argument("--direct-sizes", default="", help=f"per model (default {DEFAULT_DIRECT_SIZE} for each)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--prior", default="fallback")
    parser.add_argument("--highlights", default="auto", help="auto | curve | local (the --highlights setting)")
    parser.add_argument(
        "--sets", default="", help="comma-separated subset of the set names' first words (lol,sice,...)"
    )
    args = parser.parse_args()
    models = args.models.split(",")
    direct = (
        [int(d) for d in args.direct_sizes.split(",")] if args.direct_sizes else [DEFAULT_DIRECT_SIZE] * len(models)
    )
    chosen = [
        s
        for s in sets(args.data, args.robust)
        if not args.sets or any(s[0].lower().startswith(w) for w in args.sets.split(","))
    ]
    lines = ["| model | set | PSNR dB | SSIM | PSNR GT-mean dB | s/image |", "|---|---|---|---|---|---|"]
    for model, direct_size in zip(models, direct, strict=False):
        enhancer = build_pipeline(
            model=model,
            device="auto",
            prior=args.prior,
            steps=args.steps,
            direct_size=direct_size,
            highlights=args.highlights,
        )
        for name, folder, split in chosen:
            summary = evaluate_pairs(folder, split, "model", enhancer)
            lines.append(
                f"| {model} (direct ≤ {direct_size}) | {name} | {summary.psnr:.2f} | {summary.ssim:.4f} | "
                f"{summary.psnr_gt_mean:.2f} | {summary.seconds:.2f} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
