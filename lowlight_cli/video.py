"""Enhance a video frame by frame without flicker.

Enhancing frames independently flickers: each frame gets its own region prior
and its own colour transform, and small input differences (sensor noise)
move both. Within a shot, three things keep consecutive frames consistent:

* every frame is sampled from the same noise field (the `Enhancer` seed);
* the region prior of the shot's first frame is reused, so the model is
  guided by the same regions, and only recomputed on a scene cut;
* the working-resolution output, which defines the colour transform that
  `reconstruct` carries to full resolution, is averaged over time
  (exponentially) and reset on cuts.

Averaging where the picture moves would leave trails behind moving
subjects, so the average skips the parts of the frame that changed as much
as a whole frame does at a cut; static parts, where flicker shows most,
keep the full average.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from lowlight_cli.errors import UsageError
from lowlight_cli.io.video import FrameSink, FrameSource
from lowlight_cli.pipeline import Enhancer
from lowlight_cli.prepare import resize, working_size
from lowlight_cli.priors.region_prior import RegionPrior

THUMBNAIL = 16  # long side (px) at which frames are compared for cuts and motion


@dataclass
class VideoReport:
    done: int = 0  # frames enhanced and written
    skipped: int = 0  # frames already in the output folder (resume)
    priors: int = 0  # region priors computed: the first frame, then one per scene cut
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ShotState:
    """What carries from one frame to the next within a shot."""

    low: np.ndarray  # previous working-resolution input, to detect cuts and motion
    prior: RegionPrior
    output: np.ndarray  # time-averaged working-resolution output


def enhance_video(enhancer: Enhancer, source: FrameSource, sink: FrameSink,
                  on_frame: Callable[[int], None] | None = None, smoothing: float = 0.8,
                  scene_cut: float = 0.12) -> VideoReport:
    """Enhance every frame of `source` into `sink`; closes the source and commits the sink.

    `smoothing` is the weight of the past in the output's moving average
    (0 = none); `scene_cut` is the mean relative frame change (see
    `change_map`) above which a new shot starts. `on_frame(index)` is called
    after each frame, written or skipped. On any exception, Ctrl-C included,
    the sink is aborted: a video output is not created, frames already in a
    folder stay for the next run to resume from.
    """
    if not 0.0 <= smoothing < 1.0:
        raise UsageError(f"--smoothing must be in [0, 1), got {smoothing}")
    if scene_cut <= 0:
        raise UsageError(f"the scene-cut threshold must be positive, got {scene_cut}")
    report, state = VideoReport(), None
    start = time.perf_counter()
    with source, sink:
        for index, rgb in source:
            if sink.done(index):
                report.skipped += 1
                state = None  # the next missing frame starts a fresh shot
            else:
                out, state, new_prior = enhance_frame(enhancer, rgb, state, smoothing, scene_cut)
                sink.write(index, out, source.time_of(index))
                report.done += 1
                report.priors += new_prior
            if on_frame is not None:
                on_frame(index)
    report.seconds = time.perf_counter() - start
    return report


def enhance_frame(enhancer: Enhancer, rgb: np.ndarray, state: ShotState | None, smoothing: float,
                  scene_cut: float) -> tuple[np.ndarray, ShotState, bool]:
    """One frame: (full-resolution output, state for the next frame, whether a new prior was computed)."""
    working = enhancer.working_copy(rgb)
    changes = None if state is None else change_map(state.low, working.low)
    same_shot = changes is not None and float(changes.mean()) < scene_cut
    working, work_output, prior, _ = enhancer.enhance_working(rgb, state.prior if same_shot else None, working)
    if same_shot:
        still = resize((changes < scene_cut).astype(np.float32), *work_output.shape[:2])[..., None]
        weight = smoothing * still
        work_output = weight * state.output + (1.0 - weight) * work_output
    out = enhancer.reconstruct(rgb, working, work_output)
    return out, ShotState(low=working.low, prior=prior, output=work_output), not same_shot


def change_map(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Absolute difference per thumbnail cell, relative to the frames' mean brightness.

    Relative, because in dark footage two unrelated shots differ by only a few
    percent of full scale: an absolute threshold would never see the cut.
    On small thumbnails, so that sensor noise (which a relative measure would
    otherwise amplify in the dark) averages out first.
    """
    a, b = thumbnail(previous), thumbnail(current)
    brightness = max(float(a.mean() + b.mean()) / 2.0, 1e-3)
    return np.abs(a - b).mean(axis=2) / brightness


def thumbnail(image: np.ndarray) -> np.ndarray:
    return resize(image, *working_size(*image.shape[:2], THUMBNAIL))


def flicker(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of mean brightness, relative to the mean brightness.

    0.01 means the overall brightness jumps by 1 % per frame on average; a
    static shot should stay well under 0.02 once enhanced.
    """
    means = np.array([float(np.mean(frame)) for frame in frames])
    if len(means) < 2 or means.mean() <= 0:
        return 0.0
    return float(np.abs(np.diff(means)).mean() / means.mean())
