"""`storage.Location` (disk, a move-based filesystem, S3 on loopback) and the local batch over object storage."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight_cli.errors import InputError, OutputError, UsageError
from lowlight_cli.storage import STALE_AFTER_S, Location, is_remote, sweep_temporaries_of
from tests.conftest import dark_array
from tests.s3_server import s3, s3_endpoint  # noqa: F401 - fixtures

FAST = dict(prior="fallback", steps=2, work_size=48, device="cpu")


def plan(folder, output, recursive=False, pattern=None, ext=None):
    """`batch`'s tasks and unsupported pictures for any two locations."""
    from lowlight_cli.run.places import folder_photo_tasks, unsupported_images

    folder, output = Location.of(folder), Location.of(output)
    return folder_photo_tasks(folder, output, recursive, pattern, ext), unsupported_images(
        folder, recursive, pattern, output
    )


def test_local_location_answers_like_a_path(tmp_path):
    folder = Location.of(tmp_path)
    photo = folder / "sub/a photo.JPG"
    assert str(photo) == str(tmp_path / "sub" / "a photo.JPG")
    assert (photo.name, photo.stem, photo.suffix) == ("a photo.JPG", "a photo", ".JPG")
    assert photo.with_suffix(".png").name == "a photo.png"
    assert photo.relative_to(folder) == "sub/a photo.JPG"
    assert photo.parent == folder / "sub"
    assert Location.of(f"file://{tmp_path}") == folder and folder.local
    assert not photo.exists() and photo.modified() is None
    photo.write_atomic(b"abc")
    assert photo.exists() and photo.read_bytes() == b"abc"
    assert abs(photo.modified() - time.time()) < 5
    assert folder.list_files(recursive=True) == ["sub/a photo.JPG"] and folder.list_files(recursive=False) == []


def test_urls_and_their_errors():
    assert is_remote("s3://bucket/x") and is_remote("gs://b/x") and not is_remote("file:///tmp") and not is_remote("s3")
    memory = Location.of("memory://lowlight-test/dark")
    photo = memory / "a.jpg"
    assert str(photo) == "memory://lowlight-test/dark/a.jpg" and photo.with_suffix(".tif").suffix == ".tif"
    assert photo.relative_to(memory) == "a.jpg" and str(photo.parent) == "memory://lowlight-test/dark"
    with pytest.raises(UsageError, match="nosuchproto"):
        Location.of("nosuchproto://x/y")
    with pytest.raises(InputError, match="file not found"):
        (memory / "missing.jpg").read_bytes()
    with pytest.raises(InputError, match="not a folder"):
        Location.of("memory://lowlight-test/nothing-here").list_files(True)


