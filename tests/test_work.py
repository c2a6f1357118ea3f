"""`work`: the library's unit of work (load → enhance → check → write), without the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lowlight_cli.errors import OutputError, WeightsError
from lowlight_cli.io.images import jpeg_quality, load_image
from lowlight_cli.jobs import Job
from lowlight_cli.pipeline import Enhancer
from lowlight_cli.pixels import quantise
from lowlight_cli.work import check_finite, enhance_files, process_file
from tests.conftest import dark_array, tiny_model


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(tiny_model(), device="cpu", prior="fallback", steps=2, work_size=48)


def test_process_file_writes_the_pipelines_result_at_the_inputs_quality(tmp_path, enhancer):
    source, target = tmp_path / "in.png", tmp_path / "sub" / "out.png"
    Image.fromarray(dark_array()).save(source)
    result = process_file(enhancer, source, target)
    expected = quantise(enhancer.enhance(load_image(source).rgb).rgb)
    assert np.array_equal(np.asarray(Image.open(target)), expected)  # PNG: lossless, the 8-bit result itself
    assert np.array_equal(quantise(result.rgb), expected)
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]  # no temporary left beside it
    jpeg = tmp_path / "q70.jpg"
    Image.fromarray(dark_array()).save(jpeg, quality=70)
    process_file(enhancer, jpeg, tmp_path / "q70_out.jpg")
    assert jpeg_quality(tmp_path / "q70_out.jpg") == 70
    process_file(enhancer, jpeg, tmp_path / "q90_out.jpg", quality=90)
    assert jpeg_quality(tmp_path / "q90_out.jpg") == 90
    with pytest.raises(OutputError, match="refusing to write over the input"):
        process_file(enhancer, source, source)


def test_check_finite_names_the_model_and_the_share():
    check_finite(np.zeros((2, 2, 3), np.float32), "m")
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[0, 0, 0] = np.nan
    with pytest.raises(WeightsError, match=r"model broken.safetensors produced NaN or infinite values \(8.33% "):
        check_finite(rgb, "broken.safetensors")


def test_enhance_files_reports_each_file_and_calls_back_per_result(tmp_path, enhancer):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(dark_array()).save(good)
    bad.write_bytes(b"not a png")
    jobs = [Job(good, tmp_path / "out" / "good.png"), Job(bad, tmp_path / "out" / "bad.png")]
    seen = []
    report = enhance_files(
        enhancer,
        jobs,
        overwrite=False,
        on_done=lambda job, image, result: seen.append(
            (job.source.name, image.size, result.rgb.shape, sorted(result.timings))
        ),
    )
    assert report.done == [jobs[0]] and [job for job, _ in report.failed] == [jobs[1]]
    assert "bad.png" in report.failed[0][1] and not (tmp_path / "out" / "bad.png").exists()
    assert seen == [("good.png", (64, 48), (48, 64, 3), ["prepare", "prior", "reconstruct", "sample"])]
    again = enhance_files(None, jobs[:1], overwrite=False)  # finished: no model needed
    assert again.skipped == jobs[:1] and again.done == []


def test_a_model_is_built_only_once_a_photo_has_decoded(tmp_path, enhancer):
    """Bad files fail in milliseconds, without loading a model; a good one builds it once for the run."""
    bad, good, also = tmp_path / "bad.jpg", tmp_path / "good.png", tmp_path / "also.png"
    bad.write_bytes(b"just text")
    Image.fromarray(dark_array()).save(good)
    Image.fromarray(dark_array(seed=1)).save(also)
    built = []
    factory = lambda: built.append(1) or enhancer  # noqa: E731
    report = enhance_files(factory, [Job(bad, tmp_path / "o" / "bad.jpg")], overwrite=False)
    assert len(report.failed) == 1 and built == []
    jobs = [Job(path, tmp_path / "o" / path.name) for path in (bad, good, also)]
    report = enhance_files(factory, jobs, overwrite=False)
    assert len(report.done) == 2 and len(report.failed) == 1 and built == [1]
