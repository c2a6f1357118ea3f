"""`batch --ray` against the local batch: images per second by worker count, and Ray's fixed start-up cost.

    python benchmarks/bench_ray.py --photos 16 --workers 1,2                 # here: 2 CPUs
    python benchmarks/bench_ray.py --photos 64 --workers 1,2,4,8 --size 2048x1536
    python benchmarks/bench_ray.py --photos 4 --workers 1 --tiny             # smoke test, random tiny model

Each configuration runs in a fresh process (so Ray's cluster start, the
workers' imports and model loads are all counted) on the same folder of
synthetic dark, noisy photos: the local batch (one process, torch's own
thread count, the next photo decoded while one is enhanced), the same on
one torch thread, then a local Ray cluster with N one-CPU workers (one
torch thread each). Per run:

* **first s**: from the process's start (imports included) to the first finished photo: the fixed cost;
* **img/s**: photos after the first, over the time from the first to the last (the steady rate);
* **total s**: the whole run.

Ray's start-up cost is its `first s` minus the local batch's. Prints a
markdown table (paste it into README).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = dict(
    base_channels=8, channel_mults=(1, 2, 2), token_dim=16, attn_heads=2, max_regions=8, num_train_timesteps=50
)  # as tests/conftest.py: measures the machinery, not the real model


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    """Dark (mean ≈ 0.07), noisy, colour-cast gradients with texture, saved as JPEG (quality 92)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(count):
        rng = np.random.default_rng(index)
        scene = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + 37 * index) / 23.0)], axis=2)
        dark = scene * np.array([0.14, 0.09, 0.06]) + rng.normal(0, 0.012, scene.shape)
        Image.fromarray((np.clip(dark, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
            folder / f"photo{index:03d}.jpg", quality=92
        )


def child(options: dict) -> dict:
    """Runs in a fresh process: one batch, timed from the process's start."""
    began = options["began"]
    from lowlight_cli.run.plan import plan_folder
    from lowlight_cli.settings import EnhanceSettings

    model = options["model"]
    if options["tiny"]:
        import torch

        from lowlight_cli.models import ModelConfig, PriorGuidedDenoiser
        from lowlight_cli.models.checkpoint import save_checkpoint

        torch.manual_seed(0)
        net = PriorGuidedDenoiser(ModelConfig(**TINY))
        torch.nn.init.normal_(net.out_conv.weight, std=0.05)
        model = str(Path(options["out"]).with_suffix(".tiny.safetensors"))
        save_checkpoint(net, Path(model))
    settings = EnhanceSettings(model=model, device="cpu", prior="fallback", steps=1)
    plan = plan_folder(options["input"], options["out"], False, None, None, None, overwrite=True)
    finished: list[float] = []
    if options["workers"] <= 0:
        import torch

        from lowlight_cli.pipeline import build
        from lowlight_cli.run.local import LocalExecutor

        if options["workers"] < 0:
            torch.set_num_threads(1)
        executor = LocalExecutor(build(settings=settings))
        report = executor.run(plan, on_advance=lambda task: finished.append(time.time()))
    else:
        import ray

        from lowlight_cli.run.ray_cluster import RayOptions
        from lowlight_cli.run.ray_executor import RayExecutor

        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        ray.init(num_cpus=options["cpus"], include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        executor = RayExecutor(settings, RayOptions(workers=(options["workers"],) * 2))
        report = executor.run(plan, on_advance=lambda task: finished.append(time.time()))
        ray.shutdown()
    assert not report.failed, report.failed
    end = time.time()
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 1 else float("nan")
    return {"first": finished[0] - began, "rate": steady, "total": end - began, "photos": len(report.done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the synthetic photos")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to measure (the local batch always runs)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--tiny", action="store_true", help="a random tiny model instead (smoke test)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        options = json.loads(args.child)
        print("RESULT " + json.dumps(child(options)))
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    width, height = (int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        folder = Path(scratch) / "dark"
        make_photos(folder, args.photos, (width, height))
        for workers in [0, -1] + [int(w) for w in args.workers.split(",")]:
            options = {
                "input": str(folder),
                "out": str(Path(scratch) / f"out{workers}"),
                "workers": workers,
                "cpus": max(cpus, workers),
                "model": args.model,
                "tiny": args.tiny,
                "began": time.time(),
            }
            done = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(options)], capture_output=True, text=True
            )
            line = next((text for text in done.stdout.splitlines() if text.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"run with {workers} workers failed:\n{done.stderr[-3000:]}")
            rows.append((workers, json.loads(line[len("RESULT ") :])))
            print(
                f"# {workers} worker(s) (0: local batch, -1: local batch on 1 thread): {rows[-1][1]}", file=sys.stderr
            )
    local_first = rows[0][1]["first"]
    print(
        f"{args.photos} photos of {width}x{height}, {cpus} CPUs, model {'tiny' if args.tiny else args.model}, "
        "prior fallback, 1 step\n"
    )
    print("| run | workers | first photo s | img/s after the first | total s | start-up vs local s |")
    print("|---|---|---|---|---|---|")
    for workers, result in rows:
        name = {0: "local batch", -1: "local batch, 1 torch thread"}.get(workers, "`--ray`")
        extra = "—" if workers <= 0 else f"{result['first'] - local_first:+.1f}"
        print(
            f"| {name} | {workers if workers > 0 else '1 process'} | {result['first']:.1f} | {result['rate']:.2f} | "
            f"{result['total']:.1f} | {extra} |"
        )


if __name__ == "__main__":
    main()
