"""Reconstruction vs direct full-resolution sampling on full-size real photos without ground truth.

    python benchmarks/reconstruction.py --folder ../shared/data/lowlight-samples

For each photo: the default path (sampling at --work-size, then guided
reconstruction) and `--full-res` (sampling every pixel in blended tiles).
Reports how closely the fast path agrees with the direct one (PSNR/SSIM of one
against the other), the fine-scale detail of each output (noise and texture
alike: MAD of the finest luma detail, in 8-bit levels), and the time of each. SICE, which has
ground truth, is in benchmarks/quality.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.evaluation.metrics import psnr, ssim
from lowlight_cli.imaging.reconstruct import estimate_noise
from lowlight_cli.io.images import load_image
from lowlight_cli.pipeline import build


def detail_level(rgb: np.ndarray) -> float:
    """Sigma in 8-bit levels of the luma's finest detail: noise plus fine texture (the median ignores edges)."""
    luma = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    detail = luma - cv2.GaussianBlur(luma, (0, 0), 1.0)
    return 255.0 * estimate_noise(detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/lowlight-samples"))
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    fast = build(model=args.model, device="auto", prior="fallback")
    direct = build(model=args.model, device="auto", prior="fallback", full_res=True)
    lines = [
        "| photo | size | agreement PSNR dB | agreement SSIM | detail fast | detail direct | s fast | s direct |",
        "|---|---|---|---|---|---|---|---|",
    ]
    totals = []
    for path in sorted(p for p in args.folder.iterdir() if p.suffix.lower() in {".jpg", ".png"}):
        rgb = load_image(path).rgb
        start = time.perf_counter()
        out_fast = fast.enhance(rgb).rgb
        middle = time.perf_counter()
        out_direct = direct.enhance(rgb).rgb
        end = time.perf_counter()
        row = (
            psnr(out_fast, out_direct),
            ssim(out_fast, out_direct),
            detail_level(out_fast),
            detail_level(out_direct),
            middle - start,
            end - middle,
        )
        totals.append(row)
        lines.append(
            f"| {path.stem} | {rgb.shape[1]}×{rgb.shape[0]} | {row[0]:.2f} | {row[1]:.4f} | {row[2]:.2f} | "
            f"{row[3]:.2f} | {row[4]:.2f} | {row[5]:.2f} |"
        )
        print(lines[-1], flush=True)
    mean = np.mean(totals, axis=0)
    lines.append(
        f"| **mean** | | {mean[0]:.2f} | {mean[1]:.4f} | {mean[2]:.2f} | {mean[3]:.2f} | {mean[4]:.2f} | "
        f"{mean[5]:.2f} |"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
