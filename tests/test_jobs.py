"""`jobs`: output naming, collisions, folder discovery and the skip/fail/continue loop, on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.jobs import (
    Job,
    checked,
    default_folder_output,
    default_output,
    discover,
    jobs_for_files,
    jobs_for_folder,
    run_jobs,
    triage,
    unsupported_images,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_output_names(tmp_path):
    assert default_output(Path("a/photo.JPG")) == Path("a/photo_enhanced.JPG")
    assert default_output(Path("a/photo.jpg"), ".png") == Path("a/photo_enhanced.png")
    assert default_output(Path("raw.dng")) == Path("raw_enhanced.tif")  # RAW is never written: a 16-bit TIFF
    assert default_folder_output(tmp_path / "shots") == tmp_path / "shots_enhanced"
    assert default_folder_output(tmp_path / "shots" / "..", ".mp4") == tmp_path.parent / f"{tmp_path.name}_enhanced.mp4"


def test_one_output_file_or_a_folder_for_several(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    assert jobs_for_files([a], tmp_path / "out.png") == [Job(a, tmp_path / "out.png")]
    assert jobs_for_files([a, b], tmp_path / "out") == [
        Job(a, tmp_path / "out" / "a.jpg"),
        Job(b, tmp_path / "out" / "b.png"),
    ]
    assert jobs_for_files([a], tmp_path) == [Job(a, tmp_path / "a_enhanced.jpg")]  # the input's own folder
    with pytest.raises(OutputError, match="with 2 inputs, -o must be a folder"):
        jobs_for_files([a, b], tmp_path / "out.png")
    with pytest.raises(OutputError, match="would both be written to"):
        jobs_for_files([a, tmp_path / "a.png"], None, ext=".jpg")
    assert checked([]) == []


def test_folder_discovery_skips_hidden_files_our_outputs_and_the_output_folder(tmp_path):
    folder = tmp_path / "in"
    for name in (
        "b.jpg",
        "a.png",
        "a_enhanced.png",
        ".hidden.jpg",
        "notes.txt",
        "anim.gif",
        "sub/c.tif",
        "out/old.jpg",
    ):
        touch(folder / name)
    assert [p.name for p in discover(folder, False, None, exclude=folder / "out")] == ["a.png", "b.jpg"]
    assert [p.relative_to(folder).as_posix() for p in discover(folder, True, None, exclude=folder / "out")] == [
        "a.png",
        "b.jpg",
        "sub/c.tif",
    ]
    assert [p.name for p in discover(folder, True, "*.tif")] == ["c.tif"]
    assert unsupported_images(folder, True, None) == ["anim.gif"]  # pictures we cannot read; notes.txt is none
    jobs = jobs_for_folder(folder, folder / "out", True, None, ".png")  # a previous run's outputs are no inputs
    assert [(j.source.name, j.target.relative_to(folder / "out").as_posix()) for j in jobs] == [
        ("a.png", "a.png"),
        ("b.jpg", "b.png"),
        ("c.tif", "sub/c.png"),
    ]
    with pytest.raises(InputError, match="not a folder"):
        discover(folder / "b.jpg", False, None)


def test_triage_skips_finished_outputs_and_never_replaces_an_input(tmp_path):
    src, done, other = touch(tmp_path / "a.jpg"), touch(tmp_path / "b.jpg"), touch(tmp_path / "c.jpg")
    touch(tmp_path / "b_enhanced.jpg")
    jobs = [
        Job(src, tmp_path / "a_enhanced.jpg"),
        Job(done, tmp_path / "b_enhanced.jpg"),
        Job(other, other),
        Job(src, done),
    ]
    pending, report = triage(jobs, overwrite=False)
    assert pending == [jobs[0]] and report.skipped == [jobs[1], jobs[3]]  # an existing output is left alone
    assert [job for job, _ in report.failed] == [jobs[2]]
    assert "refusing to write over the input" in report.failed[0][1]
    pending, report = triage(jobs, overwrite=True)
    assert pending == jobs[:2] and report.skipped == []
    assert [job for job, _ in report.failed] == [jobs[2], jobs[3]]
    assert "its output" in report.failed[1][1] and "inputs are never overwritten" in report.failed[1][1]


def test_run_jobs_loads_ahead_collects_failures_and_keeps_going(tmp_path):
    jobs = [Job(touch(tmp_path / f"{n}.jpg"), tmp_path / f"{n}_out.jpg") for n in "abc"]
    touch(jobs[2].target)  # finished in an earlier run
    loaded, processed, advanced = [], [], []

    def load(job: Job) -> str:
        loaded.append(job.source.name)
        if job.source.name == "b.jpg":
            raise InputError("b.jpg: corrupt")
        return job.source.stem.upper()

    def process(job: Job, value: str) -> None:
        processed.append(value)

    report = run_jobs(jobs, load, process, overwrite=False, on_advance=lambda job: advanced.append(job.source.name))
    assert loaded == ["a.jpg", "b.jpg"] and processed == ["A"]
    assert report.done == [jobs[0]] and report.skipped == [jobs[2]] and report.failed == [(jobs[1], "b.jpg: corrupt")]
    assert advanced == ["c.jpg", "a.jpg", "b.jpg"]  # skipped ones first, then in order


def test_outputs_that_cannot_be_written_fail_before_any_photo_is_enhanced(tmp_path, monkeypatch):
    import lowlight_cli.atomic as atomic

    a, b = touch(tmp_path / "in" / "a.jpg"), touch(tmp_path / "in" / "b.jpg")
    readonly, fine = tmp_path / "readonly", tmp_path / "fine"
    readonly.mkdir()
    real = atomic.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # root ignores permissions: answer as a read-only disk would
        if dir is not None and Path(dir) == readonly:
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    processed = []
    jobs = [Job(a, readonly / "sub" / "a.jpg"), Job(b, fine / "b.jpg")]
    report = run_jobs(jobs, lambda job: None, lambda job, _: processed.append(job.source), overwrite=False)
    assert processed == [b]  # the other photo is never enhanced, and nothing was created for it
    [(job, reason)] = report.failed
    assert job.source == a and reason.startswith(f"{a}: not enhanced") and "Read-only file system" in reason
    assert not (readonly / "sub").exists() and list(readonly.iterdir()) == []

    blocker = touch(tmp_path / "afile")
    _, report = triage([Job(a, blocker / "out.jpg")], overwrite=False)
    assert f"{blocker}: is a file, not a folder" in report.failed[0][1]
