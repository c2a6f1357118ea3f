"""Does a set's target keep its scene's brightness? The convention each set of pairs follows, and the model's.

    python benchmarks/exposure_key.py [--models default]

Per set: the least-squares slope and the correlation of log(target mean luma) on log(input mean luma), and
the same for the model's output (with `--models`). A slope near 0 means the targets bring every scene to about
the same brightness (what SICE's targets, chosen nearest 0.45, and LOL's do); a slope near 1, that the target
is the dark photo times one fixed gain (a darker scene stays darker). A model trained on one convention
cannot score well on a set that follows the other, whatever it does to the picture: this is the part of a
set's PSNR that is convention, not quality. Luma is Rec.601 over 8-bit sRGB, as the data README defines it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sets import real_sets  # benchmarks/ is on sys.path when this file is run as a script

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.io.datasets import paired_rows
from lowlight_cli.io.images import load_image
from lowlight_cli.pipeline import Pipeline, build


def log_means(folder: Path, split: str, enhancer: Pipeline | None) -> np.ndarray:
    """(pairs, 2 or 3): log mean luma of the input, the target and, with `enhancer`, the output."""
    rows = []
    for low_path, high_path, _ in paired_rows(folder, split):
        low, high = load_image(low_path).rgb, load_image(high_path).rgb
        images = [low, high] + ([enhancer.enhance(low).rgb] if enhancer else [])
        rows.append([float(np.log(luma(image, REC601).mean())) for image in images])
    return np.array(rows)


def slope(x: np.ndarray, y: np.ndarray) -> str:
    return f"{np.polyfit(x, y, 1)[0]:.2f} (r {np.corrcoef(x, y)[0, 1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", default="", help="comma-separated checkpoints ('default' = shipped)")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    header = "| set | pairs | targets: slope (r) |" + "".join(f" {m}: slope (r) |" for m in models)
    lines = [header, "|---" * (3 + len(models)) + "|"]
    enhancers = [build(model=m, device="cpu") for m in models]
    for name, folder, split in real_sets(args.data) + [("irrgb40", args.data / "irrgb40", "all")]:
        cells = []
        for i, enhancer in enumerate(enhancers or [None]):
            means = log_means(folder, split, enhancer)
            if i == 0:
                cells += [str(len(means)), slope(means[:, 0], means[:, 1])]
            if enhancer is not None:
                cells.append(slope(means[:, 0], means[:, 2]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