def test_write_refuses_the_input_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    source = Location.of(tmp_path / "in.png")
    source.write_atomic(b"original")
    with pytest.raises(OutputError, match="refusing to write over the input"):
        source.write_atomic(b"new", protect=[source])
    assert source.read_bytes() == b"original"
    # A filesystem without atomic puts: written beside the target, then moved; a failed move leaves no temporary.
    from fsspec.implementations.dirfs import DirFileSystem
    from fsspec.implementations.local import LocalFileSystem

    fs = DirFileSystem(path=str(tmp_path / "remote"), fs=LocalFileSystem())
    target = Location(fs, "out/x.png", "dir", "dir://out/x.png")
    target.write_atomic(b"first")
    assert (tmp_path / "remote/out/x.png").read_bytes() == b"first"

    def broken_move(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(fs, "mv", broken_move)
    with pytest.raises(OutputError, match="disk vanished"):
        target.write_atomic(b"second")
    assert (tmp_path / "remote/out/x.png").read_bytes() == b"first"
    assert sorted(p.name for p in (tmp_path / "remote/out").iterdir()) == ["x.png"]


def test_a_plans_sweep_removes_only_its_targets_stale_temporaries(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / ".a.png.k2j3h4.part"
    fresh = tmp_path / ".b.jpg.x9y8z7.part"
    video = tmp_path / ".clip.mp4.ab12cd.part.mp4"  # a video's encoder writes into one of these
    keep = [tmp_path / "a.png", tmp_path / ".hidden", tmp_path / "c.part", tmp_path / "d.part.mp4"]
    for path in [stale, fresh, video, *keep]:
        path.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(video, (hour_ago, hour_ago))
    targets = [tmp_path / "sub" / "a.png", tmp_path / "b.jpg", tmp_path / "clip.mp4"]
    assert sorted(sweep_temporaries_of(targets, older_than=STALE_AFTER_S)) == sorted([str(video), str(stale)])
    assert not stale.exists() and fresh.exists() and all(path.exists() for path in keep)
    assert sweep_temporaries_of(targets) == [str(fresh)]
    assert sweep_temporaries_of([tmp_path / "missing" / "e.jpg"]) == []


def test_s3_location_lists_reads_writes_and_sweeps(s3):  # noqa: F811 - the s3 fixture
    s3.put("dark/a.jpg", b"aaa")
    s3.put("dark/sub/b.png", b"bbb")
    s3.put("dark/.c.png.abcd.part", b"half")
    folder = Location.of(s3.url("dark"))
    assert folder.is_dir() and not (folder / "a.jpg").is_dir()
    assert folder.list_files(recursive=False) == [".c.png.abcd.part", "a.jpg"]
    assert folder.list_files(recursive=True) == [".c.png.abcd.part", "a.jpg", "sub/b.png"]
    assert (folder / "sub/b.png").read_bytes() == b"bbb"
    target = Location.of(s3.url("bright/sub/b.png"))
    assert not target.exists()
    target.write_atomic(b"result", protect=[folder / "sub/b.png"])
    assert target.exists() and s3.get("bright/sub/b.png") == b"result"
    assert abs(target.modified() - time.time()) < 60
    with pytest.raises(OutputError, match="refusing"):
        (folder / "a.jpg").write_atomic(b"x", protect=[Location.of(s3.url("dark/a.jpg"))])
    assert [Location.of(r).name for r in sweep_temporaries_of([folder / "c.png"])] == [".c.png.abcd.part"]
    assert s3.keys("dark/") == ["dark/a.jpg", "dark/sub/b.png"]


def test_s3_folder_plan_follows_the_local_rules(s3):  # noqa: F811 - the s3 fixture
    from lowlight_cli.run.places import default_folder_location

    for key in [
        "dark/a.jpg",
        "dark/b_enhanced.jpg",
        "dark/.hidden.jpg",
        "dark/notes.txt",
        "dark/anim.gif",
        "dark/sub/c.png",
        "dark/out/old.jpg",
    ]:
        s3.put(key, b"x")
    folder = Location.of(s3.url("dark"))
    assert str(default_folder_location(folder)) == s3.url("dark_enhanced")
    jobs, unsupported = plan(folder, folder / "out", True, None, ".png")
    assert [(job.source.relative_to(folder), str(job.target)) for job in jobs] == [
        ("a.jpg", s3.url("dark/out/a.png")),
        ("sub/c.png", s3.url("dark/out/sub/c.png")),
    ]
    assert unsupported == ["anim.gif"]
    jobs, _ = plan(folder, Location.of(s3.url("o")), False, "*.jpg", None)
    assert [str(job.target) for job in jobs] == [s3.url("o/a.jpg")]


def make_inputs(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / (f"p{index}.png" if index % 2 else f"p{index}.jpg")
        Image.fromarray(dark_array(40, 56, seed=index)).save(path, **({} if index % 2 else {"quality": 90}))
        paths.append(path)
    return paths


def test_local_batch_reads_and_writes_s3_with_the_disk_batch_bytes(s3, tmp_path, tiny_checkpoint):  # noqa: F811 - the s3 fixture
    from lowlight_cli.pipeline import build
    from lowlight_cli.run.local import LocalExecutor
    from lowlight_cli.run.plan import Plan

    inputs = make_inputs(tmp_path / "dark")
    for path in inputs:
        s3.put(f"dark/{path.name}", path.read_bytes())
    s3.put("dark/broken.jpg", b"not a picture")
    executor = LocalExecutor(build(model=tiny_checkpoint, **FAST))
    disk_jobs, _ = plan(Location.of(tmp_path / "dark"), Location.of(tmp_path / "bright"), False, None, None)
    assert len(executor.run(Plan.of(disk_jobs, overwrite=False)).done) == 3
    jobs, _ = plan(Location.of(s3.url("dark")), Location.of(s3.url("bright")), False, None, None)
    report = executor.run(Plan.of(jobs, overwrite=False))
    assert [str(job.target) for job in report.done] == [s3.url(f"bright/{p.name}") for p in inputs]
    assert [str(job.source) for job, _ in report.failed] == [s3.url("dark/broken.jpg")]  # named as written
    assert str(report.failed[0][1]).startswith(f"{s3.url('dark/broken.jpg')}: not a supported image")
    for path in inputs:  # the same encoder, metadata and quality rule as on disk: the same bytes
        assert s3.get(f"bright/{path.name}") == (tmp_path / "bright" / path.name).read_bytes()
    # Resume: finished outputs in the bucket are skipped.
    again = executor.run(Plan.of(jobs, overwrite=False))
    assert (len(again.done), len(again.skipped), len(again.failed)) == (0, 3, 1)
    decoded = np.asarray(Image.open(tmp_path / "bright" / inputs[0].name))
    assert decoded.shape == (40, 56, 3) and decoded.mean() > np.asarray(Image.open(inputs[0])).mean()


def test_temporaries_of_given_outputs_go_whatever_their_age(tmp_path):
    from lowlight_cli.storage import sweep_temporaries_of

    (tmp_path / "sub").mkdir()
    mine = [tmp_path / ".a.jpg.x1y2z3.part", tmp_path / "sub" / ".c.png.q9w8e7.part"]
    others = [tmp_path / ".b.jpg.k3j4h5.part", tmp_path / "a.jpg", tmp_path / ".a.jpg.notes"]
    for path in mine + others:
        path.write_bytes(b"x")
    removed = sweep_temporaries_of(
        [
            Location.of(tmp_path / "a.jpg"),
            Location.of(tmp_path / "sub" / "c.png"),
            Location.of(tmp_path / "missing" / "d.jpg"),
        ]
    )
    assert sorted(removed) == sorted(str(path) for path in mine)
    assert all(path.exists() for path in others) and not any(path.exists() for path in mine)


def test_a_local_write_goes_to_the_absolute_place_and_names_it_as_the_user_did(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    target, blocked = Location.of("out/x.png"), Location.of("file/x.png")
    (tmp_path / "a" / "file").write_bytes(b"a file where a folder should be")
    monkeypatch.chdir(tmp_path / "b")
    target.write_atomic(b"result")
    assert (tmp_path / "a" / "out" / "x.png").read_bytes() == b"result" and target.exists()
    assert list((tmp_path / "b").iterdir()) == []
    with pytest.raises(OutputError) as failed:
        blocked.write_atomic(b"result")
    assert str(failed.value) == "file: is a file, not a folder (the output was to go inside it)"


def test_a_folder_in_a_message_is_the_same_ancestor_of_what_the_user_wrote():
    from lowlight_cli.io.images import shown_as

    within = Path("/home/u/out/sub")
    assert shown_as(Path("/home/u/out"), within, "out/sub") == "out"
    assert shown_as(within, within, "out/sub") == "out/sub"
    assert shown_as(Path("/home/u"), within, "out/sub") == "/home/u"  # above what was written: the real place
    assert shown_as(Path("/home/u/out"), within, None) == "/home/u/out"
