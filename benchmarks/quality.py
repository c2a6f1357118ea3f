"""The quality table in README: every row is one `lowlight eval` configuration.

    python benchmarks/quality.py --data ../shared/data/sice [--baseline runs/baseline/unet-regression.safetensors]

Rows: the classical references, the shipped model at 1/2/4/10/20 steps (`--step-counts`), without
the prior, without the shadow-noise filter, with the working resolution at the full 512 px (direct sampling,
no reconstruction) and at 256 px; optionally the equal-budget U-Net
regression baseline against the diffusion model's checkpoint at the same step
count. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lowlight_cli.evaluation.paired import Summary, evaluate_pairs
from lowlight_cli.pipeline import build
from lowlight_cli.settings import DEFAULT_STEPS, DEFAULT_WORK_SIZE


def row(label: str, summary: Summary, note: str = "") -> str:
    return (
        f"| {label} | {summary.psnr:.2f} | {summary.ssim:.4f} | {summary.psnr_gt_mean:.2f} | "
        f"{summary.seconds:.2f} | {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default="default")
    parser.add_argument("--baseline", default="", help="regression baseline checkpoint (equal budget)")
    parser.add_argument("--baseline-pair", default="", help="diffusion checkpoint trained for the same steps")
    parser.add_argument("--step-counts", default="1,2,4,10,20", help="step counts of the 'steps' rows")
    parser.add_argument(
        "--rows",
        default="refs,steps,prior,shadow,worksize,baseline",
        help="which groups: refs, steps, prior, shadow, worksize, baseline",
    )
    args = parser.parse_args()
    groups = set(args.rows.split(","))
    lines = ["| configuration | PSNR dB | SSIM | PSNR GT-mean dB | s/image | note |", "|---|---|---|---|---|---|"]

    def model_row(label: str, note: str = "", model: str | None = None, **kwargs) -> None:
        options = dict(prior="fallback", steps=DEFAULT_STEPS, work_size=DEFAULT_WORK_SIZE)
        options.update(kwargs)
        enhancer = build(model=model or args.model, device="auto", **options)
        start = time.perf_counter()
        summary = evaluate_pairs(args.data, args.split, "model", enhancer)
        lines.append(row(label, summary, note))
        print(lines[-1], f"({time.perf_counter() - start:.0f}s)", flush=True)

    if "refs" in groups:
        for method, label in (("gamma", "auto-gamma (classical)"), ("clahe", "CLAHE on L (classical)")):
            lines.append(row(label, evaluate_pairs(args.data, args.split, method)))
            print(lines[-1], flush=True)
    if "steps" in groups:
        for steps in (int(n) for n in args.step_counts.split(",")):
            model_row(f"lowlight-default, {steps} steps", "default" if steps == DEFAULT_STEPS else "", steps=steps)
    if "prior" in groups:
        model_row("lowlight-default, --prior none", "what the prior buys", prior="none")
    if "shadow" in groups:
        model_row("lowlight-default, --shadow-denoise 0", "what the shadow-noise filter buys", shadow_denoise=0.0)
    if "worksize" in groups:
        model_row("work size 512 (direct, no reconstruction)", "full-resolution sampling", work_size=512)
        model_row("work size 256 + reconstruction", "", work_size=256)
    if "baseline" in groups and args.baseline:
        model_row(
            "U-Net regression baseline (equal budget)",
            "same network, no diffusion, no prior",
            model=args.baseline,
            prior="none",
        )
        if args.baseline_pair:
            model_row("diffusion model at the same step count", "", model=args.baseline_pair)
    print()
    print(f"{args.data} [{args.split}]")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
