"""CPU cost of the SAM region prior per image, for several encoder sizes and point grids.

Uses a full-size ViT-B SAM with random weights: the same FLOPs as the released
model, no checkpoint needed. Random weights predict poor masks, so the IoU and
stability filters keep few of them: the mask count (and the post-processing
time that depends on it) is lower than with real weights; encoder and decoder
compute are the same.

Each configuration runs in its own subprocess so that its peak RSS is its own.

    python benchmarks/bench_sam.py --threads 1
    python benchmarks/bench_sam.py --configs 512x8,512x16 --threads 2

A configuration is ENCODERxPOINTS (points per side), or ENCODERxPOINTS:default
for segment-anything's stock SamAutomaticMaskGenerator settings (64 points per
batch, IoU 0.88, stability 0.95, its default crop settings) instead of the
producer's (all points in one batch, IoU 0.8, stability 0.9, no crops). A run
whose projected time exceeds --budget seconds is stopped and its total is
extrapolated from the batches done so far.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_CONFIGS = "1024x32:default,1024x16,512x8,512x16"


class OverBudget(Exception):
    pass


def synthetic_image(height: int, width: int):
    """A brightened-looking working copy: flat regions, shapes, gradients and a little noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.3 + 0.4 * x, 0.25 + 0.3 * y, 0.5 - 0.2 * x], axis=-1)
    image[height // 5 : height // 2, width // 6 : width // 2] = (0.8, 0.3, 0.2)
    image[(y - 0.5) ** 2 + (x - 0.7) ** 2 < 0.02] = (0.2, 0.6, 0.9)
    image[int(height * 0.7) :, :] *= 0.5
    return np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)


def make_producer(spec: str, threads: int):
    """The SAM prior producer (random ViT-B weights) of configuration `spec`, on `threads` CPU threads."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from lowlight_cli.priors.sam import SamPriorProducer

    size_points, _, mode = spec.partition(":")
    encoder_size, points = (int(v) for v in size_points.split("x"))
    options = None
    if mode == "default":
        stock = inspect.signature(SamAutomaticMaskGenerator).parameters.items()
        options = {
            name: param.default
            for name, param in stock
            if name != "model" and param.default is not inspect.Parameter.empty
        }
        options["points_per_side"] = points
    sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    producer = SamPriorProducer.from_model(
        sam,
        "vit_b",
        device="cpu",
        points_per_side=points,
        encoder_size=encoder_size,
        cache=None,
        mask_generator_options=options,
    )
    return producer


def run_one(spec: str, threads: int, budget: float, height: int, width: int) -> dict:
    """One configuration's timings; a run that would pass `budget` seconds is stopped and extrapolated."""
    producer = make_producer(spec, threads)
    size_points, _, _ = spec.partition(":")
    encoder_size, points = (int(v) for v in size_points.split("x"))
    generator = producer.generator
    batch_size = generator.points_per_batch
    batches = -(-points * points // batch_size)
    done = []
    start = [0.0]
    original = generator._process_batch

    def timed_batch(*args, **kwargs):
        batch_start = time.perf_counter()
        result = original(*args, **kwargs)
        done.append(time.perf_counter() - batch_start)
        elapsed = time.perf_counter() - start[0]
        projected = elapsed + (batches - len(done)) * (sum(done) / len(done))
        if projected > budget and len(done) < batches:
            raise OverBudget
        return result

    generator._process_batch = timed_batch
    image = synthetic_image(height, width)
    cpu_start = time.process_time()
    start[0] = time.perf_counter()
    row = {
        "config": spec,
        "encoder_size": encoder_size,
        "points_per_side": points,
        "prompts": points * points,
        "points_per_batch": batch_size,
        "threads": threads,
    }
    try:
        prior = producer(image)
        timings = producer.last_timings
        row.update(
            encoder_s=timings["encoder"],
            decoder_s=timings["decoder"],
            total_s=timings["total"],
            masks=producer.last_masks,
            regions=prior.num_regions,
            extrapolated=False,
        )
    except OverBudget:
        row.update(extrapolated_timings(generator.predictor.encoder_seconds, done, batches, start[0], batch_size))
    row["cpu_s"] = time.process_time() - cpu_start
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def extrapolated_timings(encoder: float, done: list[float], batches: int, start: float, batch_size: int) -> dict:
    """A stopped run's timings: the decoder's batches not run are counted at the mean of those that ran."""
    per_batch = sum(done) / len(done)
    decoder = time.perf_counter() - start - encoder + (batches - len(done)) * per_batch
    return dict(
        encoder_s=encoder,
        decoder_s=decoder,
        total_s=encoder + decoder,
        masks=None,
        regions=None,
        extrapolated=True,
        batches_done=len(done),
        batches=batches,
        seconds_per_point=per_batch / batch_size,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help=f"comma-separated ENCODERxPOINTS[:default] (default {DEFAULT_CONFIGS})",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=180.0,
        help="seconds a configuration may take before it is extrapolated (default 180)",
    )
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_one(args.one, args.threads, args.budget, args.height, args.width)))
        return

    root = Path(__file__).resolve().parent.parent
    rows = []
    for spec in [s.strip() for s in args.configs.split(",") if s.strip()]:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            spec,
            "--threads",
            str(args.threads),
            "--budget",
            str(args.budget),
            "--height",
            str(args.height),
            "--width",
            str(args.width),
        ]
        result = subprocess.run(command, capture_output=True, text=True, cwd=root)
        if result.returncode != 0:
            print(f"{spec}: failed\n{result.stderr}", file=sys.stderr)
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"done {spec}: {row['total_s']:.1f} s", file=sys.stderr, flush=True)

    print_table(rows, args)


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """The Markdown table of the configurations' timings."""
    print(
        f"\nSAM ViT-B (random weights), {args.width}×{args.height} image, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}, torch CPU\n"
    )
    print(
        "| encoder | points/side | prompts (per batch) | encoder s | decoder + post-processing s | total s | CPU s | "
        "masks | regions | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mark = "≈" if row["extrapolated"] else ""
        note = (
            f" (extrapolated from {row['batches_done']}/{row['batches']} batches, "
            f"{row['seconds_per_point'] * 1000:.0f} ms/point)"
            if row["extrapolated"]
            else ""
        )
        label = f"{row['points_per_side']}" + (" (stock settings)" if row["config"].endswith(":default") else "")
        print(
            f"| {row['encoder_size']} | {label} | {row['prompts']} ({row['points_per_batch']}) | "
            f"{row['encoder_s']:.2f} | {mark}{row['decoder_s']:.2f} | {mark}{row['total_s']:.2f}{note} | "
            f"{row['cpu_s']:.1f} | {row['masks'] if row['masks'] is not None else '–'} | "
            f"{row['regions'] if row['regions'] is not None else '–'} | {row['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
