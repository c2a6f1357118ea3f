"""Video frames in and out, one frame at a time.

A video is never held in memory: `open_source` decodes frames lazily (a video
file through PyAV's bundled ffmpeg, or a folder of numbered images) and the
sinks write each enhanced frame as it arrives. Outputs are never partial:
`VideoSink` encodes into a temporary file beside the target and renames it
only once the last frame and the audio are in, and `FolderSink` writes every
frame atomically, so a re-run can resume at the first missing frame.
"""

from __future__ import annotations

import itertools
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lowlight_cli.errors import InputError, OutputError, Setting
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io.atomic import commit, discard, temporary_beside
from lowlight_cli.io.images import IMAGE_SUFFIXES, load_image, same_file, save_image
from lowlight_cli.settings.video import DEFAULT_FOLDER_FPS, FRAME_FORMATS

# What we write. Any file ffmpeg can play is read; AVI is not written because it cannot
# carry H.264's B-frame timestamps.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}
FOLDER_FPS = Fraction(DEFAULT_FOLDER_FPS)
# Output video clock: exact for 23.976/24/25/29.97/30/50/59.94/60 fps, and within MPEG-4 Part 2's 65535 limit.
VIDEO_TICKS = 60000
# Audio codecs players handle in MP4/MOV; other codecs are re-encoded to AAC (Matroska takes anything).
PORTABLE_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "flac"}

Frame = tuple[int, np.ndarray]


def _av():
    """PyAV, imported lazily: it loads ffmpeg, which `lowlight --help` should not pay for."""
    import av

    return av


def video_formats() -> str:
    return ", ".join(sorted(s.lstrip(".") for s in VIDEO_SUFFIXES))


