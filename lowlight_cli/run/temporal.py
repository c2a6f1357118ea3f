"""Temporal consistency: enhance a video's frames in order, without flicker.

The frame loop and what carries between frames; `io/video.py` reads and
writes the containers and frame folders.

Enhancing frames independently flickers: each frame gets its own region prior
and its own colour transform, and small input differences (sensor noise)
move both. Within a shot, three things keep consecutive frames consistent:

* every frame is sampled from the same noise field (the pipeline's seed);
* the region prior of the shot's first frame is reused, so the model is
  guided by the same regions, and only recomputed on a scene cut;
* the tone judgement (exposure, white balance, curve, and the highlight
  roll-off's choice of shoulder and local exposure strength) is averaged over time, as a camera's
  auto-exposure settles, so it follows the light without jumping between
  frames, and starts afresh on a cut;
* the working-resolution output, which defines the colour transform that
  `reconstruct` carries to full resolution, is averaged over time
  (exponentially) and reset on cuts.

Averaging where the picture moves would double edges on a camera pan and
leave trails behind moving subjects. So the past is first aligned to the
current frame (the global shift between the two, by phase correlation),
and the average then takes each pixel only as far as the aligned past
agrees with the present there: where a subject moves against the
background, or where the alignment fails, the weight falls to zero and
the frame is its own. Static parts, where flicker shows most, keep the
full average.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from time import perf_counter
from typing import cast

import cv2
import numpy as np

from lowlight_cli.errors import LowlightError
from lowlight_cli.imaging.prepare import WorkingCopy, resize, working_size
from lowlight_cli.io.video import FrameSink, FrameSource
from lowlight_cli.models.tone import ToneParams, mix
from lowlight_cli.pipeline import Pipeline
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.settings.video import DEFAULT_SMOOTHING

THUMBNAIL = 16  # long side (px) at which frames are compared for cuts
SCENE_CUT = 0.12  # mean relative change of the thumbnails (`change_map`) above which a new shot starts
TONE_SECONDS = 0.5  # time constant of the shot's tone average: a steady scene stays steady (frame-to-frame
# jitter of the judgement averaged over ~15 frames at 30 fps), a real change of light is followed within a second
FRAME_SECONDS = 1 / 30  # the time between frames when the source gives none
COMPARE_SIGMA = 1.5  # px at working size: blur that averages sensor noise out before pixels are compared
MIN_ALIGNMENT = 0.05  # phase-correlation response below which no global shift is trusted


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
    prior: RegionPrior | None  # None after a frame a resumed run found done: the next frame computes one
    output: np.ndarray | None  # time-averaged working-resolution output (None after such a frame: see `written`)
    tone: ToneParams | None = None  # time-averaged tone judgement (None: a model without a tone branch)
    local: bool = False  # the highlight roll-off's choice, made once per shot (`Pipeline.local_highlights`)
    written: Callable[[], np.ndarray] | None = None  # after such a frame: reads it back as the earlier run wrote it
    time: float | None = None  # the frame's time (seconds), from which the tone average's weight follows


def enhance_video(
    pipeline: Pipeline,
    source: FrameSource,
    sink: FrameSink,
    on_frame: Callable[[int], None] | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    scene_cut: float = SCENE_CUT,
) -> VideoReport:
    """Enhance every frame of `source` into `sink`; closes the source and commits the sink.

    `smoothing` is the weight of the past in the output's moving average
    (0 = none); `scene_cut` is the mean relative frame change (see
    `change_map`) above which a new shot starts. `on_frame(index)` is called
    after each frame, written or skipped. On any exception, Ctrl-C included,
    the sink is aborted: a video output is not created, frames already in a
    folder stay for the next run to resume from.
    """
    if not 0.0 <= smoothing < 1.0:  # `VideoSettings.smoothing` is checked where it is given
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if scene_cut <= 0:
        raise ValueError(f"the scene-cut threshold must be positive, got {scene_cut}")
    report, state = VideoReport(), None
    start = perf_counter()
    with source, sink:
        for index, rgb in source:
            when = source.time_of(index)
            if sink.done(index):
                report.skipped += 1
                state = replay(
                    pipeline, rgb, state, smoothing, scene_cut, written=partial(sink.finished, index), time=when
                )
            else:
                out, state, new_prior = enhance_frame(pipeline, rgb, state, smoothing, scene_cut, time=when)
                sink.write(index, out, source.time_of(index))
                report.done += 1
                report.priors += new_prior
            if on_frame is not None:
                on_frame(index)
    report.seconds = perf_counter() - start
    return report


def replay(
    pipeline: Pipeline,
    rgb: np.ndarray,
    state: ShotState | None,
    smoothing: float,
    scene_cut: float,
    written: Callable[[], np.ndarray],
    time: float | None = None,
) -> ShotState:
    """The state after a frame an earlier run already wrote (`written` reads it back), so that a resumed run
    goes on close to what one run would give.

    Without it the first missing frame would start a fresh shot: its own tone
    judgement instead of the settled average, a visible jump in the middle of
    a shot. The judgement is cheap (a thumbnail), so it is replayed for every
    frame found done, exactly as the run that wrote them made it. The output
    average goes on from the finished frame itself, read back only if the
    next frame averages with it (`past_output`); the region prior is computed
    afresh there.
    """
    low = pipeline.shrink(rgb, direct=pipeline.settings.full_res)
    tone, _, local = shot_tone(pipeline, low, state, smoothing, scene_cut, time)
    return ShotState(low=low, prior=None, output=None, tone=tone, local=local, written=written, time=time)


def tone_weight(state: ShotState, time: float | None) -> float:
    """The weight of the shot's tone average against a new frame `time` seconds into the clip: a time
    constant (`TONE_SECONDS`), not a per-frame weight, so 24, 30 and 60 fps clips settle alike."""
    seconds = time - state.time if time is not None and state.time is not None else FRAME_SECONDS
    return math.exp(-max(seconds, 0.0) / TONE_SECONDS)


def shot_tone(
    pipeline: Pipeline,
    low: np.ndarray,
    state: ShotState | None,
    smoothing: float,
    scene_cut: float,
    time: float | None = None,
) -> tuple[ToneParams | None, bool, bool]:
    """The frame's tone judgement, mixed into the shot's average when the frame continues the shot
    (`change_map` under `scene_cut`) and smoothing is on (`smoothing` > 0); whether it does; and the
    highlight roll-off's choice, made at the shot's first frame and kept (with `--highlights auto` a
    scene near the night line would otherwise switch roll-offs from frame to frame)."""
    same_shot = state is not None and float(change_map(state.low, low).mean()) < scene_cut
    local = state.local if same_shot and state is not None else pipeline.local_highlights(low)
    tone = pipeline.judge(low, local=local)
    if same_shot and state is not None and smoothing > 0 and tone is not None and state.tone is not None:
        tone = mix(state.tone, tone, tone_weight(state, time))
    return tone, same_shot, local


def past_output(state: ShotState, size: tuple[int, int]) -> np.ndarray | None:
    """The shot's working-resolution output average so far; after a replayed frame, that frame as written
    (full size `size`), shrunk to working size. None when it cannot be read or is not that size: the frame
    then begins its own average, as at the start of a shot."""
    if state.output is not None:
        return state.output
    try:
        written = cast(Callable[[], np.ndarray], state.written)()  # set whenever output is None
    except (LowlightError, OSError):
        return None
    if written.shape[:2] != size:
        return None
    return resize(written, *state.low.shape[:2])


def enhance_frame(
    pipeline: Pipeline,
    rgb: np.ndarray,
    state: ShotState | None,
    smoothing: float,
    scene_cut: float,
    time: float | None = None,
) -> tuple[np.ndarray, ShotState, bool]:
    """One frame at `time` seconds (None: `FRAME_SECONDS` after the last): (full-resolution output, state for
    the next frame, whether a new prior was computed)."""
    # Never sampled directly, even when small: the working copy's area averaging also averages the noise
    # that would flicker from frame to frame, and every frame of the clip compares at one size.
    low = pipeline.shrink(rgb, direct=pipeline.settings.full_res)
    tone, same_shot, local = shot_tone(pipeline, low, state, smoothing, scene_cut, time)
    reused = state.prior if same_shot and state is not None else None
    # The pipeline's own stages, with the shot's judgement, its prior, and the output averaged over time.
    frame = replace(pipeline.start(rgb, reused), working=pipeline.develop_copy(low, tone))
    frame = pipeline.sample(pipeline.find_prior(frame))
    working, work_output = cast(WorkingCopy, frame.working), cast(np.ndarray, frame.output)
    past = past_output(state, rgb.shape[:2]) if same_shot and state is not None and smoothing > 0 else None
    if past is not None and state is not None:
        shift = global_shift(state.low, working.low)
        past_low, inside = translate(state.low, shift)
        past, _ = translate(past, shift)
        weight = smoothing * inside * agreement(past_low, working.low, scene_cut)
        work_output = weight * past + (1.0 - weight) * work_output
    out = cast(np.ndarray, pipeline.finish(replace(frame, output=work_output)).result)
    next_state = ShotState(low=working.low, prior=frame.prior, output=work_output, tone=tone, local=local, time=time)
    return out, next_state, reused is None


def global_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(dx, dy) in pixels by which the picture moved from `previous` to `current` (a camera pan).

    Phase correlation of the luma; (0, 0) when the match is too weak to trust
    (a flat or noisy frame), in which case `agreement` alone keeps the average
    off what moved.
    """
    a, b = previous.mean(axis=2).astype(np.float32), current.mean(axis=2).astype(np.float32)
    if min(a.shape) < 8:
        return 0.0, 0.0
    (dx, dy), response = cv2.phaseCorrelate(a, b, cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F))
    # Whole pixels: a sub-pixel warp would blur the past a little more each frame, and the estimate's
    # fraction is not reliable anyway; what the rounding leaves misaligned, `agreement` keeps out.
    return (float(round(dx)), float(round(dy))) if response >= MIN_ALIGNMENT else (0.0, 0.0)


