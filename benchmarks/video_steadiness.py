"""Video steadiness: does a steady scene give a steady output, and does a real change get followed?

    python benchmarks/video_steadiness.py [--photos ../shared/data/normal] [--tone-seconds 0.5,0.149]

Clips are made from well-exposed photos, darkened in linear light with fresh sensor noise every frame, 30 fps,
320 px wide, 60 frames (2 s):
- static: the scene does not change, only its noise;
- pan: the camera pans 2 px a frame;
- light: a bright lamp-like spot crosses the frame (the input's mean rises and falls by a few %);
- cut: a cut to another photo at frame 30.
Per clip it reports the output's mean level (0-255) frame to frame: the largest change between consecutive
frames in % (a steady scene should stay under 2 %), the drift from the first to the last frame of the shot
in %, beside the input's own; for the cut, how many frames the output takes to come within 5 % of the new
shot's settled level. `--tone-seconds` compares time constants of the tone average (0.149 s is the
per-frame weight 0.8 that earlier releases used).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.io.images import load_image
from lowlight_cli.pipeline import Pipeline, build
from lowlight_cli.run import temporal
from lowlight_cli.training.synth import linear_to_srgb, srgb_to_linear

FRAMES, CUT_AT, WIDTH = 60, 30, 320


def darkened(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark, noisy frame of a well-lit `rgb` (linear exposure 1/12, shot + read noise, 8-bit)."""
    linear = srgb_to_linear(rgb) / 12.0
    noisy = linear + rng.normal(0.0, 1.0, linear.shape) * np.sqrt(2e-4 * linear + 1e-6)
    return np.round(linear_to_srgb(noisy) * 255) / 255


def scene(path: Path) -> np.ndarray:
    rgb = load_image(path).rgb
    width = WIDTH + 2 * FRAMES  # room for the pan
    return cv2.resize(rgb, (width, round(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)


def clip(kind: str, first: np.ndarray, second: np.ndarray) -> list[np.ndarray]:
    """The frames (float, before darkening) of one scenario."""
    frames = []
    for index in range(FRAMES):
        offset = 2 * index if kind == "pan" else 32
        frame = (second if kind == "cut" and index >= CUT_AT else first)[:, offset : offset + WIDTH].copy()
        if kind == "light":
            y, x = np.mgrid[0 : frame.shape[0], 0:WIDTH]
            cx = WIDTH * index / FRAMES
            spot = np.exp(-((x - cx) ** 2 + (y - frame.shape[0] / 3) ** 2) / (2 * 12.0**2))[..., None]
            frame = np.clip(frame + 0.9 * spot, 0.0, 1.0)
        frames.append(frame.astype(np.float32))
    return frames


def levels(enhancer: Pipeline, frames: list[np.ndarray], seed: int) -> tuple[list[float], list[float]]:
    """Mean luma (0-255) of each input and output frame, run as `lowlight video` runs a clip."""
    rng = np.random.default_rng(seed)
    state, inputs, outputs = None, [], []
    for index, frame in enumerate(frames):
        dark = darkened(frame, rng).astype(np.float32)
        out, state, _ = temporal.enhance_frame(enhancer, dark, state, 0.8, 0.12, time=index / 30)
        inputs.append(float(luma(dark, REC601).mean()) * 255)
        outputs.append(float(luma(out, REC601).mean()) * 255)
    return inputs, outputs


def steadiness(values: list[float]) -> tuple[float, float]:
    """(largest frame-to-frame change, drift first→last), in % of the level."""
    v = np.asarray(values)
    return float(np.max(np.abs(np.diff(v)) / v[:-1]) * 100), float((v[-1] - v[0]) / v[0] * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/normal"), help="well-exposed photos")
    parser.add_argument("--scenes", default="kodak24_kodim03.jpg,kodak24_kodim23.jpg", help="two photos of --photos")
    parser.add_argument("--model", default="default")
    parser.add_argument("--tone-seconds", default=str(temporal.TONE_SECONDS))
    args = parser.parse_args()
    first, second = (scene(args.photos / name) for name in args.scenes.split(","))
    height = min(first.shape[0], second.shape[0])  # a clip's frames share one size
    first, second = first[:height], second[:height]
    enhancer = build(model=args.model, device="auto", prior="fallback", steps=1, work_size=256)
    print(
        "| tone average | clip | input: max step % / drift % | output: max step % / drift % | cut: frames to settle |"
    )
    print("|---|---|---|---|---|")
    for seconds in (float(s) for s in args.tone_seconds.split(",")):
        temporal.TONE_SECONDS = seconds
        for kind in ("static", "pan", "light", "cut"):
            inputs, outputs = levels(enhancer, clip(kind, first, second), seed=1)
            shot = slice(0, CUT_AT) if kind == "cut" else slice(0, FRAMES)
            (i_step, i_drift), (o_step, o_drift) = steadiness(inputs[shot]), steadiness(outputs[shot])
            settle = ""
            if kind == "cut":
                after = np.asarray(outputs[CUT_AT:])
                settled = after[-10:].mean()
                settle = str(int(np.argmax(np.abs(after - settled) / settled < 0.05)))
            print(
                f"| {seconds:.3f} s | {kind} | {i_step:.1f} / {i_drift:+.1f} | "
                f"{o_step:.1f} / {o_drift:+.1f} | {settle} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