class FrameSource(ABC):
    """A single-pass stream of `(index, rgb)` frames, rgb float32 H×W×3 in [0, 1].

    fps:         frames per second (a Fraction, so 30000/1001 stays exact)
    size:        (width, height) of every frame, as displayed
    frame_count: how many frames iteration will give, estimated; None if unknown
    has_audio:   whether `path` has an audio track worth carrying to the output
    start_time:  seconds on the source's own timeline of the first frame (where the audio is cut)
    names:       file name of each frame, for a frames folder (a folder output keeps them); None for a video
    name:        the input as messages name it
    """

    path: Path
    name: str  # the input as the user wrote it, for messages (`path` may be absolute)
    fps: Fraction
    size: tuple[int, int]
    frame_count: int | None
    has_audio: bool = False
    start_time: float = 0.0
    names: list[str] | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def time_of(self, index: int) -> float:
        """Seconds from the first frame to frame `index`, the frame just read (constant rate here)."""
        return index / float(self.fps)

    def close(self) -> None:  # noqa: B027 - an optional hook: a no-op unless a subclass needs it
        """Release the decoder (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_source(
    path: Path,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    folder_fps: Fraction = FOLDER_FPS,
    name: str | None = None,
) -> FrameSource:
    """A video file or a folder of frames, limited to [start, end) seconds and at most `max_frames` frames.

    `folder_fps` is the frame rate assumed for a folder, which has none of its own. The window is
    `settings.VideoSettings`', checked there. Messages name the input `name` (as the user wrote it; `path`
    may be absolute), else `path`.
    """
    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise InputError(f"{name}: file not found")
    if path.is_dir():
        return FolderSource(path, start, end, max_frames, Fraction(folder_fps), name)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{name}: is a photo, not a video (use `lowlight enhance`)")
    return VideoFileSource(path, start, end, max_frames, name)


class VideoFileSource(FrameSource):
    """Frames decoded by PyAV. The first frame is decoded on open, so a file that
    cannot be played fails here, before any model is run or output created."""

    def __init__(
        self, path: Path, start: float | None, end: float | None, max_frames: int | None, name: str | None = None
    ) -> None:
        av = _av()
        self.path, self.max_frames, self.name = path, max_frames, name or str(path)
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.name}: not a readable video ({_reason(exc)})") from None
        try:
            self._open_stream(start, end)
        except BaseException:
            self.close()
            raise

    def _open_stream(self, start: float | None, end: float | None) -> None:
        av = _av()
        if not self.container.streams.video:
            raise InputError(f"{self.name}: has no video stream")
        stream = self.container.streams.video[0]
        if stream.codec_context is None:
            raise InputError(f"{self.name}: no decoder for its video codec in this ffmpeg build")
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InputError(f"{self.name}: cannot tell the frame rate")
        self.stream, self.fps = stream, Fraction(rate)
        self.has_audio = bool(self.container.streams.audio)
        try:
            self._frames, first = self._open_window(start, end)
        except av.FFmpegError as exc:
            raise InputError(f"{self.name}: corrupt or unsupported video ({_reason(exc)})") from None
        if first is None:
            raise InputError(f"{self.name}: no frames in the selected time range")
        self._first = first
        self.start_time = first.time if first.time is not None else self._start
        self._latest: tuple[int, float] = (-1, 0.0)  # (index, seconds from the first) of the frame just read
        sideways = round(first.rotation / 90) % 2
        self.size = (first.height, first.width) if sideways else (first.width, first.height)
        self.frame_count = self._estimate_count(start, end)

    def _open_window(self, start: float | None, end: float | None) -> tuple[Iterator, Any]:
        """The decoder over [start, end) seconds from the first frame, and its first frame (None: empty).

        The window counts from the first frame's own time, not the stream's
        `start_time`: an MKV whose AAC track has a priming delay can report a
        start after its first frames, which would otherwise be dropped.
        """
        stream = self.stream
        decoder = self.container.decode(stream)
        head = next(decoder, None)
        if head is not None and head.time is not None:
            origin = head.time
        else:
            origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        self._start, self._end = origin + (start or 0.0), None if end is None else origin + end
        if start:
            self.container.seek(int(self._start / stream.time_base), stream=stream)
            decoder = self.container.decode(stream)
        elif head is not None:
            decoder = itertools.chain([head], decoder)
        frames = self._decoded(decoder)
        return frames, next(frames, None)

    def _estimate_count(self, start: float | None, end: float | None) -> int | None:
        """From the container's duration and the window; only good enough for progress bars."""
        stream = self.stream
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            duration = self.container.duration / 1_000_000
        else:
            duration = None
        if end is not None:
            duration = end if duration is None else min(duration, end)
        count = None if duration is None else max(1, round((duration - (start or 0.0)) * self.fps))
        if self.max_frames is not None:
            count = self.max_frames if count is None else min(count, self.max_frames)
        return count

    def _decoded(self, decoder: Iterator) -> Iterator:
        """`decoder`'s frames inside [start, end), counting on frame times to drop the seek run-up."""
        half_frame = 0.5 / float(self.fps)
        for frame in decoder:
            time = frame.time
            if time is not None and time < self._start - half_frame:
                continue
            if time is not None and self._end is not None and time >= self._end - half_frame:
                return
            yield frame

    def _rgb(self, frame) -> np.ndarray:
        """Display-orientation RGB float: the stream's rotation (phone videos) is applied here."""
        pixels = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range or None)
        quarter_turns = round(frame.rotation / 90) % 4
        if quarter_turns:
            pixels = np.rot90(pixels, quarter_turns)
        return np.ascontiguousarray(pixels, dtype=np.float32) / 255.0

    def __iter__(self) -> Iterator[Frame]:
        """Single pass: the decoder only moves forward."""
        av = _av()
        index = 0
        try:
            for index, frame in enumerate(
                itertools.islice(itertools.chain([self._first], self._frames), self.max_frames)
            ):
                if frame.time is not None:  # phones record at variable rates: keep each frame's own time
                    self._latest = (index, frame.time - self.start_time)
                yield index, self._rgb(frame)
        except av.FFmpegError as exc:
            raise InputError(f"{self.name}: corrupt video near frame {index + 1} ({_reason(exc)})") from None

    def time_of(self, index: int) -> float:
        return self._latest[1] if self._latest[0] == index else super().time_of(index)

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
            self.container = None


