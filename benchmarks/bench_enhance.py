"""Time and peak memory per photo: sizes × prior on/off × step counts, CPU or CUDA.

    python benchmarks/bench_enhance.py --sizes 1,3,12,24 --steps 4,10,20 --priors fallback,none
    python benchmarks/bench_enhance.py --device cuda --prior-sam-random vit_b   # GPU, SAM cost with random weights

Each configuration runs in a fresh subprocess so peak RSS is its own (the
model load is reported separately: batch and video pay it once). The test
photo is a real dark sample from ../shared/data/lowlight-samples resized to
the megapixel count, with sensor-like noise added at that resolution.
Prints a markdown table (paste it into README).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
args = json.loads(sys.argv[1])
if args["threads"]:
    torch.set_num_threads(args["threads"])
from lowlight_cli.io.images import load_image, save_image
from lowlight_cli.pipeline import build
t0 = time.perf_counter()
# With random SAM weights, build without a prior (`sam` would look for real weights) and hand in the random SAM.
enhancer = build(model=args["model"], device=args["device"], prior="none" if args["sam_random"] else args["prior"],
                 steps=args["steps"], work_size=args["work_size"], full_res=args["full_res"],
                 highlights=args["highlights"])
load = time.perf_counter() - t0
if args["sam_random"]:
    from dataclasses import replace
    from segment_anything import sam_model_registry
    from lowlight_cli.priors.sam import SamPriorProducer
    enhancer = replace(enhancer, prior=SamPriorProducer.from_model(
        sam_model_registry[args["sam_random"]](checkpoint=None), sam_model=args["sam_random"],
        device=str(enhancer.device)))
if getattr(enhancer.prior, "cache", None) is not None:
    enhancer.prior.cache = None  # time SAM itself, not the prior cache (and keep benchmark priors out of it)
def once():
    if enhancer.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    image = load_image(args["photo"])
    result = enhancer.enhance(image.rgb)
    save_image(args["out"], result.rgb, like=image)
    if enhancer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, result
if args["warmup"]:
    once()
seconds, result = once()
peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if enhancer.device.type == "cuda" else 0.0
print(json.dumps({"seconds": seconds, "load": load, "timings": result.timings,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                  / (2**30 if sys.platform == "darwin" else 2**20),
                  "peak_gpu_gib": peak_gpu, "regions": result.prior.num_regions}))
"""


def make_photo(megapixels: float, folder: Path) -> Path:
    import cv2
    import numpy as np

    source = Path(__file__).resolve().parent.parent.parent / "shared/data/lowlight-samples/LIME_8.jpg"
    if not source.exists():
        source = Path(__file__).resolve().parent.parent / "examples/kodim05_dark_noisy.jpg"
    image = cv2.imread(str(source))
    height, width = image.shape[:2]
    scale = (megapixels * 1e6 / (height * width)) ** 0.5
    size = (round(width * scale), round(height * scale))
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(0).normal(0, 2.0, big.shape).astype(np.float32)
    path = folder / f"photo_{megapixels:g}mp.jpg"
    cv2.imwrite(str(path), np.clip(big, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,3,12,24", help="megapixels, comma-separated")
    parser.add_argument("--steps", default="4,10,20")
    parser.add_argument("--priors", default="fallback,none")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="default")
    parser.add_argument("--work-size", type=int, default=384)
    parser.add_argument("--full-res", action="store_true", help="sample at full resolution in tiles")
    parser.add_argument(
        "--prior-sam-random",
        default="",
        help="add a 'sam' prior row: SAM of this size with random weights (cost only, no download)",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--highlights", default="auto", help="auto | curve | local (the --highlights setting)")
    parser.add_argument("--warmup", action="store_true", help="run once before timing (GPU kernels, caches)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    priors = args.priors.split(",")
    if args.prior_sam_random and "sam" not in priors:
        priors.append("sam")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for mp in [float(s) for s in args.sizes.split(",")]:
            photo = make_photo(mp, folder)
            for prior in priors:
                for steps in [int(s) for s in args.steps.split(",")]:
                    child = dict(
                        model=args.model,
                        device=args.device,
                        prior=prior,
                        steps=steps,
                        work_size=args.work_size,
                        full_res=args.full_res,
                        photo=str(photo),
                        out=str(folder / "out.jpg"),
                        threads=args.threads,
                        warmup=args.warmup,
                        highlights=args.highlights,
                        sam_random=args.prior_sam_random if prior == "sam" else "",
                    )
                    done = subprocess.run(
                        [sys.executable, "-c", CHILD, json.dumps(child)],
                        capture_output=True,
                        text=True,
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
                    )
                    if done.returncode:
                        print(done.stderr[-2000:], file=sys.stderr)
                        continue
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append((mp, prior, steps, result))
                    t = result["timings"]
                    print(
                        f"{mp:g} MP {prior} {steps} steps: {result['seconds']:.1f}s "
                        f"(prior {t['prior']:.2f}, sample {t['sample']:.2f}, reconstruct {t['reconstruct']:.2f}) "
                        f"peak {result['peak_rss_gib']:.2f} GiB",
                        file=sys.stderr,
                    )
    print_table(rows, args)


def print_table(rows: list, args: argparse.Namespace) -> None:
    """The Markdown table of the timed runs."""
    device = args.device + (f", {args.threads} threads" if args.threads else "")
    print(
        f"\n| photo | prior | steps | total s | prior s | sampling s | reconstruction s | peak RSS GiB |"
        f"{' peak GPU GiB |' if args.device == 'cuda' else ''}  ({device}, work size {args.work_size})"
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else ""))
    for mp, prior, steps, r in rows:
        t = r["timings"]
        gpu = f" {r['peak_gpu_gib']:.2f} |" if args.device == "cuda" else ""
        print(
            f"| {mp:g} MP | {prior} | {steps} | {r['seconds']:.1f} | {t['prior']:.2f} | {t['sample']:.2f} | "
            f"{t['reconstruct']:.2f} | {r['peak_rss_gib']:.2f} |{gpu}"
        )
    if rows:
        print(f"\nmodel load: {rows[0][3]['load']:.2f} s (once per process)")


if __name__ == "__main__":
    main()
