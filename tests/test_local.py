"""`run.photo` and `run.local`: the unit of work (read → enhance → check → write) and the local executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lowlight_cli.errors import InputError, OutputError, WeightsError
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io.images import jpeg_quality, load_image
from lowlight_cli.pipeline import Pipeline, build
from lowlight_cli.run.local import LocalExecutor
from lowlight_cli.run.photo import check_finite, enhance_photo, read_photo
from lowlight_cli.run.places import photo_tasks
from lowlight_cli.run.plan import Plan
from lowlight_cli.run.tasks import PhotoTask
from lowlight_cli.storage import Location
from tests.conftest import dark_array, tiny_model


@pytest.fixture(scope="module")
def enhancer() -> Pipeline:
    return build(denoiser=tiny_model(), device="cpu", prior="fallback", steps=2, work_size=48)


def task(source: Path, target: Path, quality: int | None = None) -> PhotoTask:
    return PhotoTask(Location.of(source), Location.of(target), quality)


def process(enhancer: Pipeline, photo_task: PhotoTask):
    return enhance_photo(enhancer, photo_task, read_photo(photo_task.source))


def test_a_photo_is_written_as_the_pipeline_made_it_at_the_inputs_quality(tmp_path, enhancer):
    source, target = tmp_path / "in.png", tmp_path / "sub" / "out.png"
    Image.fromarray(dark_array()).save(source)
    result = process(enhancer, task(source, target))
    expected = quantise(enhancer.enhance(load_image(source).rgb).rgb)
    assert np.array_equal(np.asarray(Image.open(target)), expected)  # PNG: lossless, the 8-bit result itself
    assert np.array_equal(quantise(result.rgb), expected)
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]  # no temporary left beside it
    jpeg = tmp_path / "q70.jpg"
    Image.fromarray(dark_array()).save(jpeg, quality=70)
    process(enhancer, task(jpeg, tmp_path / "q70_out.jpg"))
    assert jpeg_quality(tmp_path / "q70_out.jpg") == 70
    process(enhancer, task(jpeg, tmp_path / "q90_out.jpg", quality=90))
    assert jpeg_quality(tmp_path / "q90_out.jpg") == 90
    with pytest.raises(OutputError, match="refusing to write over the input"):
        process(enhancer, task(source, source))


def test_check_finite_names_the_model_and_the_share():
    check_finite(np.zeros((2, 2, 3), np.float32), "m")
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[0, 0, 0] = np.nan
    with pytest.raises(WeightsError, match=r"model broken.safetensors produced NaN or infinite values \(8.33% "):
        check_finite(rgb, "broken.safetensors")


def test_the_local_executor_reports_each_task_and_calls_back_per_result(tmp_path, enhancer):
    good, bad, done = tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "done.png"
    Image.fromarray(dark_array()).save(good)
    bad.write_bytes(b"not a png")
    Image.fromarray(dark_array()).save(done)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "done.png").write_bytes(b"finished earlier")
    tasks = [task(path, tmp_path / "out" / path.name) for path in (good, bad, done)]
    seen, advanced = [], []
    executor = LocalExecutor(
        enhancer,
        on_done=lambda t, image, result: seen.append(
            (t.source.name, image.size, result.rgb.shape, sorted(result.timings))
        ),
    )
    report = executor.run(Plan.of(tasks, overwrite=False), on_advance=lambda t: advanced.append(t.source.name))
    assert report.done == [tasks[0]] and report.skipped == [tasks[2]] and [t for t, _ in report.failed] == [tasks[1]]
    assert "bad.png" in str(report.failed[0][1]) and not (tmp_path / "out" / "bad.png").exists()
    assert seen == [("good.png", (64, 48), (48, 64, 3), ["prepare", "prior", "reconstruct", "sample"])]
    assert advanced == ["good.png", "bad.png"]  # only what runs: the plan's skipped ones are counted up front
    again = LocalExecutor(lambda: pytest.fail("no model is needed")).run(Plan.of(tasks[:1], overwrite=False))
    assert again.skipped == tasks[:1] and again.done == []


def test_a_model_is_built_only_once_a_photo_has_decoded(tmp_path, enhancer):
    """Bad files fail in milliseconds, without loading a model; a good one builds it once for the run."""
    bad, good, also = tmp_path / "bad.jpg", tmp_path / "good.png", tmp_path / "also.png"
    bad.write_bytes(b"just text")
    Image.fromarray(dark_array()).save(good)
    Image.fromarray(dark_array(seed=1)).save(also)
    built = []
    factory = lambda: built.append(1) or enhancer  # noqa: E731
    report = LocalExecutor(factory).run(Plan.of([task(bad, tmp_path / "o" / "bad.jpg")], overwrite=False))
    assert len(report.failed) == 1 and built == []
    tasks = [task(path, tmp_path / "o" / path.name) for path in (bad, good, also)]
    report = LocalExecutor(factory).run(Plan.of(tasks, overwrite=False))
    assert len(report.done) == 2 and len(report.failed) == 1 and built == [1]


def test_a_model_that_cannot_be_built_stops_the_run_with_its_own_error(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(dark_array()).save(good)

    def broken() -> Pipeline:
        raise WeightsError("model x: not a checkpoint")

    with pytest.raises(WeightsError, match="not a checkpoint"):
        LocalExecutor(broken).run(Plan.of([task(good, tmp_path / "o.png")], overwrite=False))


def test_a_plan_made_in_one_folder_writes_where_it_planned_after_a_chdir(tmp_path, enhancer, monkeypatch):
    """Relative paths are planned absolute (exists, triage, input protection); the write goes there too,
    whatever the working directory is by then, while messages keep the user's spelling."""
    (tmp_path / "here").mkdir(), (tmp_path / "elsewhere").mkdir()
    Image.fromarray(dark_array()).save(tmp_path / "here" / "in.png")
    monkeypatch.chdir(tmp_path / "here")
    plan = Plan.of(photo_tasks([Path("in.png")], Path("out/x.png")), overwrite=False)
    assert [str(t.target) for t in plan.pending] == ["out/x.png"]
    monkeypatch.chdir(tmp_path / "elsewhere")
    report = LocalExecutor(enhancer).run(plan)
    assert len(report.done) == 1 and not report.failed, report.failed
    assert Image.open(tmp_path / "here" / "out" / "x.png").size == (64, 48)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with pytest.raises(InputError, match=r"^gone\.png: file not found$"):  # read absolute, named as written
        read_photo(Location.of("gone.png"))
