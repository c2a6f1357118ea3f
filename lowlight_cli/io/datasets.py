"""Paired datasets on disk: which (dark input, target, scene) triples a folder holds.

Two layouts: SICE (`pairs.csv` with `input,target,scene`, and a
`val_scenes.txt`), and `low/` + `high/` folders matched by file stem (LOL),
optionally grouped by scene in a `pairs.csv` of `name,scene_group`. Used by
training (`training/data.py`) and evaluation (`evaluation/paired.py`) alike;
torch-free.
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

from lowlight_cli.io.images import IMAGE_SUFFIXES


def read_sice(root: Path, split: str) -> list[tuple[Path, Path, str]]:
    """(input, target, scene) triples of a SICE-layout folder, filtered by `val_scenes.txt`."""
    val_file = root / "val_scenes.txt"
    val = set(val_file.read_text().split()) if val_file.exists() else set()
    rows = []
    with open(root / "pairs.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            in_val = row["scene"] in val
            if (split == "val") == in_val or split == "all":
                rows.append((root / row["input"], root / row["target"], row["scene"]))
    return rows


def is_held_out(group: str) -> bool:
    """The fixed validation tenth of a `low/` + `high/` folder's scene groups (a stable hash, not row order)."""
    return zlib.crc32(group.encode()) % 10 == 0


def read_low_high(root: Path, split: str) -> list[tuple[Path, Path, str]]:
    """(input, target, group) triples of a `low/` + `high/` folder pair matched by file stem.

    With a `pairs.csv` of `name,scene_group` (LOL), pairs are grouped by scene and a
    tenth of the groups is held out as `val`; without one, every pair is its own
    group and the folder is used whole for any split (a test set such as LOL eval15).
    """
    highs = {p.stem: p for p in (root / "high").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    groups: dict[str, str] = {}
    if (root / "pairs.csv").exists():
        with open(root / "pairs.csv", newline="") as handle:
            groups = {Path(row["name"]).stem: row["scene_group"] for row in csv.DictReader(handle)}
    rows = []
    for low in sorted((root / "low").iterdir()):
        if low.suffix.lower() in IMAGE_SUFFIXES and low.stem in highs:
            group = groups.get(low.stem, low.stem)
            if not groups or split == "all" or (split == "val") == is_held_out(group):
                rows.append((low, highs[low.stem], group))
    return rows


def paired_rows(root: Path, split: str = "train") -> list[tuple[Path, Path, str]]:
    """Paired rows of a folder in either supported layout (empty if it has neither)."""
    if (root / "low").is_dir() and (root / "high").is_dir():
        return read_low_high(root, split)
    if (root / "pairs.csv").exists():
        return read_sice(root, split)
    return []
