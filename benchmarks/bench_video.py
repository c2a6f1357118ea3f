"""Video throughput: frames per second and peak memory per frame size and device.

    python benchmarks/bench_video.py --sizes 720p,1080p --device cpu,cuda --steps 10 --frames 20
    python benchmarks/bench_video.py --tiny --frames 2 --sizes 720p --steps 1   # smoke test, random tiny model

The clip is synthetic (a dark, noisy, slowly panning gradient, no audio) so
the benchmark needs no data. Each (size, device) runs in a fresh process so
its peak RSS is its own. fps covers decoding, enhancement and encoding of
every frame, not the model load (a video pays that once). Prints a markdown
table (paste it into README).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
TINY = dict(
    base_channels=8, channel_mults=(1, 2, 2), token_dim=16, attn_heads=2, max_regions=8, num_train_timesteps=50
)  # as tests/conftest.py: measures the machinery, not the real model


def make_clip(path: Path, size: tuple[int, int], frames: int, fps: int = 30) -> Path:
    """A dark (mean ≈ 0.06) gradient panning 2 px a frame with fresh noise each frame: a realistic codec load."""
    import numpy as np

    from lowlight_cli.io.video import VideoSink

    width, height = size
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with VideoSink(path, fps, size) as sink:
        for index in range(frames):
            shifted = (x + 2 * index) / width
            scene = np.stack([shifted, y / height, 0.5 + 0.5 * np.sin(shifted * 40)], axis=2) * [0.15, 0.1, 0.07]
            sink.write(index, scene + rng.normal(0, 0.015, scene.shape).astype(np.float32))
    return path


def child(options: dict) -> dict:
    """Runs in the fresh process: load, enhance the clip, measure."""
    import torch

    from lowlight_cli.io.video import open_sink, open_source
    from lowlight_cli.pipeline import build
    from lowlight_cli.run.temporal import enhance_video

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    denoiser = None  # the checkpoint options["model"] names, unless a tiny random model is asked for
    if options["tiny"]:
        from lowlight_cli.models import ModelConfig, PriorGuidedDenoiser

        torch.manual_seed(0)
        denoiser = PriorGuidedDenoiser(ModelConfig(**TINY)).eval()
    start = time.perf_counter()
    enhancer = build(
        model=options["model"],
        denoiser=denoiser,
        device=options["device"],
        prior=options["prior"],
        steps=options["steps"],
        work_size=options["work_size"],
    )
    load = time.perf_counter() - start
    if getattr(enhancer.prior, "cache", None) is not None:
        enhancer.prior.cache = None  # time SAM itself, not the prior cache
    source = open_source(Path(options["clip"]))
    report = enhance_video(enhancer, source, open_sink(Path(options["out"]), source, overwrite=True))
    cuda = enhancer.device.type == "cuda"
    rss_unit = 2**20 if sys.platform != "darwin" else 2**30  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "device": str(enhancer.device),
        "fps": report.fps,
        "frames": report.done,
        "load": load,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / rss_unit,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def run_case(options: dict) -> dict | None:
    """`child` in a fresh interpreter; None (with its stderr shown) if it failed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(options)], capture_output=True, text=True, env=env
    )
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[str, dict]], args: argparse.Namespace) -> str:
    gpu = any(r["peak_gpu_gib"] is not None for _, r in rows)
    model = "tiny random" if args.tiny else args.model
    lines = [
        f"| size | device | fps | peak RSS GiB |{' peak GPU GiB |' if gpu else ''}",
        "|---|---|---|---|" + ("---|" if gpu else ""),
    ]
    for size, r in rows:
        vram = f" {r['peak_gpu_gib']:.2f} |" if r["peak_gpu_gib"] is not None else (" - |" if gpu else "")
        lines.append(f"| {size} | {r['device']} | {r['fps']:.2f} | {r['peak_rss_gib']:.2f} |{vram}")
    threads = f", {args.threads} threads" if args.threads else ""
    lines.append(
        f"\n{args.frames} frames, model {model}, {args.steps} steps, work size {args.work_size}, "
        f"prior {args.prior}{threads}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="'default' or a .safetensors path")
    parser.add_argument("--tiny", action="store_true", help="random tiny model instead of --model (smoke test)")
    parser.add_argument("--device", default="auto", help="comma-separated: auto, cpu, cuda, mps")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--sizes", default="720p,1080p", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--prior", default="auto", help="auto, sam, fallback or none")
    parser.add_argument("--work-size", type=int, default=384)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {', '.join(unknown)} (choose from {', '.join(SIZES)})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            clip = make_clip(Path(tmp) / f"dark_{size}.mp4", SIZES[size], args.frames)
            for device in args.device.split(","):
                options = dict(
                    clip=str(clip),
                    out=str(Path(tmp) / "out.mp4"),
                    model=args.model,
                    tiny=args.tiny,
                    device=device,
                    prior=args.prior,
                    steps=args.steps,
                    work_size=args.work_size,
                    threads=args.threads,
                )
                result = run_case(options)
                if result is not None:
                    rows.append((size, result))
                    print(
                        f"{size} on {result['device']}: {result['fps']:.2f} fps, model load {result['load']:.1f} s",
                        file=sys.stderr,
                    )
    print(table(rows, args))


if __name__ == "__main__":
    main()
