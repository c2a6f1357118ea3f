"""Tone statistics of real dark photos before and after: the look the model issue asks about.

    python benchmarks/samples.py [--folder ../shared/data/lowlight-samples] [--model default] [--out runs/samples]

These photos have no ground truth, so per photo it reports what can be measured on the output alone,
next to the input's: mean level and black level (1st percentile of luma, 0-255), contrast (std of luma),
the share of pixels newly clipped to white (some channel at 254+ where the input had none), and edge
energy (mean squared luma gradient after a 2× area downscale, so that noise counts little) and mean chroma
(CIELAB) against the input brightened by a plain gamma to the same mean: a ratio under 1 means softer edges
or paler colour than a plain curve.
The edge ratio is taken where the input carries signal (its downscaled luma at least 2 of 255 levels):
below that a JPEG holds only quantisation and block noise, which a gamma's infinite slope at black
blows up into the strongest "edges" of a night sky. The whole-frame ratio is printed beside it, and the
ratio over the regions the camera had already lit (input luma at least 0.5), where a tone curve's shoulder
flattens detail: the model issue's "already-bright regions left alone".
The chroma ratio is also taken over LIME_3's colour checker (`CHECKERS`), which the model issue names: a
ratio under 1 means its patches fade towards grey. Outputs are written to `--out` to be looked at.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage.color import rgb2lab

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.io.images import load_image, save_image
from lowlight_cli.pipeline import build

CLIPPED = 254 / 255


def clipped(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(axis=2) >= CLIPPED


SIGNAL = 2 / 255  # downscaled input luma under this is quantisation and JPEG noise, not structure
LIT = 0.5  # downscaled input luma at or over this: a region the camera already exposed


def half_luma(rgb: np.ndarray) -> np.ndarray:
    """Luma after a 2× area downscale (noise mostly averaged away)."""
    y = luma(rgb, REC601)
    return cv2.resize(y, (max(1, y.shape[1] // 2), max(1, y.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def edge_energy(rgb: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean squared luma gradient after a 2× area downscale, over the mask `where` (default: everywhere)."""
    gy, gx = np.gradient(half_luma(rgb))
    energy = gx**2 + gy**2
    return float(np.mean(energy if where is None else energy[where]))


def edge_ratios(low: np.ndarray, out: np.ndarray) -> tuple[float, float, float]:
    """Edge energy of `out` over that of `low` gamma-brightened to its mean: where `low` has signal, over the
    whole frame, and where `low` was already lit (nan where there is no such pixel)."""
    reference = gamma_to_mean(low, luma(out, REC601).mean())
    level = half_luma(low)
    ratio = lambda where: edge_energy(out, where) / max(edge_energy(reference, where), 1e-12)  # noqa: E731
    signal, lit = level >= SIGNAL, level >= LIT
    return (ratio(signal) if signal.any() else float("nan"), ratio(None), ratio(lit) if lit.any() else float("nan"))


def gamma_to_mean(rgb: np.ndarray, mean: float) -> np.ndarray:
    """`rgb` ** g with g chosen (bisection) so the luma mean equals `mean`."""
    lo, hi = 0.05, 3.0
    for _ in range(40):
        g = (lo + hi) / 2
        if luma(rgb**g, REC601).mean() > mean:
            lo = g
        else:
            hi = g
    return rgb ** ((lo + hi) / 2)


CHECKERS = {"LIME_3": (slice(254, 310), slice(109, 202))}  # rows, columns of the colour checker's patches


def chroma(rgb: np.ndarray) -> np.ndarray:
    """CIELAB chroma (0 grey, about 130 the most saturated sRGB colours) of each pixel."""
    lab = rgb2lab(np.clip(rgb, 0.0, 1.0))
    return np.hypot(lab[..., 1], lab[..., 2])


def chroma_ratios(low: np.ndarray, out: np.ndarray, box: tuple[slice, slice] | None) -> tuple[float, float]:
    """Mean chroma of `out` over that of `low` gamma-brightened to its mean: the whole frame, and `box`
    (nan without one)."""
    reference = gamma_to_mean(low, luma(out, REC601).mean())
    ours, theirs = chroma(out), chroma(reference)
    whole = float(ours.mean() / max(theirs.mean(), 1e-6))
    return whole, float(ours[box].mean() / max(theirs[box].mean(), 1e-6)) if box else float("nan")


def stats(rgb: np.ndarray) -> tuple[float, float, float]:
    y = luma(rgb, REC601) * 255
    return float(y.mean()), float(np.percentile(y, 1)), float(y.std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/lowlight-samples"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("runs/samples"))
    parser.add_argument("--direct-size", type=int, default=None, help="override the pipeline's direct-sampling size")
    parser.add_argument("--exposure", type=float, default=0.0)
    parser.add_argument("--highlights", default="auto", help="auto | curve | local (the --highlights setting)")
    args = parser.parse_args()
    options = {} if args.direct_size is None else {"direct_size": args.direct_size}
    enhancer = build(
        model=args.model, device="auto", prior="fallback", exposure=args.exposure, highlights=args.highlights, **options
    )
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| photo | mean in → out | black (1%) in → out | contrast (std) in → out | new clipped % | "
        "edges vs gamma (signal) | (whole frame) | (lit regions) | chroma vs gamma | (checker) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    totals = []
    for path in sorted(p for p in args.folder.iterdir() if p.suffix.lower() in {".jpg", ".png"}):
        image = load_image(path)
        rgb = image.rgb
        out = enhancer.enhance(rgb).rgb
        save_image(args.out / path.name, out, image)
        (m0, b0, c0), (m1, b1, c1) = stats(rgb), stats(out)
        new_clip = 100.0 * float((clipped(out) & ~clipped(rgb)).mean())
        edges, whole, lit = edge_ratios(rgb, out)
        colour, checker = chroma_ratios(rgb, out, CHECKERS.get(path.stem))
        totals.append((m0, m1, b0, b1, c0, c1, new_clip, edges, whole, lit, colour, checker))
        lines.append(
            f"| {path.stem} | {m0:.0f} → {m1:.0f} | {b0:.0f} → {b1:.0f} | {c0:.0f} → {c1:.0f} | "
            f"{new_clip:.2f} | {edges:.2f} | {whole:.2f} | {lit:.2f} | {colour:.2f} | {checker:.2f} |"
        )
        print(lines[-1], flush=True)
    t = np.nanmean(totals, axis=0)
    lines.append(
        f"| **mean** | {t[0]:.0f} → {t[1]:.0f} | {t[2]:.0f} → {t[3]:.0f} | {t[4]:.0f} → {t[5]:.0f} | "
        f"{t[6]:.2f} | {t[7]:.2f} | {t[8]:.2f} | {t[9]:.2f} | {t[10]:.2f} | {t[11]:.2f} |"
    )
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