def translate(image: np.ndarray, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """`image` moved by `shift` pixels, and an H×W×1 mask of where it has content."""
    height, width = image.shape[:2]
    if shift == (0.0, 0.0):
        return image, np.ones((height, width, 1), np.float32)
    matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])  # type: ignore[arg-type]  # numpy's stubs: scalars only
    moved = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(
        np.ones((height, width), np.float32),
        matrix,
        (width, height),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return moved, inside[..., None]


def agreement(past: np.ndarray, current: np.ndarray, threshold: float) -> np.ndarray:
    """Per pixel, 1 where the aligned past matches the present and 0 where it differs by `threshold` or more.

    The difference is relative to the frames' mean brightness, as in
    `change_map`, and taken after a small blur so that sensor noise does not
    count as change; between half the threshold and the threshold the weight
    ramps down, so that the average fades out at a moving edge instead of
    switching abruptly.
    """
    a = cv2.GaussianBlur(past, (0, 0), COMPARE_SIGMA)
    b = cv2.GaussianBlur(current, (0, 0), COMPARE_SIGMA)
    brightness = max(float(a.mean() + b.mean()) / 2.0, 1e-3)
    difference = np.abs(a - b).mean(axis=2) / brightness
    return np.clip(2.0 - 2.0 * difference / threshold, 0.0, 1.0)[..., None]


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
    return resize(image, *working_size(*cast(tuple[int, int], image.shape[:2]), THUMBNAIL))
