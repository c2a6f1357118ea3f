"""Run the same commands with the code of a git ref and with the working tree; compare the outputs byte for byte.

    python scripts/compare_outputs.py [--ref HEAD] [--steps 1] [--keep]

For a refactor that must not change a single output: `lowlight batch` over
the 12 photos in `../shared/data/lowlight-samples/`, `lowlight video` on a
short clip made from `examples/` (written once with PyAV, read by both
sides), and `lowlight batch --ray` on a few photos (a local Ray cluster).
The ref's code is checked out with `git worktree add` into a temporary
folder and run with `PYTHONPATH` pointing there; the working tree runs
itself. Files other engineers change in the same checkout without
committing (`--same`, by default the model and training code and the
weights) are copied from the working tree into the ref's copy, so that the
comparison sees only the code under test; add a committed file changed
since `--ref` to `--same` when its change is not the one under test.
Prints a table; exits 1 on any difference or missing file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "data" / "lowlight-samples"
CLIP_SOURCES = sorted((ROOT / "examples").glob("kodim*_dark_*.jpg"))
RAY_PHOTOS = ("DICM_02.jpg", "LIME_3.jpg", "MEF_Candle.jpg")
SAME = ("lowlight_cli/models", "lowlight_cli/training", "weights")


def make_clip(path: Path, size: int = 160, repeats: int = 2) -> None:
    """A short H.264 clip: each example photo, downscaled, held for `repeats` frames (cuts included)."""
    import av
    import numpy as np
    from PIL import Image

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for source in CLIP_SOURCES:
            pixels = np.asarray(Image.open(source).convert("RGB").resize((size, size), Image.Resampling.BOX))
            for _ in range(repeats):
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def prepare_inputs(work: Path, samples: Path) -> dict[str, Path]:
    """The inputs both sides read: the samples folder, a folder of a few of them for Ray, a clip."""
    photos = work / "inputs" / "photos"
    shutil.copytree(samples, photos, ignore=shutil.ignore_patterns("*.md"))
    few = work / "inputs" / "few"
    few.mkdir()
    for name in RAY_PHOTOS:
        shutil.copy2(photos / name, few / name)
    clip = work / "inputs" / "clip.mp4"
    make_clip(clip)
    return {"photos": photos, "few": few, "clip": clip}


def checkout(ref: str, folder: Path, same: tuple[str, ...]) -> None:
    """`git worktree add` of `ref`, then the `same` paths copied over from the working tree."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True)
    for rel in same:
        if (folder / rel).exists():
            shutil.rmtree(folder / rel) if (folder / rel).is_dir() else (folder / rel).unlink()
        if (ROOT / rel).is_dir():
            shutil.copytree(ROOT / rel, folder / rel, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / rel).exists():
            shutil.copy2(ROOT / rel, folder / rel)


def run_side(code: Path, inputs: dict[str, Path], out: Path, steps: int) -> None:
    """The three commands with the package found in `code`; outputs under `out`."""
    env = {**os.environ, "PYTHONPATH": str(code), "RAY_BACKEND_LOG_LEVEL": "fatal"}
    env.pop("RAY_ADDRESS", None)
    common = ["--steps", str(steps), "--device", "cpu", "-q"]
    lowlight = [sys.executable, "-m", "lowlight_cli"]
    commands = [
        ["batch", inputs["photos"], "-o", out / "batch"],
        ["video", inputs["clip"], "-o", out / "video.mp4"],
        ["video", inputs["clip"], "-o", out / "frames", "--max-frames", "5"],
        ["batch", inputs["few"], "-o", out / "ray", "--ray", "--workers", "1"],
    ]
    for command in commands:
        args = lowlight + [str(arg) for arg in command] + common
        print("$", " ".join(args[2:]), f"  [{code.name}]", flush=True)
        subprocess.run(args, env=env, cwd=out.parent, check=True)
        imported = subprocess.run(
            [sys.executable, "-c", "import lowlight_cli; print(lowlight_cli.__file__)"],
            env=env,
            cwd=out.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(imported).is_relative_to(code), f"{imported} is not under {code}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def compare(before: Path, after: Path) -> bool:
    """Print one row per output file; True when every file is in both and byte for byte the same."""
    names = sorted(
        {p.relative_to(before).as_posix() for p in before.rglob("*") if p.is_file()}
        | {p.relative_to(after).as_posix() for p in after.rglob("*") if p.is_file()}
    )
    same = bool(names)
    print(f"\n{'output':<28} {'ref':<14} {'working tree':<14} result")
    for name in names:
        old, new = before / name, after / name
        left = digest(old) if old.exists() else "missing"
        right = digest(new) if new.exists() else "missing"
        identical = old.exists() and new.exists() and old.read_bytes() == new.read_bytes()
        same &= identical
        print(f"{name:<28} {left:<14} {right:<14} {'identical' if identical else 'DIFFERENT'}")
    print(f"\n{len(names)} files: {'all identical' if same else 'DIFFERENCES FOUND'}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="HEAD", help="git ref to compare the working tree with (default HEAD)")
    parser.add_argument("--steps", type=int, default=1, help="sampling steps for every command (default 1)")
    parser.add_argument("--same", nargs="*", default=list(SAME), help="paths taken from the working tree on both sides")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="folder of photos (default: the 12 samples)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lowlight-compare-"))
    ref_code = work / "ref"
    try:
        inputs = prepare_inputs(work, args.samples)
        checkout(args.ref, ref_code, tuple(args.same))
        (work / "before").mkdir()
        (work / "after").mkdir()
        run_side(ref_code, inputs, work / "before" / "out", args.steps)
        run_side(ROOT, inputs, work / "after" / "out", args.steps)
        same = compare(work / "before" / "out", work / "after" / "out")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_code)], check=False)
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
