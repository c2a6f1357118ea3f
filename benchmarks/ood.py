"""Out of distribution: how a model does on cameras and photos it never trained on (the picture issue's table).

    python benchmarks/ood.py --models default,runs/t1/look.safetensors [--iqa-python ~/.venvs/iqa/bin/python]

Three checks, none of them ever trained on:
- irrgb40 (`../shared/data/irrgb40`, 40 real pairs from an unseen camera): PSNR, SSIM, GT-mean PSNR, and the
  tone figures the issue names, means over the pairs beside the targets': black level (1st percentile of
  luma) and contrast (std of luma), 0-1.
- unpaired-dev (90 real dark photos of DICM, LIME and MEF): outputs written as PNG under `--out`, then per
  photo the share of pixels with every channel at 240 or more (output minus input, in points: the worst
  photo is reported) and the colourfulness (Hasler & Süsstrunk) against the input brightened by a plain
  gamma to the output's mean (mean ratio). With `--iqa-python`, NIQE and BRISQUE from `../shared/tools/iqa`
  (an outside yardstick kept beside the project, run in its own environment).
- unchanged: the 23 well-exposed Kodak photos of `../shared/data/normal`, which must come back nearly as they
  went in: the largest difference of mean level (0-255) and the lowest PSNR against the input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
from samples import gamma_to_mean  # benchmarks/ is on sys.path when this file is run as a script

from lowlight_cli.evaluation.metrics import psnr
from lowlight_cli.evaluation.paired import evaluate_pairs
from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.io.images import load_image, save_image
from lowlight_cli.models.tone import NEAR_WHITE
from lowlight_cli.pipeline import Pipeline, build
from lowlight_cli.training.data import UNCHANGED_CHECK  # never trained as unchanged pairs


def near_white(rgb: np.ndarray) -> float:
    """% of pixels whose every channel is at 240 or more."""
    return 100.0 * float((rgb.min(axis=2) >= NEAR_WHITE).mean())


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) on 0-255 values."""
    r, g, b = (rgb[..., i] * 255.0 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def tone_figures(rgb: np.ndarray) -> tuple[float, float]:
    y = luma(rgb, REC601)
    return float(np.percentile(y, 1)), float(y.std())


def paired(enhancer: Pipeline, folder: Path) -> dict[str, float]:
    figures: list[tuple[float, float, float, float]] = []

    def on_pair(low: np.ndarray, out: np.ndarray, high: np.ndarray) -> None:
        figures.append((*tone_figures(out), *tone_figures(high)))

    summary = evaluate_pairs(folder, "all", "model", enhancer, on_output=on_pair)
    black, contrast, target_black, target_contrast = np.mean(figures, axis=0)
    return {
        "psnr": summary.psnr,
        "ssim": summary.ssim,
        "psnr_gt_mean": summary.psnr_gt_mean,
        "black": black,
        "target_black": target_black,
        "contrast": contrast,
        "target_contrast": target_contrast,
    }


def unpaired(enhancer: Pipeline, folder: Path, out: Path) -> dict[str, float]:
    whiter, colour = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".bmp"}):
        image = load_image(path)
        result = enhancer.enhance(image.rgb).rgb
        target = out / path.parent.name / f"{path.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(target, result)
        whiter.append(near_white(result) - near_white(image.rgb))
        colour.append(
            colourfulness(result) / max(colourfulness(gamma_to_mean(image.rgb, luma(result, REC601).mean())), 1e-6)
        )
    return {
        "photos": len(whiter),
        "near_white_worst": max(whiter),
        "near_white_mean": float(np.mean(whiter)),
        "colour_vs_gamma": float(np.mean(colour)),
        "colour_vs_gamma_worst": min(colour),
    }


def unchanged(enhancer: Pipeline, folder: Path) -> dict[str, float]:
    shifts, scores = [], []
    for path in sorted(folder.glob(f"{UNCHANGED_CHECK}*")):
        rgb = load_image(path).rgb
        result = enhancer.enhance(rgb).rgb
        shifts.append(abs(float(luma(result, REC601).mean() - luma(rgb, REC601).mean())) * 255.0)
        scores.append(psnr(result, rgb))
    return {
        "photos": len(shifts),
        "mean_shift_worst": max(shifts),
        "psnr_worst": min(scores),
        "psnr_mean": float(np.mean(scores)),
    }


def iqa(python: str, tool: Path, folder: Path) -> dict[str, float]:
    """NIQE and BRISQUE, image means over every photo in `folder`'s sub-folders, by the outside tool."""
    report = folder / "iqa.json"
    subprocess.run(
        [python, str(tool / "metrics.py"), "--pred", str(folder), "--json", str(report), "--quiet"],
        check=True,
        capture_output=True,
    )
    images = [row for result in json.loads(report.read_text())["results"] for row in result["images"]]
    return {
        "iqa_photos": len(images),
        "niqe": float(np.mean([row["niqe"] for row in images])),
        "brisque": float(np.mean([row["brisque"] for row in images])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", default="default", help="comma-separated checkpoints ('default' = shipped)")
    parser.add_argument("--out", type=Path, default=Path("runs/ood"), help="where unpaired-dev outputs are written")
    parser.add_argument("--iqa-python", default="", help="a Python with the iqa tool's requirements")
    parser.add_argument("--highlights", default="auto", help="auto | curve | local (the --highlights setting)")
    parser.add_argument("--prior", default="fallback")
    parser.add_argument("--checks", default="irrgb40,unpaired,unchanged")
    args = parser.parse_args()
    checks = args.checks.split(",")
    for model in args.models.split(","):
        enhancer = build(model=model, device="auto", prior=args.prior, highlights=args.highlights)
        result: dict[str, object] = {"model": model, "highlights": args.highlights, "prior": args.prior}
        if "irrgb40" in checks:
            result["irrgb40"] = paired(enhancer, args.data / "irrgb40")
        if "unpaired" in checks:
            out = args.out / Path(model).stem / args.highlights / args.prior
            result["unpaired"] = unpaired(enhancer, args.data / "unpaired-dev", out)
            if args.iqa_python:
                result["unpaired"].update(iqa(args.iqa_python, args.data.parent / "tools" / "iqa", out))  # type: ignore[union-attr]
        if "unchanged" in checks:
            result["unchanged"] = unchanged(enhancer, args.data / "normal")
        print(json.dumps(result, default=lambda v: round(float(v), 4)), flush=True)


if __name__ == "__main__":
    main()
