"""The `lowlight` command line: parse options, call the library, print.

Heavy modules (torch, cv2, the pipeline) are imported inside commands so that
`lowlight --help` and `lowlight --version` answer instantly without torch.
Every `LowlightError` becomes one red line and a non-zero exit code; other
exceptions show a traceback only with --verbose.
"""

from __future__ import annotations

import functools
import os
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from lowlight_cli import __version__


class PlainOption(TyperOption):
    """An option whose help shows a metavar (INTEGER, PATH, auto|cpu), never a Python type, and none for a flag.

    Typer prints `<bool>` beside flags, which reads as if `--overwrite true`
    were valid, and Python annotations such as `<list[Path]>` elsewhere.
    """

    def display_type_rich(self, ctx: Any) -> Optional[str]:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        described = self.type_descriptor
        if described.is_choice:
            return self.display_type(ctx).strip("<>")  # auto|cuda|mps|cpu
        if described.is_path:
            return "PATH"
        return {int: "INTEGER", float: "NUMBER"}.get(described.annotation, "TEXT")


class PlainArgument(TyperArgument):
    """An argument shown by its metavar (PHOTO...), not as `{inputs}...` with a `<list[Path]>` type."""

    def display_type_rich(self, ctx: Any) -> Optional[str]:
        return None

    def _usage_display_name(self) -> str:
        name = (self.metavar or self.name.upper()) + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def plain_params(command: Any, panels: dict[str, list[str]]) -> None:
    """Give `command`'s parameters plain metavars, and each option listed in `panels` its help panel."""
    for param in command.params:
        param.__class__ = PlainArgument if isinstance(param, TyperArgument) else PlainOption
        if isinstance(param, TyperOption) and param.rich_help_panel is None:
            param.rich_help_panel = next((panel for panel, names in panels.items() if param.name in names), None)


def plain_options(params: list[Any]) -> list[Any]:
    """`params` with typer's own options (--help, completion) shown without a `<bool>` type too."""
    for param in params:
        if isinstance(param, TyperOption):
            param.__class__ = PlainOption
    return params


