"""Robustness to strong colour casts and extra sensor noise, on real scenes never trained on.

    python benchmarks/robustness.py --data ../shared/data/sice --out runs/robust [--models default,path.safetensors]

Builds a `low/` + `high/` copy of the SICE validation split in which every dark
input also gets one of four illuminant casts (sodium, tungsten, cool LED,
green fluorescent) and Bayer-domain sensor noise, with fixed seeds, then scores
the classical references and each model on it with `lowlight eval`'s code.
The casts and noise come from the same family as the training degradations
(`training/synth.py`), so this measures robustness on unseen scenes, not on an
unseen kind of degradation.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight_cli.evaluation.paired import Summary, evaluate_pairs
from lowlight_cli.io.atomic import atomic_path
from lowlight_cli.pipeline import build as build_pipeline
from lowlight_cli.training.data import load_rgb8, read_sice
from lowlight_cli.training.synth import decode_srgb8, encode_srgb8, sensor_noise

CASTS = {  # linear RGB gains left in the photo by a wrong white balance
    "sodium": (1.9, 1.0, 0.5),
    "tungsten": (1.5, 1.0, 0.65),
    "cool-led": (0.7, 1.1, 1.4),
    "fluorescent": (0.85, 1.25, 0.95),
}


def degrade(dark: np.ndarray, cast: tuple[float, float, float], seed: int) -> np.ndarray:
    """A real dark uint8 photo under a coloured light, with more sensor noise (shot 1e-3, read 1e-3)."""
    rng = np.random.default_rng(seed)
    linear = decode_srgb8(dark) * np.asarray(cast, np.float32)
    return encode_srgb8(sensor_noise(linear, 1e-3, 1e-3, (2.0, 1.0, 1.7), rng))


def build(data: Path, out: Path) -> Path:
    """Write the degraded validation pairs (idempotent: same seeds, same files)."""
    (out / "low").mkdir(parents=True, exist_ok=True)
    (out / "high").mkdir(parents=True, exist_ok=True)
    names = list(CASTS)
    for index, (low_path, high_path, scene) in enumerate(read_sice(data, "val")):
        name = names[index % len(names)]
        stem = f"{scene}_{low_path.stem}_{name}"
        # Written beside and renamed into place: two benchmarks started together (sets.py --sets lol and
        # --sets sice) both rebuild the set, and neither may read the other's half-written file.
        with atomic_path(out / "low" / f"{stem}.png", fsync=False) as low_tmp:
            Image.fromarray(degrade(load_rgb8(low_path), CASTS[name], seed=index)).save(low_tmp, format="PNG")
        with atomic_path(out / "high" / f"{stem}.jpg", fsync=False) as high_tmp:
            shutil.copyfile(high_path, high_tmp)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sice"))
    parser.add_argument("--out", type=Path, default=Path("runs/robust"))
    parser.add_argument("--models", default="default", help="comma-separated checkpoints ('default' = shipped)")
    args = parser.parse_args()
    folder = build(args.data, args.out)
    lines = ["| method | PSNR dB | SSIM | PSNR GT-mean dB |", "|---|---|---|---|"]

    def add(label: str, summary: Summary) -> None:
        lines.append(f"| {label} | {summary.psnr:.2f} | {summary.ssim:.4f} | {summary.psnr_gt_mean:.2f} |")
        print(lines[-1], flush=True)

    for method in ("gamma", "clahe"):
        add(method, evaluate_pairs(folder, "all", method))
    for model in args.models.split(","):
        add(model, evaluate_pairs(folder, "all", "model", build_pipeline(model=model, device="auto", prior="fallback")))
    print(f"\n{folder}: SICE val with casts + sensor noise")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
