"""Time the command as a user runs it: `lowlight enhance` and `lowlight batch` as processes, wall clock.

    python benchmarks/bench_command.py                      # 1, 12, 24 MP; a batch of 20 photos
    python benchmarks/bench_command.py --sizes 12 --runs 5 --batch 0

Each row is a fresh `lowlight` process (imports, model load, decode,
enhancement, encode, exit): what a user waits for. The first run of a size
is reported as "cold" (the model file and the libraries may not be in the
page cache yet), the median of the remaining `--runs` as "warm"; peak memory
is the process's maximum resident set (from `os.wait4`, as `/usr/bin/time`
reports it). The batch row runs
`lowlight batch` over `--batch` copies of a photo of `--batch-mp` megapixels
and reports photos per second, model load included. The photos are
bench_enhance's: a real dark sample resized, with noise added at that size.
Prints a Markdown table (README, Speed) with the machine named.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_enhance import make_photo


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one process; a failure stops the benchmark with its message."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this process's own peak, not the largest child's so far
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()[-500:]
            sys.exit(f"{' '.join(command)} failed ({process.returncode}): {message}")
    return seconds, usage.ru_maxrss / 2**20


def lowlight() -> list[str]:
    """The installed command, or the package's module under this interpreter."""
    found = shutil.which("lowlight")
    return [found] if found else [sys.executable, "-m", "lowlight_cli"]


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.processor() or platform.machine()}, {cores} cores, {platform.system()}, CPU"


def single_rows(sizes: list[float], runs: int, folder: Path, extra: list[str]) -> list[str]:
    rows = []
    for mp in sizes:
        photo = make_photo(mp, folder)
        out = folder / "out.jpg"
        times, peaks = [], []
        for _ in range(runs):
            out.unlink(missing_ok=True)
            seconds, peak = timed([*lowlight(), "enhance", str(photo), "-o", str(out), *extra])
            times.append(seconds)
            peaks.append(peak)
            print(f"{mp:g} MP: {seconds:.2f} s", file=sys.stderr, flush=True)
        warm = f"{statistics.median(times[1:]):.2f}" if runs > 1 else "–"
        rows.append(f"| `enhance` {mp:g} MP JPEG | {times[0]:.2f} | {warm} | {max(peaks):.2f} |")
    return rows


def batch_row(count: int, mp: float, folder: Path, extra: list[str]) -> str:
    photo = make_photo(mp, folder)
    inputs = folder / "batch"
    inputs.mkdir()
    for i in range(count):
        shutil.copy(photo, inputs / f"photo_{i:02d}.jpg")
    seconds, peak = timed([*lowlight(), "batch", str(inputs), "-o", str(folder / "batch_out"), *extra])
    print(f"batch of {count}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return f"| `batch` of {count} × {mp:g} MP JPEGs | {count / seconds:.2f} photos/s ({seconds:.1f} s) | | {peak:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,12,24", help="megapixels, comma-separated")
    parser.add_argument("--runs", type=int, default=4, help="processes per size: the first is 'cold'")
    parser.add_argument("--batch", type=int, default=20, help="photos in the batch row (0: none)")
    parser.add_argument("--batch-mp", type=float, default=12.0)
    parser.add_argument("extra", nargs="*", help="more options for the command, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = single_rows([float(s) for s in args.sizes.split(",")], args.runs, Path(tmp), args.extra)
        if args.batch:
            rows.append(batch_row(args.batch, args.batch_mp, Path(tmp), args.extra))
    print(f"\n{machine()}; defaults{' ' + ' '.join(args.extra) if args.extra else ''}\n")
    print("| command | cold s | warm s (median) | peak RSS GiB |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
