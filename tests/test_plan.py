"""`run.places` and `run.plan`: output naming, collisions, folder discovery and triage, on their own."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.run.places import (
    checked,
    default_folder_output,
    default_output,
    discover,
    folder_photo_tasks,
    photo_tasks,
    unsupported_images,
)
from lowlight_cli.run.plan import Plan, plan_folder
from lowlight_cli.run.tasks import PhotoTask, VideoTask, from_row, to_row
from lowlight_cli.settings import VideoSettings
from lowlight_cli.storage import Location


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def task(source: Path, target: Path) -> PhotoTask:
    return PhotoTask(Location.of(source), Location.of(target))


def test_output_names(tmp_path):
    assert default_output(Path("a/photo.JPG")) == Path("a/photo_enhanced.JPG")
    assert default_output(Path("a/photo.jpg"), ".png") == Path("a/photo_enhanced.png")
    assert default_output(Path("raw.dng")) == Path("raw_enhanced.tif")  # RAW is never written: a 16-bit TIFF
    assert default_folder_output(tmp_path / "shots") == tmp_path / "shots_enhanced"
    assert default_folder_output(tmp_path / "shots" / "..", ".mp4") == tmp_path.parent / f"{tmp_path.name}_enhanced.mp4"


def test_one_output_file_or_a_folder_for_several(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    assert photo_tasks([a], tmp_path / "out.png") == [task(a, tmp_path / "out.png")]
    assert photo_tasks([a, b], tmp_path / "out") == [
        task(a, tmp_path / "out" / "a.jpg"),
        task(b, tmp_path / "out" / "b.png"),
    ]
    assert photo_tasks([a], tmp_path) == [task(a, tmp_path / "a_enhanced.jpg")]  # the input's own folder
    with pytest.raises(OutputError, match="with 2 inputs, -o must be a folder"):
        photo_tasks([a, b], tmp_path / "out.png")
    with pytest.raises(OutputError, match="would both be written to"):
        photo_tasks([a, tmp_path / "a.png"], None, ext=".jpg")
    assert checked([]) == []


def test_places_keep_the_spelling_the_user_gave():
    [one] = photo_tasks([Path("in/a.jpg")], None)
    assert str(one.source) == "in/a.jpg" and str(one.target) == "in/a_enhanced.jpg"  # messages name it so
    assert Path(one.target).is_absolute()  # while reads and writes use the absolute path


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
    tasks = folder_photo_tasks(folder, folder / "out", True, None, ".png")  # a previous run's outputs are no inputs
    assert [(t.source.name, t.target.relative_to(Location.of(folder / "out"))) for t in tasks] == [
        ("a.png", "a.png"),
        ("b.jpg", "b.png"),
        ("c.tif", "sub/c.png"),
    ]
    with pytest.raises(InputError, match="not a folder"):
        discover(folder / "b.jpg", False, None)


def test_triage_skips_finished_outputs_and_never_replaces_an_input(tmp_path):
    src, done, other = touch(tmp_path / "a.jpg"), touch(tmp_path / "b.jpg"), touch(tmp_path / "c.jpg")
    touch(tmp_path / "b_enhanced.jpg")
    tasks = [task(src, tmp_path / "a_enhanced.jpg"), task(done, tmp_path / "b_enhanced.jpg"), task(other, other)]
    tasks.append(task(src, done))
    plan = Plan.of(tasks, overwrite=False)
    assert plan.pending == [tasks[0]] and plan.skipped == [tasks[1], tasks[3]]  # an existing output is left alone
    assert [t for t, _ in plan.refused] == [tasks[2]]
    assert "refusing to write over the input" in plan.refused[0][1]
    plan = Plan.of(tasks, overwrite=True)
    assert plan.pending == tasks[:2] and plan.skipped == []
    assert [t for t, _ in plan.refused] == [tasks[2], tasks[3]]
    assert "its output" in plan.refused[1][1] and "inputs are never overwritten" in plan.refused[1][1]
    report = plan.report()  # an executor's report starts from what triage decided
    assert report.failed == plan.refused and report.done == [] and report.skipped == []


def test_outputs_that_cannot_be_written_fail_before_any_photo_is_enhanced(tmp_path, monkeypatch):
    import lowlight_cli.io.atomic as atomic

    a, b = touch(tmp_path / "in" / "a.jpg"), touch(tmp_path / "in" / "b.jpg")
    readonly, fine = tmp_path / "readonly", tmp_path / "fine"
    readonly.mkdir()
    real = atomic.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # root ignores permissions: answer as a read-only disk would
        if dir is not None and Path(dir) == readonly:
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    tasks = [task(a, readonly / "sub" / "a.jpg"), task(b, fine / "b.jpg")]
    plan = Plan.of(tasks, overwrite=False)
    assert plan.pending == [tasks[1]]  # the other photo is never enhanced, and nothing was created for it
    [(refused, reason)] = plan.refused
    assert refused.source == Location.of(a) and reason.startswith(f"{a}: not enhanced")
    assert "Read-only file system" in reason
    assert not (readonly / "sub").exists() and list(readonly.iterdir()) == []

    blocker = touch(tmp_path / "afile")
    plan = Plan.of([task(a, blocker / "out.jpg")], overwrite=False)
    assert f"{blocker}: is a file, not a folder" in plan.refused[0][1]


def test_a_task_travels_to_a_worker_as_one_typed_line(tmp_path):
    photo = PhotoTask(Location.of(Path("in/a.jpg")), Location.of("memory://bucket/out/a.jpg"), quality=80)
    settings = VideoSettings(end=2.0, frame_format="jpg")
    video = VideoTask(Location.of(tmp_path / "a.mp4"), Location.of(tmp_path / "o.mp4"), settings)
    assert from_row(to_row(photo)) == photo and from_row(to_row(video)) == video
    travelled = from_row(to_row(photo)).source
    assert travelled.as_path() == Path("in/a.jpg").resolve()  # opened where planned: a worker has its own cwd
    assert str(travelled) == str(Path("in/a.jpg"))  # and named in messages as the user wrote it


@pytest.mark.parametrize("recursive", [False, True])
def test_batch_into_its_own_folder_sweeps_only_its_own_outputs_temporaries(tmp_path, recursive):
    """`batch DIR -o DIR` writes into the user's folder: their own `.part` files (a download, at any depth)
    are no temporaries of ours; only a stale `.NAME.XXXX.part` beside a planned output is."""
    folder = tmp_path / "dark"
    touch(folder / "a.jpg"), touch(folder / "sub" / "b.png")
    users = [
        touch(folder / ".download.part"),
        touch(folder / "deep" / "er" / ".video.mkv.part"),
        touch(folder / ".a.jpg.k2j3h4.part"),  # beside an input, not an output: not ours either
        touch(folder / "sub" / ".b.png.q1w2e3.part"),
    ]
    stale = touch(folder / ".a_enhanced.jpg.x9y8z7.part")  # what a killed writer of a planned output left
    nested = touch(folder / "sub" / ".b_enhanced.png.ab12cd.part")  # planned only with --recursive
    fresh = touch(folder / ".a_enhanced.jpg.m4n5b6.part")  # another run may be writing it now
    hour_ago = time.time() - 3600
    for path in [*users, stale, nested]:
        os.utime(path, (hour_ago, hour_ago))
    plan = plan_folder(str(folder), str(folder), recursive, None, None, None, overwrite=False)
    assert sorted(t.target.relative_to(Location.of(folder)) for t in plan.tasks) == (
        ["a_enhanced.jpg", "sub/b_enhanced.png"] if recursive else ["a_enhanced.jpg"]
    )
    assert sorted(plan.swept) == sorted(map(str, [stale, nested] if recursive else [stale]))
    assert all(path.exists() for path in [*users, fresh]) and not stale.exists()
    assert nested.exists() != recursive  # a sub-folder --recursive does not cover is not looked into
