"""`evaluation.paired.evaluate_pairs` on its own: the means it reports are the metrics of each pair."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lowlight_cli.errors import InputError, UsageError
from lowlight_cli.evaluation.baselines import BASELINES
from lowlight_cli.evaluation.metrics import gt_mean_scaled, psnr, ssim
from lowlight_cli.evaluation.paired import evaluate_pairs
from lowlight_cli.io.images import load_image


def paired_folder(root, count: int = 3):
    rng = np.random.default_rng(0)
    for folder in ("low", "high"):
        (root / folder).mkdir(parents=True)
    for index in range(count):
        high = rng.integers(40, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(high).save(root / "high" / f"{index}.png")
        Image.fromarray((high // 4).astype(np.uint8)).save(root / "low" / f"{index}.png")
    return root


class TimesFour:
    """A stand-in pipeline: four times the input (the folder's lows are a quarter of their highs)."""

    settings = SimpleNamespace(steps=3)

    def enhance(self, rgb):
        return SimpleNamespace(rgb=np.clip(rgb * 4.0, 0.0, 1.0))


def expected(root, method):
    rows = []
    for index in range(3):
        low, high = load_image(root / "low" / f"{index}.png").rgb, load_image(root / "high" / f"{index}.png").rgb
        out = np.clip(low * 4.0, 0.0, 1.0) if method == "model" else BASELINES[method](low)
        rows.append((psnr(out, high), ssim(out, high), psnr(gt_mean_scaled(out, high), high)))
    return np.mean(rows, axis=0)


@pytest.mark.parametrize("method", ["model", "gamma", "clahe"])
def test_the_summary_is_the_mean_of_each_pairs_metrics(tmp_path, method):
    root = paired_folder(tmp_path / "set")
    rows = []
    summary = evaluate_pairs(root, "all", method, TimesFour() if method == "model" else None, on_row=rows.append)
    assert summary.pairs == 3 and [row.name for row in rows] == ["low/0.png", "low/1.png", "low/2.png"]
    assert (summary.psnr, summary.ssim, summary.psnr_gt_mean) == pytest.approx(tuple(expected(root, method)))
    assert summary.method == ("model (3 steps)" if method == "model" else method)
    if method == "model":
        assert summary.psnr > 35  # ×4 undoes the darkening up to the rounding of the lows
    assert evaluate_pairs(root, "all", method, TimesFour(), limit=2).pairs == 2


def test_bad_requests_are_one_line_errors(tmp_path):
    root = paired_folder(tmp_path / "set")
    with pytest.raises(UsageError, match="^method 'magic' is not one of model"):
        evaluate_pairs(root, "all", "magic")
    with pytest.raises(UsageError, match="^split 'test' is not one of val"):
        evaluate_pairs(root, "test", "gamma")
    with pytest.raises(UsageError, match="^limit must be at least 0"):
        evaluate_pairs(root, "all", "gamma", limit=-1)
    with pytest.raises(UsageError, match="no pairs found"):
        evaluate_pairs(tmp_path, "all", "gamma")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "low" / "0.png")
    with pytest.raises(InputError, match="is 8x8 but its target .* is 32x24: pairs must be aligned"):
        evaluate_pairs(root, "all", "gamma")
