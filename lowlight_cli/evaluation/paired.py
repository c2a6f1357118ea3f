"""`lowlight eval`: score a model (or a classical reference) on paired folders."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowlight_cli.errors import InputError, Setting, UsageError
from lowlight_cli.evaluation.baselines import BASELINES
from lowlight_cli.evaluation.metrics import gt_mean_scaled, psnr, ssim
from lowlight_cli.io.datasets import paired_rows
from lowlight_cli.io.images import load_image


@dataclass
class Row:
    name: str
    psnr: float
    ssim: float
    psnr_gt_mean: float
    seconds: float

    def format(self) -> str:
        return (
            f"{self.name:<28} PSNR {self.psnr:6.2f} dB  SSIM {self.ssim:.4f}  "
            f"PSNR(GT-mean) {self.psnr_gt_mean:6.2f} dB  {self.seconds:6.2f} s"
        )


@dataclass
class Summary:
    """Means over the pairs of one evaluation (benchmarks read the fields, the CLI prints `format()`)."""

    method: str
    pairs: int
    data: Path
    split: str
    psnr: float
    ssim: float
    psnr_gt_mean: float
    seconds: float

    def format(self) -> str:
        return (
            f"{self.method} on {self.pairs} pairs of {self.data} [{self.split}]: PSNR {self.psnr:.2f} dB, "
            f"SSIM {self.ssim:.4f}, PSNR(GT-mean) {self.psnr_gt_mean:.2f} dB, {self.seconds:.2f} s/image"
        )


def evaluate_pairs(
    data: Path,
    split: str,
    method: str,
    pipeline=None,
    limit: int = 0,
    on_row: Callable[[Row], None] | None = None,
    on_output: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> Summary:
    """Mean PSNR/SSIM over the pairs in `data`; `on_output(low, output, target)` sees each pair's images."""
    if method != "model" and method not in BASELINES:
        raise UsageError(Setting("method"), f" '{method}' is not one of model, {', '.join(BASELINES)}")
    if split not in {"val", "train", "all"}:
        raise UsageError(Setting("split"), f" '{split}' is not one of val, train, all")
    if limit < 0:
        raise UsageError(Setting("limit"), f" must be at least 0 (0 = all pairs), got {limit}")
    rows_in = paired_rows(data, split)
    if not rows_in:
        raise UsageError(f"{data}: no pairs found (expected pairs.csv or low/ + high/ folders)")
    if limit:
        rows_in = rows_in[:limit]
    rows = []
    for low_path, high_path, _ in rows_in:
        low, high = load_image(low_path).rgb, load_image(high_path).rgb
        if low.shape != high.shape:
            raise InputError(
                f"{low_path} is {low.shape[1]}x{low.shape[0]} but its target {high_path} is "
                f"{high.shape[1]}x{high.shape[0]}: pairs must be aligned"
            )
        start = time.perf_counter()
        out = pipeline.enhance(low).rgb if method == "model" else BASELINES[method](low)
        seconds = time.perf_counter() - start
        if on_output:
            on_output(low, out, high)
        name = f"{low_path.parent.name}/{low_path.name}"
        row = Row(name, psnr(out, high), ssim(out, high), psnr(gt_mean_scaled(out, high), high), seconds)
        rows.append(row)
        if on_row:
            on_row(row)
    mean = lambda attr: float(np.mean([getattr(r, attr) for r in rows]))  # noqa: E731
    what = method if method != "model" else f"model ({pipeline.settings.steps} steps)"
    return Summary(what, len(rows), data, split, mean("psnr"), mean("ssim"), mean("psnr_gt_mean"), mean("seconds"))