class FolderSource(FrameSource):
    """Sorted image files as frames; names sort naturally, so frame_2 comes before frame_10."""

    def __init__(
        self,
        folder: Path,
        start: float | None,
        end: float | None,
        max_frames: int | None,
        fps: Fraction,
        name: str | None = None,
    ) -> None:
        if fps <= 0:  # `VideoSettings.fps` is checked where it is given
            raise ValueError(f"the frame rate of a frames folder must be positive, got {fps}")
        self.path, self.fps, self.name = folder, fps, name or str(folder)
        files = sorted(
            (
                p
                for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            ),
            key=_natural_key,
        )
        if not files:
            raise InputError(f"{self.name}: no image frames found")
        first = round(start * fps) if start else 0
        last = round(end * fps) if end is not None else len(files)
        self.files = files[first:last][:max_frames]
        if not self.files:
            raise InputError(f"{self.name}: no frames in the selected time range ({len(files)} frames in all)")
        height, width = load_image(self.files[0], name=self.frame_name(self.files[0])).rgb.shape[:2]
        self.size, self.frame_count = (width, height), len(self.files)
        self.names = [path.name for path in self.files]

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            rgb = load_image(path, name=self.frame_name(path)).rgb
            if (rgb.shape[1], rgb.shape[0]) != self.size:
                raise InputError(
                    f"{self.frame_name(path)}: is {rgb.shape[1]}x{rgb.shape[0]}, but the first frame is "
                    f"{self.size[0]}x{self.size[1]} (all frames must match)"
                )
            yield index, rgb

    def frame_name(self, path: Path) -> str:
        """A frame as messages name it: in the folder as the user wrote it (`path` is absolute)."""
        return os.path.join(self.name, path.name)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _reason(exc: BaseException) -> str:
    """ffmpeg's message without the file name it repeats."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class FrameSink(ABC):
    """Where enhanced frames go. Used as a context manager: a clean exit commits the
    output, an exception (Ctrl-C included) aborts it."""

    def done(self, index: int) -> bool:
        """Whether frame `index` is already written by an earlier run (only folders can resume)."""
        return False

    def finished(self, index: int) -> np.ndarray:
        """Frame `index` as an earlier run wrote it (float32 H×W×3): where a resumed shot picks up."""
        raise NotImplementedError(f"{type(self).__name__} does not resume")

    @abstractmethod
    def write(self, index: int, rgb: np.ndarray, time: float | None = None) -> None:
        """Store frame `index`, shown `time` seconds after the first (None: at the constant frame rate)."""

    def commit(self) -> None:  # noqa: B027 - an optional hook: a no-op unless a subclass needs it
        """Make the output final."""

    def abort(self) -> None:  # noqa: B027 - an optional hook: a no-op unless a subclass needs it
        """Drop whatever is unfinished."""

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def open_sink(
    target: Path,
    source: FrameSource,
    frame_format: str | None = None,
    overwrite: bool = False,
    name: str | None = None,
) -> FrameSink:
    """A video file for a video extension, otherwise a folder of frames.

    Frames from a frames folder keep their names (and, without `frame_format`,
    their formats); frames from a video are `frame_000001.<frame_format or png>`.

    Without `overwrite`, an existing video is an error and a folder resumes
    (its existing frames are kept); with it, both are written afresh. Messages
    name the output `name` (as the user wrote it), else `target`.
    """
    target = Path(target)
    name = name or str(target)
    if target.suffix.lower() in VIDEO_SUFFIXES:
        if same_file(target, source.path) or target.resolve() == source.path.resolve():
            raise OutputError(f"{name}: refusing to write over the input video")
        if target.exists() and not overwrite:
            raise OutputError(f"{name}: already exists (use ", Setting("overwrite"), " to replace it)")
        audio = (source.path, source.start_time) if source.has_audio else None
        return VideoSink(target, source.fps, source.size, audio, name)
    if target.suffix and not target.is_dir():
        raise OutputError(f"-o {name}: name a video ({video_formats()}) or a folder for frames")
    if target.resolve() == source.path.resolve():
        raise OutputError(f"-o {name}: must differ from the input folder (inputs are never overwritten)")
    return FolderSink(target, frame_format, resume=not overwrite, names=source.names)


class FolderSink(FrameSink):
    """Frames each written atomically: with `resume`, an existing file is a finished frame.

    With `names` (the input frames' file names) frame i is written as
    names[i], or as its stem plus `.frame_format` when that is given, so that
    a sequence keeps the names other tools (editors, compositors) expect;
    without, frames are numbered `frame_000001.png`.
    """

    def __init__(
        self, folder: Path, frame_format: str | None = "png", resume: bool = True, names: list[str] | None = None
    ) -> None:
        suffix = None
        if frame_format is not None:
            frame_format = frame_format.lower().lstrip(".")
            if frame_format not in FRAME_FORMATS:  # `VideoSettings.frame_format` is checked where it is given
                raise ValueError(f"frame format {frame_format}: choose from {', '.join(FRAME_FORMATS)}")
            suffix = f".{frame_format}"
        elif names is None:
            suffix = ".png"
        if names is not None and suffix is not None:
            stems = [Path(name).stem for name in names]
            clash = next((stem for stem in stems if stems.count(stem) > 1), None)
            if clash is not None:
                raise OutputError(
                    f"frames named {clash}.* in several formats would be written to one {clash}{suffix}: leave out ",
                    Setting("frame_format"),
                    " to keep each frame's own",
                )
        self.folder, self.suffix, self.resume, self.names = Path(folder), suffix, resume, names

    def path_for(self, index: int) -> Path:
        if self.names is None:
            return self.folder / f"frame_{index + 1:06d}{self.suffix}"
        name = self.names[index]
        return self.folder / (name if self.suffix is None else Path(name).stem + self.suffix)

    def done(self, index: int) -> bool:
        return self.resume and self.path_for(index).exists()

    def finished(self, index: int) -> np.ndarray:
        return load_image(self.path_for(index)).rgb

    def write(self, index: int, rgb: np.ndarray, time: float | None = None) -> None:
        save_image(self.path_for(index), rgb)


class VideoSink(FrameSink):
    """H.264 (libx264, else MPEG-4 Part 2) yuv420p video with the source's audio, written to a
    temporary file beside `target` and renamed into place by `commit`.

    `audio` is (file to take the audio track from, second of that file's timeline where the
    first frame sits). Frames keep their exact size: H.264 in yuv420p needs even sides, so
    an odd width or height is encoded in yuv444p (full-resolution chroma) instead, which
    software players decode but some hardware decoders do not. Nothing touches the disk
    before the first frame, so a sink that is never written leaves nothing behind.
    """

    # None until `_start` (at the first frame) sets them: the temporary file, PyAV's container and stream.
    tmp: Any
    container: Any
    video: Any
    audio: AudioTrack | None

    def __init__(
        self,
        target: Path,
        fps: Fraction,
        size: tuple[int, int],
        audio: tuple[Path, float] | None = None,
        name: str | None = None,
    ) -> None:
        self.target, self.fps, self.size, self.audio_from = Path(target), Fraction(fps), size, audio
        self.name = name or str(target)  # the output as messages name it
        self.frames_written = 0
        self.end = 0.0  # seconds of video written: the last frame's time plus one frame
        self.last_pts = -1
        self.tmp = self.container = self.video = self.audio = None

    def _start(self) -> None:
        av = _av()
        self.tmp = _temporary_beside(self.target, self.name)
        try:
            self.container = av.open(str(self.tmp), "w")
            self.video = _add_video_stream(self.container, self.fps, self.size)
            if self.audio_from is not None:
                self.audio = AudioTrack(*self.audio_from, self.container)
        except Exception as exc:  # ffmpeg, the disk, or an audio stream PyAV cannot describe
            self.abort()
            raise OutputError(f"{self.name}: cannot start writing ({_reason(exc)})") from None

    def write(self, index: int, rgb: np.ndarray, time: float | None = None) -> None:
        """Append a frame: frames must come in order (`index` is only for the folder sink's names).

        Frames keep their source times, so a variable-rate clip stays in step
        with its audio; without times they follow the constant frame rate.
        """
        av = _av()
        from av.video.reformatter import ColorRange, Colorspace

        if self.container is None:
            self._start()
        pixels = quantise(rgb)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
            format=self.video.pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
        )
        seconds = self.frames_written / self.fps if time is None else time
        frame.pts = self.last_pts = max(round(seconds * VIDEO_TICKS), self.last_pts + 1)
        frame.time_base = Fraction(1, VIDEO_TICKS)
        self._mux(self.video.encode(frame))
        self.frames_written += 1
        self.end = frame.pts / VIDEO_TICKS + 1 / self.fps
        if self.audio is not None:
            self._mux(self.audio.packets_until(self.end))

    def _mux(self, packets: Iterable) -> None:
        """Mux, reporting ffmpeg failures (including lazily decoded audio's) as one line."""
        av = _av()
        try:
            self.container.mux(list(packets))
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.name}: write failed ({_reason(exc)})") from None

    def commit(self) -> None:
        """Flush the encoder and the audio up to the video's length, then rename into place."""
        if self.frames_written == 0:
            raise OutputError(f"{self.name}: no frames to write")
        try:
            self._mux(self.video.encode(None))
            if self.audio is not None:
                self._mux(self.audio.last_packets(self.end))
                self.audio.close()
            self.container.close()
            self.container = None
            commit(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.name}: write failed ({exc.strerror or exc}); no partial file was left") from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for resource in (self.audio, self.container):
            if resource is not None:
                try:
                    resource.close()
                except Exception:  # already failing: the temporary file is what must go
                    pass
        self.audio = self.container = None
        if self.tmp is not None:
            discard(self.tmp)


def _temporary_beside(target: Path, name: str) -> Path:
    """An empty file next to `target` whose name keeps the extension, so ffmpeg picks the container; errors
    name its folder as `name`'s."""
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return temporary_beside(target, suffix=f".part{target.suffix}")
    except OSError as exc:
        raise OutputError(f"{os.path.dirname(name) or '.'}: cannot write here ({exc.strerror or exc})") from None


def _add_video_stream(container, fps: Fraction, size: tuple[int, int]):
    """libx264 at visually lossless quality if this ffmpeg has it, else MPEG-4 at a generous bit rate.

    At the frames' exact size: MPEG-4 codes odd sides in yuv420p, H.264 needs yuv444p for them.
    """
    av = _av()
    width, height = size
    pixel_format = "yuv420p"
    if "libx264" in av.codecs_available:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        if width % 2 or height % 2:
            pixel_format = "yuv444p"
    else:  # an ffmpeg built without GPL parts
        stream = container.add_stream("mpeg4", rate=fps)
        stream.bit_rate = int(width * height * float(fps) * 0.3)
    stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
    context = stream.codec_context
    context.time_base = Fraction(1, VIDEO_TICKS)  # frame times, not frame numbers: variable rates survive
    # Say what the pixels are, so players do not guess BT.601 for SD and BT.709 for HD.
    context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
    context.color_range = 1  # limited ("MPEG") range
    return stream


class AudioTrack:
    """The source's audio cut to the video's time window, muxed in step with the frames.

    Packets are copied untouched when the output container plays the codec well,
    otherwise decoded and re-encoded to AAC. Feeding audio as frames are written
    (rather than all at the end) keeps the two interleaved in the file.
    """

    def __init__(self, source: Path, start: float, output) -> None:
        av = _av()
        self.start = start
        self.input = av.open(str(source))
        try:
            self.stream = self.input.streams.audio[0]
            codec = self.stream.codec_context.name
            self.copy = codec in output.supported_codecs and (
                codec in PORTABLE_AUDIO or output.format.name == "matroska"
            )
            if self.copy:
                self.output = output.add_stream_from_template(self.stream)
            else:
                self.output = output.add_stream("aac", rate=self.stream.codec_context.sample_rate or 48000)
                self.output.layout = self.stream.codec_context.layout
            if start > 0:
                self.input.seek(int(start * 1_000_000))  # AV_TIME_BASE units; audio packets are all key packets
        except BaseException:
            self.input.close()  # the caller never gets this object, so nobody else would
            raise
        self.pending = self._timed_packets()
        self.next: tuple[float, object] | None = None

    def _timed_packets(self) -> Iterator[tuple[float, object]]:
        """(seconds into the output, packet ready to mux) for all audio from `start` on."""
        for packet in self.input.demux(self.stream):
            if packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            if self.copy:
                time = float(packet.pts * packet.time_base) - self.start
                if time >= 0:
                    shift = round(self.start / packet.time_base)
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = self.output
                    yield time, packet
            else:
                yield from self._reencoded(packet)

    def _reencoded(self, packet) -> Iterator[tuple[float, object]]:
        for frame in packet.decode():
            time = float(frame.time) - self.start
            if time < 0:
                continue
            frame.pts = round(time * frame.sample_rate)
            frame.time_base = Fraction(1, frame.sample_rate)
            for out in self.output.encode(frame):
                yield time, out

    def packets_until(self, until: float) -> Iterator:
        """Every audio packet not yet muxed that starts before `until` seconds of output."""
        while True:
            if self.next is None:
                self.next = next(self.pending, None)
            if self.next is None or self.next[0] >= until:
                return
            yield self.next[1]
            self.next = None

    def last_packets(self, duration: float) -> Iterator:
        """Audio up to the video's end (the rest is dropped so both tracks end together), encoder flushed."""
        yield from self.packets_until(duration)
        if not self.copy:
            yield from self.output.encode(None)

    def close(self) -> None:
        if self.input is not None:
            self.input.close()
            self.input = None
