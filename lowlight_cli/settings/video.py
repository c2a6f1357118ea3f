"""Video settings: what `lowlight video` asks of one video besides the enhancement settings.

One validated, torch-free dataclass, made like `EnhanceSettings`: the
`video` command's own options are made from its fields, a `run.tasks.VideoTask`
carries one (to a Ray worker too, as JSON), and `run.temporal` takes its
smoothing. A bad value is a `SettingError` naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lowlight_cli.errors import Setting
from lowlight_cli.settings.common import SettingError, Settings, check_at_least, check_choice, meta

FRAME_FORMATS = ("png", "jpg")  # what a frames-folder output is written as
DEFAULT_FOLDER_FPS = 30  # the frame rate of a frames folder, which has none of its own
# The weight of the past in the moving average of a shot's working-resolution output.
DEFAULT_SMOOTHING = 0.8


@dataclass(frozen=True)
class VideoSettings(Settings):
    """The time window, the temporal smoothing and the frames-folder format of one video. Validated on creation."""

    start: float | None = field(default=None, metadata=meta("--start", None, "Start time in seconds."))
    end: float | None = field(default=None, metadata=meta("--end", None, "End time in seconds."))
    max_frames: int | None = field(
        default=None, metadata=meta("--max-frames", None, "Stop after this many frames (try a clip first).")
    )
    smoothing: float = field(
        default=DEFAULT_SMOOTHING,
        metadata=meta(
            "--smoothing",
            "W",
            "Weight of the past in the temporal smoothing, 0 (off) to <1. The past is "
            "aligned to each frame first and left out where the picture moved.",
        ),
    )
    fps: float | None = field(
        default=None,
        metadata=meta(
            "--fps",
            None,
            f"Frame rate of a frames-folder input (default {DEFAULT_FOLDER_FPS}). A video file keeps its own.",
        ),
    )
    frame_format: str | None = field(
        default=None,
        metadata=meta(
            "--frame-format",
            "|".join(FRAME_FORMATS),
            "Format of a frames-folder output (default: frames from a "
            "folder keep their names and formats; from a video, png).",
        ),
    )

    def __post_init__(self) -> None:
        check_at_least("start", self.start, 0, " seconds")
        if self.end is not None and self.end <= (self.start or 0.0):
            raise SettingError("end", f"({self.end}) must be after ", Setting("start"), f" ({self.start or 0})")
        check_at_least("max_frames", self.max_frames, 1)
        if not 0.0 <= self.smoothing < 1.0:
            raise SettingError("smoothing", f"must be in [0, 1), got {self.smoothing}")
        if self.fps is not None and self.fps <= 0:
            raise SettingError("fps", f"must be positive (the frame rate of a frames folder), got {self.fps}")
        if self.frame_format is not None:
            object.__setattr__(self, "frame_format", self.frame_format.lower().lstrip("."))  # frozen: set directly
            check_choice("frame_format", self.frame_format, FRAME_FORMATS)