class LowlightCommand(TyperCommand):
    """Every `lowlight` subcommand: help in panels with plain metavars, and a one-line
    hint for a file whose name starts with '-' (rather than click's boxed "No such option")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_params(self, TRAIN_PANELS if self.name == "train" else PANELS)

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_options(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from typer._click.exceptions import NoSuchOption

        given = list(args)  # the parser consumes `args`
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption:
            known = {name for param in self.get_params(ctx) for name in param.opts + param.secondary_opts}
            end = given.index("--") if "--" in given else len(given)
            for arg in given[:end]:
                looks_like_a_file = "." in arg or "/" in arg or Path(arg).exists()
                if arg.startswith("-") and arg != "-" and arg.split("=")[0] not in known and looks_like_a_file:
                    fail(f"{arg}: a name starting with '-' is read as an option; write ./{arg} or put -- before it", 2)
            raise


LOGGING_FLAGS = {"-v", "--verbose", "-q", "--quiet"}


class LowlightGroup(TyperGroup):
    """The root command: -v/-q are taken anywhere before `--`, so `lowlight enhance x.jpg -v` works too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_params(self, {})

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_options(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        flags = [arg for arg in args[:end] if arg in LOGGING_FLAGS]
        rest = [arg for arg in args[:end] if arg not in LOGGING_FLAGS]
        return super().parse_args(ctx, flags + rest + args[end:])


# Help panels: which option of the enhancing commands (and of train) is listed where; the rest under "Options".
PANELS = {
    "Output": ["output", "fmt", "quality", "overwrite", "frame_format"],
    "Input": ["recursive", "glob", "start", "end", "max_frames", "fps"],
    "Look": ["exposure", "detail_threshold", "shadow_denoise", "smoothing"],
    "Model and prior": ["model", "prior", "sam_model", "sam_checkpoint"],
    "Quality and speed": ["steps", "work_size", "full_res", "tile", "seed", "device"],
}
TRAIN_PANELS = {
    "Data and output": ["data", "out", "init", "save_every", "stop_at"],
    "Schedule": ["steps", "tone_steps", "batch_size", "crop", "lr", "seed"],
    "Model": ["base_channels", "tone", "no_diffusion", "mean_start", "prior_map_scale"],
    "Losses": ["ssim_weight", "colour_weight", "teacher_gains", "semantic_weight", "final_step_share", "refine_share"],
    "Region prior": ["prior", "sam_model", "sam_checkpoint"],
    "Hardware": ["device", "threads", "workers"],
}

app = typer.Typer(
    name="lowlight",
    cls=LowlightGroup,
    help="Enhance dark photos and videos with a SAM prior-guided diffusion model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(cls=LowlightGroup, help="List, download and locate model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")


class Device(str, Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class Prior(str, Enum):
    auto = "auto"
    sam = "sam"
    fallback = "fallback"
    none = "none"


class SamModel(str, Enum):
    vit_b = "vit_b"
    vit_l = "vit_l"
    vit_h = "vit_h"


STATE = {"verbose": False, "quiet": False}


def console():
    from rich.console import Console

    return Console(stderr=True, quiet=STATE["quiet"], soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(command: Callable) -> Callable:
    """Turn known errors into one line + exit code; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from lowlight_cli.errors import LowlightError

        try:
            return command(*args, **kwargs)
        except LowlightError as exc:
            if STATE["verbose"]:
                import traceback

                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            console().print("[yellow]interrupted[/]: finished outputs are kept; re-run to resume")
            raise typer.Exit(130)
        except MemoryError:
            fail("out of memory: try a smaller --work-size, or --device cpu")
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: keep the traceback for --verbose only
            if STATE["verbose"]:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (re-run with --verbose for details)")

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lowlight-cli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details (timings, prior regions) and show tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=version_callback, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    STATE["verbose"], STATE["quiet"] = verbose, quiet



# Options shared by every command that enhances.
# STEPS, WORK_SIZE, DETAIL and SHADOW repeat the pipeline's DEFAULT_* values (a test keeps them equal):
# importing the pipeline here would import torch for --help.
STEPS = typer.Option(1, "--steps", metavar="N", help="DDIM sampling steps (1 to 1000). The default 1 has the best SSIM on our validation set; more steps add sampled detail at some cost in fidelity and time.")
SEED = typer.Option(0, "--seed", metavar="N", help="Noise seed: the same seed draws the same noise on every device (CUDA computes in 16 bits, so slightly different pixels). "
                    "At 1 step the default model starts from the noise's mean, so only --steps > 1 uses it.")
DEVICE = typer.Option(Device.auto, "--device", help="auto picks CUDA, then Apple MPS, then CPU.")
MODEL = typer.Option("default", "--model", metavar="default|PATH", help="'default' (bundled) or a .safetensors checkpoint path.")
PRIOR = typer.Option(Prior.auto, "--prior", help="Region prior: auto (SAM if its weights are present, else the "
                                                  "built-in one), sam, fallback (built-in), or none.")
SAM_MODEL = typer.Option(SamModel.vit_b, "--sam-model", help="SAM size for --prior sam/auto.")
SAM_CKPT = typer.Option(None, "--sam-checkpoint", help="Local SAM .safetensors (Hugging Face or segment-anything names).")
WORK_SIZE = typer.Option(384, "--work-size", metavar="PX", help="Long side (px) at which the diffusion model runs; the result is "
                                                   "carried to full resolution by guided reconstruction. Photos up "
                                                   "to 640 px with little noise are sampled at their own size.")
FULL_RES = typer.Option(False, "--full-res", help="Sample at full resolution in blended tiles instead (slow; GPU advised).")
TILE = typer.Option(512, "--tile", metavar="PX", help="Tile side for --full-res.")
DETAIL = typer.Option(2.0, "--detail-threshold", min=0.0, metavar="SIGMAS",
                      help="Keep the photo's own fine detail above this many noise sigmas when carrying the result "
                           "to full resolution. Lower keeps more texture and more grain; 0 keeps all of it.")
SHADOW = typer.Option(0.5, "--shadow-denoise", min=0.0, metavar="K",
                      help="Smooth noise the brightening lifts out of near-black areas (night skies, deep shadow): "
                           "strength in units of the expected noise. 0 turns it off; above 1 also flattens texture.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace outputs that already exist (inputs are never replaced).")
FORMAT = typer.Option(None, "--format", metavar="EXT",
                      help="Output extension, e.g. png or jpg (default: same as the input).")
QUALITY = typer.Option(None, "--quality", min=1, max=100, metavar="N",
                       help="JPEG/WebP quality of the output (default: the input JPEG's own quality where it can be "
                            "read, else 95).")
EXPOSURE = typer.Option(0.0, "--exposure", min=-3.0, max=3.0, metavar="EV",  # ±pipeline.MAX_EXPOSURE (a test checks)
                        help="Brightness bias in EV around the model's own choice, about -2..+2; applied through the "
                             "model's tone conditioning, 0 = the model's choice.")


def build_enhancer(model: str, device: Device, prior: Prior, sam_model: SamModel, sam_checkpoint: Optional[Path],
                   steps: int, seed: int, work_size: int, full_res: bool = False, tile: int = 512,
                   detail_threshold: float = DETAIL.default, shadow_denoise: float = SHADOW.default,
                   exposure: float = 0.0):
    from lowlight_cli.pipeline import Enhancer

    out = console()
    enhancer = Enhancer(model=model, device=device.value, prior=prior.value, sam_model=sam_model.value,
                        sam_checkpoint=sam_checkpoint, steps=steps, work_size=work_size, seed=seed,
                        full_res=full_res, tile=tile, detail_threshold=detail_threshold,
                        shadow_denoise=shadow_denoise, exposure=exposure,
                        notify=lambda m: out.print(f"[yellow]note:[/] {m}"))
    if STATE["verbose"]:
        out.print(f"model: {model} on {enhancer.device} ({str(enhancer.dtype).replace('torch.', '')}), "
                  f"{steps} steps, work size {work_size}, prior {prior.value}, exposure {exposure:+g} EV")
    enhancer.model_name = model  # named by errors about the model's output (jobs.check_finite)
    return enhancer


STDIO = Path("-")  # as an input: standard input; as -o: standard output
DEFAULT_QUALITY = 95  # JPEG/WebP quality when the input's own cannot be read
# The IJG (libjpeg) luminance table at quality 50: other qualities scale it, which is how a file's quality is read back.
IJG_LUMINANCE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def jpeg_quality(path: Path) -> Optional[int]:
    """The quality a JPEG was saved at, estimated from its luminance table; None for other files.

    Re-encoding at the input's own quality keeps the output about as large
    and as faithful as the input, where a fixed 95 would bloat a q75 photo
    and a fixed 75 would degrade a q98 one. Reads the header only.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            tables = image.quantization if image.format == "JPEG" else None
    except (OSError, UnidentifiedImageError, AttributeError):
        return None
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    scale = 100.0 * sum(tables[0]) / sum(IJG_LUMINANCE)  # libjpeg's percentage scaling of the base table
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(min(100, max(1, round(quality))))


def enhance_one(enhancer, job, image, quality: Optional[int] = None) -> None:
    """Enhance and save one decoded file (the unit of work of `enhance` and `batch`).

    `quality` (JPEG/WebP) defaults to the input's own where it can be read, else 95.
    """
    from lowlight_cli.io.images import save_image

    from lowlight_cli.jobs import check_finite

    result = enhancer.enhance(image.rgb)
    check_finite(result.rgb, getattr(enhancer, "model_name", "in use"))  # a broken checkpoint must not write black
    save_image(job.target, result.rgb, like=image, protect=[job.source],
               quality=quality or jpeg_quality(job.source) or DEFAULT_QUALITY)
    if STATE["verbose"]:
        t = result.timings
        console().print(
            f"{job.source} → {job.target}: {image.size[0]}x{image.size[1]}, prior {result.prior.source} "
            f"made {result.prior.num_regions} regions in {t['prior']:.2f}s, sampling {t['sample']:.2f}s, "
            f"reconstruction {t['reconstruct']:.2f}s")


def run_with_progress(jobs, enhancer, overwrite: bool, label: str, quality: Optional[int] = None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from lowlight_cli.io.images import load_image
    from lowlight_cli.jobs import run_jobs

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), console=console(), transient=False) as progress:
        task = progress.add_task(label, total=len(jobs))
        return run_jobs(jobs, lambda job: load_image(job.source),
                        lambda job, image: enhance_one(enhancer, job, image, quality),
                        overwrite, on_advance=lambda job: progress.advance(task))


def summarise(report) -> None:
    """Print what happened; exit 1 if anything failed."""
    out = console()
    from rich.markup import escape

    for job, reason in report.failed:
        out.print(f"[red]failed[/] {escape(reason)}", highlight=False)
    parts = [f"{len(report.done)} enhanced"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (output exists; --overwrite to redo)")
    if getattr(report, "unsupported", None):
        from lowlight_cli.jobs import describe_unsupported

        parts.append(escape(describe_unsupported(report.unsupported)))
    if report.failed:
        parts.append(f"[red]{len(report.failed)} failed[/]")
    out.print(", ".join(parts))
    if report.failed:
        raise typer.Exit(1)


@app.command(cls=LowlightCommand)
@handle_errors
def enhance(
    inputs: list[Path] = typer.Argument(..., metavar="PHOTO", show_default=False,
                                        help="Photo(s) to enhance; - reads one from standard input."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one input) or folder (several); "
                                          "- writes to standard output. Default: {stem}_enhanced.{ext} beside each "
                                          "input (standard output for standard input)."),
    steps: int = STEPS, seed: int = SEED, device: Device = DEVICE, model: str = MODEL, prior: Prior = PRIOR,
    sam_model: SamModel = SAM_MODEL, sam_checkpoint: Optional[Path] = SAM_CKPT, work_size: int = WORK_SIZE,
    detail_threshold: float = DETAIL, shadow_denoise: float = SHADOW, exposure: float = EXPOSURE,
    full_res: bool = FULL_RES, tile: int = TILE, overwrite: bool = OVERWRITE, fmt: Optional[str] = FORMAT,
    quality: Optional[int] = QUALITY,
) -> None:
    """Enhance one or more dark photos.

    Example: lowlight enhance photo.jpg            (writes photo_enhanced.jpg)
    In a pipeline: cat dark.jpg | lowlight enhance - --format png > bright.png
    """
    import tempfile

    from lowlight_cli.errors import InputError, UsageError
    from lowlight_cli.jobs import jobs_for_files

    reads_stdin, writes_stdout = STDIO in inputs, output == STDIO or (STDIO in inputs and output is None)
    if (reads_stdin or writes_stdout) and len(inputs) > 1:
        raise UsageError("- (standard input or output) works with a single input")
    for path in inputs:
        if path != STDIO and not path.exists():
            raise InputError(f"{path}: file not found")
    ext = normalise_ext(fmt)
    with tempfile.TemporaryDirectory(prefix="lowlight-") as scratch:
        if reads_stdin:
            inputs = [read_stdin(Path(scratch))]
        if writes_stdout:
            output = Path(scratch) / f"stdout{ext or inputs[0].suffix.lower()}"
        jobs = jobs_for_files(inputs, output, ext=ext)
        enhancer = build_enhancer(model, device, prior, sam_model, sam_checkpoint, steps, seed, work_size, full_res,
                                  tile, detail_threshold=detail_threshold, shadow_denoise=shadow_denoise,
                                  exposure=exposure)
        report = run_with_progress(jobs, enhancer, overwrite, "enhancing", quality)
        if writes_stdout:
            if report.done:
                binary_stream("stdout").write(jobs[0].target.read_bytes())
        elif not STATE["quiet"]:
            for job in report.done:
                typer.echo(str(job.target))
        summarise(report)


def binary_stream(name: str) -> Any:
    """sys.stdin/sys.stdout as bytes (also under test runners that replace them)."""
    import sys

    stream = getattr(sys, name)
    return getattr(stream, "buffer", stream)


def read_stdin(folder: Path) -> Path:
    """Standard input saved as a file in `folder`, named for the format it holds: the pipeline reads files."""
    import io

    from PIL import Image, UnidentifiedImageError

    from lowlight_cli.errors import InputError, UsageError
    from lowlight_cli.io.images import supported_formats

    stream = binary_stream("stdin")
    if stream.isatty():
        raise UsageError("- reads a photo from standard input, which is a terminal here: pipe one in "
                         "(lowlight enhance - < photo.jpg)")
    data = stream.read()
    if not data:
        raise InputError("standard input: no image data")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
    except (UnidentifiedImageError, OSError):
        raise InputError(f"standard input: not a supported image (supported: {supported_formats()})") from None
    suffix = {"JPEG": "jpg", "TIFF": "tif"}.get(kind, kind.lower())
    path = folder / f"stdin.{suffix}"
    path.write_bytes(data)
    return path


def normalise_ext(fmt: Optional[str]) -> Optional[str]:
    from lowlight_cli.errors import UsageError
    from lowlight_cli.io.images import writable_formats, writable_suffixes

    if fmt is None:
        return None
    ext = "." + fmt.lower().lstrip(".")
    if ext not in writable_suffixes():
        raise UsageError(f"--format {fmt}: cannot be written (choose from {writable_formats()})")
    return ext


@app.command(cls=LowlightCommand)
@handle_errors
def batch(
    folder: Path = typer.Argument(..., metavar="DIR", help="Folder of photos."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (default: <DIR>_enhanced beside DIR). "
                                                                       "Sub-folders are mirrored."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Include sub-folders."),
    glob: Optional[str] = typer.Option(None, "--glob", help="Only files matching this pattern, e.g. '*.png'."),
    steps: int = STEPS, seed: int = SEED, device: Device = DEVICE, model: str = MODEL, prior: Prior = PRIOR,
    sam_model: SamModel = SAM_MODEL, sam_checkpoint: Optional[Path] = SAM_CKPT, work_size: int = WORK_SIZE,
    detail_threshold: float = DETAIL, shadow_denoise: float = SHADOW, exposure: float = EXPOSURE,
    full_res: bool = FULL_RES, tile: int = TILE, overwrite: bool = OVERWRITE, fmt: Optional[str] = FORMAT,
    quality: Optional[int] = QUALITY,
) -> None:
    """Enhance every photo in a folder: resumable, keeps going past bad files.

    Example: lowlight batch ./dark_dir -o ./bright_dir --steps 20
    Re-running skips finished outputs; the summary lists failures and the exit code is 1 if any failed.
    """
    from lowlight_cli.errors import UsageError
    from lowlight_cli.jobs import default_folder_output, jobs_for_folder

    output = output or default_folder_output(folder)
    if output.resolve() == folder.resolve():
        raise UsageError("-o must differ from the input folder (inputs are never overwritten)")
    jobs = jobs_for_folder(folder, output, recursive, glob, normalise_ext(fmt))
    from lowlight_cli.errors import InputError
    from lowlight_cli.jobs import no_images_message, unsupported_images

    unsupported = unsupported_images(folder, recursive, glob, exclude=output)  # listed, never skipped silently
    if not jobs:
        if unsupported:
            raise InputError(no_images_message(folder, recursive, unsupported))
        console().print(no_images_message(folder, recursive, unsupported))
        return
    pending = [j for j in jobs if overwrite or not j.target.exists()]
    if not pending:
        report = run_with_progress(jobs, None, overwrite, "batch")
        report.unsupported = unsupported
        summarise(report)
        return
    enhancer = build_enhancer(model, device, prior, sam_model, sam_checkpoint, steps, seed, work_size, full_res, tile,
                              detail_threshold=detail_threshold, shadow_denoise=shadow_denoise, exposure=exposure)
    report = run_with_progress(jobs, enhancer, overwrite, "batch", quality)
    report.unsupported = unsupported
    summarise(report)


@app.command(cls=LowlightCommand)
@handle_errors
def video(
    source: Path = typer.Argument(..., metavar="INPUT", help="Video file (mp4/mov/mkv/avi…) or a folder of frames."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Video file (.mp4/.m4v/.mov/.mkv) or a folder "
                                                                       "for frames. Default: {stem}_enhanced.mp4 beside INPUT."),
    start: Optional[float] = typer.Option(None, "--start", help="Start time in seconds."),
    end: Optional[float] = typer.Option(None, "--end", help="End time in seconds."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after this many frames (try a clip first)."),
    smoothing: float = typer.Option(0.8, "--smoothing", metavar="W",
                                    help="Weight of the past in the temporal smoothing, 0 (off) to <1. The past is "
                                         "aligned to each frame first and left out where the picture moved."),
    frame_format: Optional[str] = typer.Option(None, "--frame-format", metavar="png|jpg",
                                               help="Format of a frames-folder output (default: frames from a "
                                                    "folder keep their names and formats; from a video, png)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of a frames-folder input (default 30). "
                                                            "A video file keeps its own."),
    steps: int = STEPS, seed: int = SEED, device: Device = DEVICE, model: str = MODEL, prior: Prior = PRIOR,
    sam_model: SamModel = SAM_MODEL, sam_checkpoint: Optional[Path] = SAM_CKPT, work_size: int = WORK_SIZE,
    detail_threshold: float = DETAIL, shadow_denoise: float = SHADOW, exposure: float = EXPOSURE,
    overwrite: bool = OVERWRITE,
) -> None:
    """Enhance a video or a folder of frames without flicker; audio and frame rate are kept.

    Example: lowlight video clip.mp4 -o clip_bright.mp4 --max-frames 48
    Every frame shares one noise seed, priors are reused within a shot, and static areas are smoothed over time.
    A video is written to a temporary file and moved into place when complete; a frames folder resumes where it stopped.
    """
    from fractions import Fraction

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from lowlight_cli.errors import UsageError
    from lowlight_cli.io.video import FOLDER_FPS, open_sink, open_source
    from lowlight_cli.jobs import default_folder_output, default_output

    if fps is not None and source.is_file():
        raise UsageError(f"--fps is for a frames folder; {source} keeps its own frame rate")
    folder_fps = FOLDER_FPS if fps is None else Fraction(fps).limit_denominator(1001)
    with open_source(source, start, end, max_frames, folder_fps) as frames:
        target = output or (default_folder_output(source, ".mp4") if source.is_dir() else default_output(source, ".mp4"))
        sink = open_sink(target, frames, frame_format, overwrite)
        from lowlight_cli.video import enhance_video  # torch: only once the input and output are known to be usable

        enhancer = build_enhancer(model, device, prior, sam_model, sam_checkpoint, steps, seed, work_size,
                                  detail_threshold=detail_threshold, shadow_denoise=shadow_denoise, exposure=exposure)
        total = frames.frame_count if max_frames is None else min(max_frames, frames.frame_count or max_frames)
        with Progress(TextColumn("video"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console()) as progress:
            task = progress.add_task("video", total=total)
            finished = []  # frames written or found done: what a frames folder holds if Ctrl-C comes

            def advance(index: int) -> None:
                progress.advance(task)
                finished.append(index)

            try:
                report = enhance_video(enhancer, frames, sink, on_frame=advance, smoothing=smoothing)
            except KeyboardInterrupt:
                progress.stop()
                raise typer.Exit(interrupted_video(sink, target, len(finished)))
    console().print(f"{report.done} frames enhanced, {report.skipped} already done, {report.priors} prior(s) computed, "
                    f"{report.fps:.2f} frames/s")
    if not STATE["quiet"]:
        typer.echo(str(target))


def interrupted_video(sink, target: Path, frames_done: int) -> int:
    """Say what Ctrl-C left behind, which differs between a video file and a frames folder; exit code 130."""
    from lowlight_cli.io.video import FolderSink

    if isinstance(sink, FolderSink):
        message = f"{frames_done} frame(s) are in {target}; re-run the same command to resume from there"
    else:
        message = f"{target} was not written (a video is only moved into place once complete); re-run to start again"
    console().print(f"[yellow]interrupted[/]: {message}", highlight=False)
    return 130


@app.command("eval", cls=LowlightCommand)
@handle_errors
def evaluate(
    data: Path = typer.Option(..., "--data", help="Paired folder: SICE layout (pairs.csv + val_scenes.txt) or low/ + high/."),
    split: str = typer.Option("val", help="For SICE layout: val, train or all."),
    method: str = typer.Option("model", help="model, or a classical reference: gamma (auto-gamma), clahe (CLAHE on L)."),
    steps: int = STEPS, seed: int = SEED, device: Device = DEVICE, model: str = MODEL, prior: Prior = PRIOR,
    sam_model: SamModel = SAM_MODEL, sam_checkpoint: Optional[Path] = SAM_CKPT, work_size: int = WORK_SIZE,
    detail_threshold: float = DETAIL, shadow_denoise: float = SHADOW, exposure: float = EXPOSURE,
    full_res: bool = FULL_RES, tile: int = TILE,
    limit: int = typer.Option(0, help="Evaluate only the first N pairs (0 = all)."),
    per_image: bool = typer.Option(False, "--per-image", help="Print a row per image."),
) -> None:
    """PSNR / SSIM (and GT-mean PSNR, labelled) on paired data, with time per image."""
    from lowlight_cli.errors import InputError

    if not data.is_dir():  # before the imports below load torch
        raise InputError(f"--data {data}: no such folder")
    from lowlight_cli.evaluation import evaluate_pairs

    enhancer = None
    if method == "model":
        enhancer = build_enhancer(model, device, prior, sam_model, sam_checkpoint, steps, seed, work_size, full_res, tile,
                                  detail_threshold=detail_threshold, shadow_denoise=shadow_denoise, exposure=exposure)
    summary = evaluate_pairs(data, split, method, enhancer, limit=limit,
                             on_row=(lambda row: typer.echo(row.format())) if per_image else None)
    typer.echo(summary.format())


@app.command(cls=LowlightCommand)
@handle_errors
def info() -> None:
    """Versions, devices found, cache folder and which weights are present."""
    import platform

    import torch

    from lowlight_cli.pipeline import default_model_path
    from lowlight_cli.weights import REGISTRY, cache_dir, find_cached

    lines = [f"lowlight-cli {__version__}, Python {platform.python_version()}, torch {torch.__version__}"]
    cuda = torch.cuda.is_available()
    lines.append(f"CUDA: {torch.cuda.get_device_name(0) if cuda else 'not available'}")
    mps = bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())
    lines.append(f"MPS: {'available' if mps else 'not available'}")
    lines.append(f"Hugging Face cache: {cache_dir()}")
    default = default_model_path()
    lines.append(f"default model: {default} ({'present' if default.exists() else 'MISSING'})")
    for name, entry in REGISTRY.items():
        path = find_cached(name)
        lines.append(f"{name}: {path if path else 'not downloaded'}")
    typer.echo("\n".join(lines))


@models_app.command("list", cls=LowlightCommand)
@handle_errors
def models_list() -> None:
    """Known checkpoints: the bundled denoiser and the SAM models."""
    from rich.console import Console
    from rich.table import Column, Table

    from lowlight_cli.pipeline import DEFAULT_MODEL, default_model_path
    from lowlight_cli.weights import REGISTRY, find_cached

    table = Table("name", "kind", Column("source", overflow="fold"), "state", "description", box=None,
                  header_style="bold")
    table.add_row(DEFAULT_MODEL, "denoiser", "bundled", "present" if default_model_path().exists() else "MISSING",
                  "the shipped diffusion model (weights/README.md)")
    for name, entry in REGISTRY.items():
        table.add_row(name, entry.kind, f"{entry.repo_id}@{entry.revision[:8]}",
                      "cached" if find_cached(name) else "not downloaded", entry.description)
    Console(soft_wrap=False).print(table)


@models_app.command("download", cls=LowlightCommand)
@handle_errors
def models_download(names: list[str] = typer.Argument(..., metavar="NAME", help="Checkpoint names from `lowlight models list`.")) -> None:
    """Download checkpoints into the Hugging Face cache (pinned revision, sha256-checked)."""
    from lowlight_cli.weights import fetch_checkpoint

    for name in names:
        typer.echo(str(fetch_checkpoint(name, progress=not STATE["quiet"])))


@models_app.command("path", cls=LowlightCommand)
@handle_errors
def models_path(name: str = typer.Argument(..., metavar="NAME", help="Checkpoint name.")) -> None:
    """Print the local path of a checkpoint (error if it is not downloaded)."""
    from lowlight_cli.errors import WeightsError
    from lowlight_cli.pipeline import DEFAULT_MODEL, default_model_path
    from lowlight_cli.weights import find_cached

    if name in {DEFAULT_MODEL, "default"}:
        typer.echo(str(default_model_path()))
        return
    path = find_cached(name)
    if path is None:
        raise WeightsError(f"{name} is not downloaded (run `lowlight models download {name}`)")
    typer.echo(str(path))


@app.command(cls=LowlightCommand)
@handle_errors
def train(
    data: str = typer.Option(..., help="Comma-separated folders: SICE layout (pairs.csv), low/+high/ pairs, "
                                         "or plain photos for synthetic darkening."),
    out: Path = typer.Option(..., help="Checkpoint to write (.safetensors); <out>.state.safetensors holds the resumable state."),
    steps: int = typer.Option(8000, help="Denoiser optimiser steps (a resumed run continues to this count)."),
    tone_steps: int = typer.Option(2500, help="Steps of the global tone branch on whole frames, before the "
                                              "denoiser's steps (0 with --no-tone)."),
    tone: bool = typer.Option(True, "--tone/--no-tone", help="Give the model a global tone branch (exposure, white "
                                                              "balance, tone curve from a thumbnail of the whole "
                                                              "photo); --no-tone keeps the first release's auto-gamma base."),
    ssim_weight: float = typer.Option(0.2, help="Weight of the structure (1 - SSIM) term on the predicted image."),
    colour_weight: float = typer.Option(0.1, help="Weight of the colour (1 - cosine) term on the predicted image."),
    teacher_gains: bool = typer.Option(True, "--teacher-gains/--no-teacher-gains", help="Develop training photos at "
                                       "their target's exposure and white balance and learn those gains apart, so "
                                       "the curve learns contrast instead of hedging an uncertain exposure."),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", help="End this run at this step (resumable later); "
                                                                  "the learning-rate schedule still spans --steps."),
    batch_size: int = typer.Option(16, help="Crops per step."),
    crop: int = typer.Option(128, help="Crop side in pixels (a multiple of 8)."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (AdamW, cosine decay)."),
    prior: Prior = typer.Option(Prior.fallback, help="Region prior for training: fallback (built-in), sam, none, or "
                                                     "auto, which trains on the built-in prior like fallback (it "
                                                     "never downloads SAM; choose sam for SAM priors)."),
    sam_model: SamModel = typer.Option(SamModel.vit_b, help="SAM size when --prior sam."),
    sam_checkpoint: Optional[Path] = typer.Option(None, help="Local SAM checkpoint (.safetensors)."),
    semantic_weight: float = typer.Option(0.5, help="Weight of the semantic-context regularisation loss."),
    final_step_share: float = typer.Option(0.5, help="Share of diffusion samples at the last timestep, where "
                                                      "few-step sampling queries the model."),
    refine_share: float = typer.Option(0.0, help="Share of diffusion samples at the 2-step sampler's second "
                                                  "timestep, noised around the model's own first estimate, so that "
                                                  "a second step corrects the first (costs one more forward pass "
                                                  "for those samples)."),
    mean_start: bool = typer.Option(True, "--mean-start/--no-mean-start",
                                    help="Query the last timestep with zeros (the noise's mean) instead of a noise "
                                         "draw, in training and sampling."),
    prior_map_scale: int = typer.Option(8, help="Average the structural prior map over N×N blocks before the "
                                                 "denoiser's first layer (1 = full resolution)."),
    no_diffusion: bool = typer.Option(False, "--no-diffusion", help="Train the plain U-Net regression baseline instead "
                                                                    "(with --prior none: no prior either)."),
    base_channels: int = typer.Option(24, help="U-Net width at full resolution."),
    seed: int = typer.Option(0, help="Random seed."),
    init: Optional[Path] = typer.Option(None, help="Fine-tune: start from this checkpoint's weights ('default' = the "
                                                   "shipped model) with a fresh optimiser and schedule. Ignored when "
                                                   "--out already has a state to resume."),
    save_every: int = typer.Option(200, help="Write checkpoint + state every N steps."),
    threads: int = typer.Option(0, help="CPU threads for torch (0 = torch's default)."),
    workers: Optional[int] = typer.Option(None, help="Processes that load the data and make batches (0 = one "
                                                     "background thread; default: up to 8 on CUDA, else 0)."),
    device: Device = typer.Option(Device.auto, help="Compute device."),
) -> None:
    """Train a denoiser on paired and/or synthetic data (resumes automatically).

    The defaults are the shipped model's recipe (weights/README.md): about 19 minutes on an H100 shared by four runs.
    On a CPU expect seconds per step; --batch-size 8 --crop 96 costs a quarter as much.
    """
    import multiprocessing

    import torch

    from lowlight_cli.checkpoint import load_checkpoint
    from lowlight_cli.devices import resolve_device
    from lowlight_cli.errors import OutputError, UsageError
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.pipeline import resolve_model_path
    from lowlight_cli.priors.factory import make_prior_fn
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import INIT_REMEDY, TrainOptions, check_continuation, state_path
    from lowlight_cli.training.trainer import train as run_training

    checks = [(steps >= 1, f"--steps must be at least 1, got {steps}"),
              (stop_at is None or stop_at >= 1, f"--stop-at must be at least 1, got {stop_at}"),
              (batch_size >= 1, f"--batch-size must be at least 1, got {batch_size}"),
              (crop >= 16 and crop % 8 == 0, f"--crop must be a multiple of 8 and at least 16, got {crop}"),
              (lr > 0, f"--lr must be positive, got {lr}"),
              (tone_steps >= 0, f"--tone-steps must be at least 0, got {tone_steps}"),
              (tone or not tone_steps, "--tone-steps needs a tone branch: use --tone-steps 0 with --no-tone"),
              (ssim_weight >= 0 and colour_weight >= 0, "--ssim-weight and --colour-weight must be at least 0"),
              (semantic_weight >= 0, f"--semantic-weight must be at least 0, got {semantic_weight}"),
              (0 <= final_step_share <= 1, f"--final-step-share must be in [0, 1], got {final_step_share}"),
              (0 <= refine_share <= 1 - final_step_share,
               f"--refine-share must be in [0, 1 - --final-step-share], got {refine_share}"),
              (not (refine_share and no_diffusion), "--refine-share needs a diffusion model (not --no-diffusion)"),
              (save_every >= 1, f"--save-every must be at least 1, got {save_every}"),
              (threads >= 0, f"--threads must be at least 0, got {threads}"),
              (workers is None or workers >= 0, f"--workers must be at least 0, got {workers}")]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    config = ModelConfig(base_channels=base_channels, diffusion=not no_diffusion, use_prior=prior != Prior.none,
                         mean_start=mean_start and not no_diffusion, prior_map_scale=prior_map_scale,
                         tone_curve=tone)
    # A run that resumes its state ignores --init's weights (the trainer says so), but its config still tells
    # the trainer how the run began; checked now, not after minutes of priors.
    init_path = None if init is None else resolve_model_path(init, "--init")
    if init_path is not None and not state_path(out).exists():
        check_continuation(load_checkpoint(init_path).config, config, init_path, lambda message: None, INIT_REMEDY)
    if threads:
        torch.set_num_threads(threads)
    torch_device = resolve_device(device.value)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if workers is None:  # on a GPU the numpy synthesis sets the pace; on a CPU it would take the model's cores
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(8, max(0, cores - 1)) if torch_device.type == "cuda" and can_fork else 0
    if workers and not can_fork:
        raise UsageError("--workers needs processes started by fork, which this platform lacks: use --workers 0")
    out_console = console()
    prior_fn = make_prior_fn("fallback" if prior == Prior.auto else prior.value, config.max_regions, sam_model.value,
                             sam_checkpoint, device=str(torch_device), notify=out_console.print)
    folders = [Path(p) for p in data.split(",") if p]
    # SAM may sit on the GPU, which forked processes cannot share: its priors are made in this process.
    training_data = TrainingData(folders, prior_fn, config.target_brightness, crop, log=out_console.print,
                                 workers=0 if prior == Prior.sam else workers)
    out_console.print(repr(training_data))
    options = TrainOptions(data=folders, out=out, steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                           semantic_weight=semantic_weight, final_step_share=final_step_share,
                           refine_share=refine_share, prior=prior.value, init=init_path,
                           seed=seed, save_every=save_every, stop_at=stop_at, tone_steps=tone_steps,
                           ssim_weight=ssim_weight, colour_weight=colour_weight, teacher_gains=teacher_gains,
                           device=str(torch_device), workers=workers, config=config)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=out_console, refresh_per_second=1) as progress:
        total = tone_steps + steps
        task = progress.add_task("train", total=min(total, stop_at or total), loss=float("nan"))

        def on_step(step: int, loss: float, seconds_per_step: float) -> None:
            progress.update(task, completed=step, loss=loss)
            if STATE["verbose"] and step % 50 == 0:
                progress.console.print(f"step {step} loss {loss:.4f} {seconds_per_step:.2f}s/step")

        run_training(options, training_data, on_step, notify=lambda m: progress.console.print(f"[yellow]note:[/] {m}"))
    out_console.print(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
