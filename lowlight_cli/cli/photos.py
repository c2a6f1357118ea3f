"""`lowlight enhance` and `lowlight batch`: a plan (`run.plan`), an executor under a progress bar, a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lowlight_cli.cli.app import STATE, LowlightCommand, app, console, flag, handle_errors
from lowlight_cli.cli.cluster import CPUS_PER_WORKER, GPUS_PER_WORKER, RAY, WORKERS
from lowlight_cli.cli.options import build_pipeline, settings_options
from lowlight_cli.settings import EnhanceSettings

STDIO = Path("-")  # as an input: standard input; as -o: standard output
OVERWRITE = typer.Option(False, "--overwrite", help="Replace outputs that already exist (inputs are never replaced).")
FORMAT = typer.Option(
    None, "--format", metavar="EXT", help="Output extension, e.g. png or jpg (default: same as the input)."
)
QUALITY = typer.Option(
    None,
    "--quality",
    min=1,
    max=100,
    metavar="N",
    help="JPEG/WebP quality of the output (default: the input JPEG's own quality where it can be read, else 95).",
)


def report_timings(task, image, result) -> None:
    """--verbose: what one photo cost."""
    if STATE["verbose"]:
        t = result.timings
        console().print(
            f"{task.source} → {task.target}: {image.size[0]}x{image.size[1]}, prior {result.prior.source} "
            f"made {result.prior.num_regions} regions in {t['prior']:.2f}s, sampling {t['sample']:.2f}s, "
            f"reconstruction {t['reconstruct']:.2f}s"
        )


def run_locally(plan, settings, label: str):
    """Run `plan` here under a progress bar; the model is loaded once a photo has decoded, so a re-run with
    nothing left to do or a bad file fails or finishes without loading it."""
    from lowlight_cli.cli.cluster import plan_progress
    from lowlight_cli.run.local import LocalExecutor

    bar, advance = plan_progress(label, plan)
    with bar:
        return LocalExecutor(lambda: build_pipeline(settings), on_done=report_timings).run(plan, on_advance=advance)


def summarise(report) -> None:
    """Print what happened; exit 1 if anything failed."""
    from rich.markup import escape

    from lowlight_cli.errors import LowlightError
    from lowlight_cli.run.places import describe_unsupported

    out = console()
    for _job, reason in report.failed:
        worded = reason.worded(flag) if isinstance(reason, LowlightError) else reason
        out.print(f"[red]failed[/] {escape(worded)}", highlight=False)
    parts = [f"{len(report.done)} enhanced"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (output exists; --overwrite to redo)")
    if report.unsupported:
        parts.append(escape(describe_unsupported(report.unsupported)))
    if report.failed:
        parts.append(f"[red]{len(report.failed)} failed[/]")
    out.print(", ".join(parts))
    if report.failed:
        raise typer.Exit(1)


@app.command(cls=LowlightCommand)
@handle_errors
@settings_options()
def enhance(
    inputs: list[Path] = typer.Argument(
        ..., metavar="PHOTO", show_default=False, help="Photo(s) to enhance; - reads one from standard input."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Output file (one input) or folder (several); "
        "- writes to standard output. Default: {stem}_enhanced.{ext} beside each "
        "input (standard output for standard input).",
    ),
    overwrite: bool = OVERWRITE,
    fmt: str | None = FORMAT,
    quality: int | None = QUALITY,
    settings: EnhanceSettings = None,  # type: ignore[assignment]  # always given by @settings_options
) -> None:
    """Enhance one or more dark photos.

    Example: lowlight enhance photo.jpg            (writes photo_enhanced.jpg)
    In a pipeline: cat dark.jpg | lowlight enhance - --format png > bright.png
    """
    import tempfile

    from lowlight_cli.errors import InputError, UsageError
    from lowlight_cli.run.plan import plan_files

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
        plan = plan_files(inputs, output, ext, quality, overwrite)
        report = run_locally(plan, settings, "enhancing")
        if writes_stdout:
            if report.done:
                binary_stream("stdout").write(plan.tasks[0].target.read_bytes())
        elif not STATE["quiet"]:
            for task in report.done:
                typer.echo(str(task.target))
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
        raise UsageError(
            "- reads a photo from standard input, which is a terminal here: pipe one in "
            "(lowlight enhance - < photo.jpg)"
        )
    data = stream.read()
    if not data:
        raise InputError("standard input: no image data")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
    except (UnidentifiedImageError, OSError):
        raise InputError(
            f"standard input: not a supported image: its contents match none of the formats we read "
            f"(supported: {supported_formats()})"
        ) from None
    suffix = {"JPEG": "jpg", "TIFF": "tif"}.get(kind, kind.lower())
    path = folder / f"stdin.{suffix}"
    path.write_bytes(data)
    return path


def normalise_ext(fmt: str | None) -> str | None:
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
@settings_options()
def batch(
    folder: str = typer.Argument(
        ..., metavar="DIR", help="Folder of photos: a path, or s3://BUCKET/PREFIX, gs://… (any fsspec URL)."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH|URL",
        help="Output folder or bucket prefix (default: <DIR>_enhanced beside DIR). Sub-folders are mirrored.",
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Include sub-folders."),
    glob: str | None = typer.Option(None, "--glob", help="Only files matching this pattern, e.g. '*.png'."),
    overwrite: bool = OVERWRITE,
    fmt: str | None = FORMAT,
    quality: int | None = QUALITY,
    ray: str | None = RAY,
    workers: str | None = WORKERS,
    gpus_per_worker: float = GPUS_PER_WORKER,
    cpus_per_worker: float = CPUS_PER_WORKER,
    settings: EnhanceSettings = None,  # type: ignore[assignment]  # always given by @settings_options
) -> None:
    """Enhance every photo in a folder: resumable, keeps going past bad files.

    Example: lowlight batch ./dark_dir -o ./bright_dir --steps 20
    On a Ray cluster, with object storage: lowlight batch s3://bucket/dark -o s3://bucket/bright --ray auto
    Re-running skips finished outputs; the summary lists failures and the exit code is 1 if any failed.
    """
    from lowlight_cli.cli.cluster import ray_options, run_on_ray
    from lowlight_cli.run.plan import plan_folder

    cluster = ray_options(ray, workers, gpus_per_worker, cpus_per_worker, settings.device)
    plan = plan_folder(folder, output, recursive, glob, normalise_ext(fmt), quality, overwrite)
    if plan.swept and STATE["verbose"]:
        console().print(f"removed {len(plan.swept)} stale temporary file(s) of interrupted writes")
    report = run_on_ray(plan, settings, cluster) if cluster is not None else run_locally(plan, settings, "batch")
    summarise(report)
