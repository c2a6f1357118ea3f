"""`batch --ray` on a real local Ray cluster: same outputs as the local batch, bad files, resume, dead workers, S3.

One cluster (2 CPUs, fixed) serves the module; each test has a hard
timeout, because a misconfigured actor pool hangs rather than fails. Skipped
when Ray is not installed (the `[ray]` extra).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from lowlight_cli.errors import LowlightError, UsageError, WeightsError  # noqa: E402
from lowlight_cli.run import ray_cluster as cluster_module  # noqa: E402
from lowlight_cli.run import ray_executor  # noqa: E402
from lowlight_cli.run.local import LocalExecutor  # noqa: E402
from lowlight_cli.run.places import folder_photo_tasks  # noqa: E402
from lowlight_cli.run.plan import Plan, Report  # noqa: E402
from lowlight_cli.run.ray_cluster import Cluster, RayOptions, parse_workers, pool_size  # noqa: E402
from lowlight_cli.run.ray_executor import EnhanceWorker, RayExecutor  # noqa: E402
from lowlight_cli.run.tasks import Task  # noqa: E402
from lowlight_cli.settings import EnhanceSettings  # noqa: E402
from lowlight_cli.storage import STALE_AFTER_S, Location, sweep_temporaries_of  # noqa: E402
from tests.conftest import dark_array  # noqa: E402
from tests.s3_server import s3, s3_endpoint  # noqa: E402,F401 - fixtures

pytestmark = pytest.mark.timeout(300)
CPUS = 2


def settings(checkpoint: Path, **changes) -> EnhanceSettings:
    return EnhanceSettings(
        **{**dict(model=str(checkpoint), device="cpu", prior="fallback", steps=2, work_size=48), **changes}
    )


def plan_folder(folder, output, recursive: bool, pattern, ext) -> list[Task]:
    return list(folder_photo_tasks(Location.of(folder), Location.of(output), recursive, pattern, ext))


def run_ray_batch(tasks, settings, options, overwrite, **kwargs) -> Report:
    """A plan of `tasks` on a `RayExecutor`."""
    return RayExecutor(settings, options).run(Plan.of(tasks, overwrite), **kwargs)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local cluster of CPUS CPUs for the whole module; the batch code finds it initialised and uses it."""
    previous = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    ray.init(num_cpus=CPUS, num_gpus=0, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
        else:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = previous


def make_folder(root: Path) -> Path:
    folder = root / "dark"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(dark_array(40, 56, seed=1)).save(folder / "a.jpg", quality=90)
    Image.fromarray(dark_array(48, 40, seed=2)).save(folder / "b.png")
    Image.fromarray(dark_array(32, 48, seed=3)).save(folder / "sub" / "c.jpg", quality=85)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def local_reference(folder: Path, out: Path, checkpoint: Path, ext: str | None = None) -> Report:
    """The plain local batch (one process, no Ray) on the same folder."""
    from lowlight_cli.pipeline import build

    tasks = plan_folder(folder, out, True, None, ext)
    return LocalExecutor(build(settings(checkpoint))).run(Plan.of(tasks, overwrite=False))


def test_auto_without_a_running_cluster_is_one_line(monkeypatch):
    """First in the module: before the shared cluster starts."""
    if ray.is_initialized():
        pytest.skip("a cluster is running in this process")
    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():  # `auto` finds any cluster running on this machine (another test run's, say)
        pytest.skip("a Ray cluster is running on this machine")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(cluster_module.tempfile, "gettempdir", lambda: "/nonexistent-lowlight")
    with pytest.raises(LowlightError, match="no running Ray cluster found"):
        cluster_module.connect("auto")
    assert not ray.is_initialized()


def test_options_and_model_are_checked_on_the_driver_before_ray_starts(tmp_path, tiny_checkpoint, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("Ray was started before the options were checked")

    monkeypatch.setattr(ray_executor, "connect", no_cluster)
    folder = make_folder(tmp_path)
    jobs = plan_folder(Location.of(folder), Location.of(tmp_path / "out"), True, None, None)
    with pytest.raises(WeightsError, match="no such checkpoint"):
        run_ray_batch(jobs, settings(tmp_path / "nope.safetensors"), RayOptions(), overwrite=False)
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        run_ray_batch(jobs, settings(tmp_path / "broken.safetensors"), RayOptions(), overwrite=False)
    with pytest.raises(UsageError, match="gpus_per_worker"):
        run_ray_batch(jobs, settings(tiny_checkpoint, device="cuda"), RayOptions(), overwrite=False)
    with pytest.raises(UsageError, match="^cpus_per_worker must be more than 0"):
        run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(cpus_per_worker=0), overwrite=False)
    assert not (tmp_path / "out").exists()
    assert parse_workers("3") == (3, 3) and parse_workers("2, 16") == (2, 16) and parse_workers(None) is None
    for bad in ("0", "4,2", "x", "1,2,3", ""):
        with pytest.raises(UsageError, match="workers"):
            parse_workers(bad)


@pytest.mark.parametrize("user_setting, expected", [(None, "0"), ("1", "1")])
def test_workers_get_the_drivers_settings_and_no_huge_page_requests(monkeypatch, user_setting, expected):
    """A Ray worker imports NumPy before `lowlight_cli` could switch its huge-page requests off: the switch
    travels in the actors' runtime_env, off unless the user turned it on, with the forwarded settings."""
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    if user_setting is not None:
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", user_setting)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LOWLIGHT_TEST_SETTING", "kept")
    monkeypatch.setenv("UNRELATED_TO_WORKERS", "x")
    env = ray_executor.worker_env(threads=3)
    assert env["NUMPY_MADVISE_HUGEPAGE"] == expected and env["OMP_NUM_THREADS"] == "3"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and env["LOWLIGHT_TEST_SETTING"] == "kept"
    assert "UNRELATED_TO_WORKERS" not in env


def test_pool_size_fits_the_cluster_and_refuses_one_that_would_wait_forever():
    local = Cluster(ray=None, started_here=True, connected_here=True, cpus=4, gpus=1)
    notes: list[str] = []
    assert pool_size(RayOptions(), local, files=10, notify=notes.append) == (4, 4)
    assert pool_size(RayOptions(), local, files=3, notify=notes.append) == (3, 3)  # never more actors than files
    assert pool_size(RayOptions(cpus_per_worker=2), local, files=10, notify=notes.append) == (2, 2)
    assert pool_size(RayOptions(gpus_per_worker=0.5), local, files=10, notify=notes.append) == (2, 2)
    assert pool_size(RayOptions(workers=(1, 8)), local, files=10, notify=notes.append) == (1, 8)
    with pytest.raises(UsageError, match="need 6 CPU"):
        pool_size(RayOptions(workers=(3, 3), cpus_per_worker=2), local, files=10, notify=notes.append)
    joined = Cluster(ray=None, started_here=False, connected_here=True, cpus=4, gpus=0)
    assert pool_size(RayOptions(workers=(8, 8)), joined, files=10, notify=notes.append) == (8, 8)
    assert notes and "waiting for the cluster to grow" in notes[-1]  # an autoscaler may add nodes
    with pytest.raises(UsageError, match="GPU"):
        pool_size(RayOptions(gpus_per_worker=1), joined, files=10, notify=notes.append)
    assert not [name for name in ("ray",) if name not in sys.modules]  # imported by this module, not by pool_size


def test_same_outputs_as_the_local_batch_a_bad_file_and_resume(ray_cluster, tmp_path, tiny_checkpoint):
    folder = make_folder(tmp_path)
    reference = local_reference(folder, tmp_path / "local", tiny_checkpoint)
    assert len(reference.done) == 3
    jobs = plan_folder(Location.of(folder), Location.of(tmp_path / "ray"), True, None, None)
    advanced, executor = [], RayExecutor(settings(tiny_checkpoint), RayOptions())
    # Two 1-CPU workers on a 2-CPU cluster take every CPU: only tasks travel in blocks, so nothing waits on a read task.
    report = executor.run(Plan.of(jobs, overwrite=False), on_advance=advanced.append)
    assert executor.stats.workers == (2, 2)
    assert sorted(job.source.name for job in report.done) == ["a.jpg", "b.png", "c.jpg"]
    assert [job.source.name for job, _ in report.failed] == ["broken.jpg"]
    assert (
        "broken.jpg: corrupt or truncated image" in report.failed[0][1]
        or "broken.jpg: not a supported image" in report.failed[0][1]
    )
    assert len(advanced) == 4 and not report.skipped
    for rel in ["a.jpg", "b.png", "sub/c.jpg"]:
        ours, theirs = pixels(tmp_path / "ray" / rel), pixels(tmp_path / "local" / rel)
        assert ours.shape == theirs.shape
        # One torch thread per worker against the local batch's own: equal up to rounding.
        assert np.abs(ours - theirs).max() <= 2, rel
    assert (tmp_path / "ray" / "b.png").read_bytes() == (tmp_path / "local" / "b.png").read_bytes() or np.abs(
        pixels(tmp_path / "ray" / "b.png") - pixels(tmp_path / "local" / "b.png")
    ).max() <= 1

    # An interrupted run: one output missing, and a temporary a killed writer left an hour ago.
    (tmp_path / "ray" / "sub" / "c.jpg").unlink()
    orphan = tmp_path / "ray" / ".a.jpg.q1w2e3.part"
    orphan.write_bytes(b"half an image")
    os.utime(orphan, (time.time() - 3600,) * 2)
    kept = {name: (tmp_path / "ray" / name).stat().st_mtime_ns for name in ["a.jpg", "b.png"]}
    assert sweep_temporaries_of([tmp_path / "ray" / "a.jpg"], older_than=STALE_AFTER_S) == [str(orphan)]
    report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 2)), overwrite=False)
    assert [job.source.name for job in report.done] == ["c.jpg"]
    assert sorted(job.source.name for job in report.skipped) == ["a.jpg", "b.png"]
    assert len(report.failed) == 1
    assert {name: (tmp_path / "ray" / name).stat().st_mtime_ns for name in kept} == kept
    assert np.abs(pixels(tmp_path / "ray" / "sub" / "c.jpg") - pixels(tmp_path / "local" / "sub" / "c.jpg")).max() <= 2
    assert not list((tmp_path / "ray").rglob("*.part"))


def dying_worker(folder: str) -> type[EnhanceWorker]:
    """An actor class that logs every stage, and dies (as a lost machine would) once at chosen points."""

    def stage(name: str, file: str) -> None:
        with open(os.path.join(folder, "log"), "a") as log:
            log.write(f"{name} {file} {os.getpid()}\n")
        marker = os.path.join(folder, f"killed-{name}-{file}")
        if (name, file) in [("written", "a.jpg"), ("enhancing", "b.png")] and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)

    class Dying(EnhanceWorker):
        def run_task(self, task: Task):
            name, there = task.target.name, task.target.exists()
            stage("enhancing", name)
            status = super().run_task(task)
            if status == "done" and not there:
                stage("written", name)
            return status

    return Dying


def test_a_worker_that_dies_mid_block_is_replaced_and_nothing_is_written_twice(
    ray_cluster, tmp_path, tiny_checkpoint, monkeypatch
):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    local_reference(folder, tmp_path / "local", tiny_checkpoint)
    logs = tmp_path / "logs"
    logs.mkdir()
    jobs = plan_folder(Location.of(folder), Location.of(tmp_path / "ray"), True, None, None)
    with monkeypatch.context() as patch:  # the actors are the logging, dying kind
        patch.setattr(ray_executor, "EnhanceWorker", dying_worker(str(logs)))
        report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 1)), overwrite=False)
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (logs / "killed-written-a.jpg").exists() and (logs / "killed-enhancing-b.png").exists()
    lines = (logs / "log").read_text().split()
    writes = [lines[i + 1] for i in range(0, len(lines), 3) if lines[i] == "written"]
    assert sorted(writes) == ["a.jpg", "b.png", "c.jpg"]  # each file written exactly once, the killed one included
    assert len({lines[i + 2] for i in range(0, len(lines), 3)}) >= 3  # two deaths: three worker processes
    # a.jpg was written just before its worker died: the retried block finds it written by this run.
    assert sorted(job.source.name for job in report.done) == ["a.jpg", "b.png", "c.jpg"]
    assert not report.failed and not report.skipped
    for rel in ["a.jpg", "b.png", "sub/c.jpg"]:
        assert np.abs(pixels(tmp_path / "ray" / rel) - pixels(tmp_path / "local" / rel)).max() <= 2
    assert not list((tmp_path / "ray").rglob("*.part"))


def test_ray_batch_reads_and_writes_s3(ray_cluster, s3, tmp_path, tiny_checkpoint):  # noqa: F811 - the s3 fixture
    # The endpoint and keys were set after the cluster started: they reach the workers through the driver.
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    local_reference(folder, tmp_path / "local", tiny_checkpoint, ".png")
    for path in sorted(folder.rglob("*.*")):
        s3.put(f"dark/{path.relative_to(folder).as_posix()}", path.read_bytes())
    jobs = plan_folder(Location.of(s3.url("dark")), Location.of(s3.url("bright")), True, None, ".png")
    report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 2)), overwrite=False)
    assert not report.failed, report.failed
    assert s3.keys("bright/") == ["bright/a.png", "bright/b.png", "bright/sub/c.png"]
    for rel, key in [("a.png", "bright/a.png"), ("b.png", "bright/b.png"), ("sub/c.png", "bright/sub/c.png")]:
        (tmp_path / "got.png").write_bytes(s3.get(key))
        assert np.abs(pixels(tmp_path / "got.png") - pixels(tmp_path / "local" / rel)).max() <= 2
    again = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(), overwrite=False)
    assert (len(again.done), len(again.skipped)) == (0, 3)  # resumed from the bucket, without starting a pool


def test_a_worker_that_cannot_load_the_model_fails_each_file_in_one_line(
    ray_cluster, tmp_path, tiny_checkpoint, monkeypatch
):
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    jobs = plan_folder(Location.of(folder), Location.of(tmp_path / "out"), True, None, None)
    # The driver's check passes; the workers' own build fails (as on a worker without the GPU asked for).
    monkeypatch.setattr(ray_executor, "check_settings", lambda settings: b"not a checkpoint")
    report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 1)), overwrite=False)
    assert len(report.failed) == 3 and not report.done
    assert all("could not load the model" in reason and reason.count("\n") == 0 for _, reason in report.failed)
    assert not (tmp_path / "out").exists()


def test_a_workers_failures_reach_the_summary_as_a_local_runs_do(tmp_path, tiny_checkpoint, monkeypatch):
    """A worker's row carries an error's parts with its settings marked, and its task the places as the user
    wrote them: the driver's summary says `--work-size` where the library said `work_size`, and names the file
    as the command line did, word for word what the local executor reports. (In this process: Ray only carries
    the rows.)"""
    import torch

    import lowlight_cli.pipeline as pipeline
    from lowlight_cli.cli.app import flag
    from lowlight_cli.run.tasks import PhotoTask, to_row

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(pipeline, "sample_residual", exhausted)
    make_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    tasks = [PhotoTask(Location.of(f"dark/{name}"), Location.of(f"out/{name}")) for name in ("a.jpg", "broken.jpg")]
    local = LocalExecutor(pipeline.build(settings(tiny_checkpoint))).run(Plan.of(tasks, overwrite=False))
    threads = torch.get_num_threads()
    spec = ray_executor.WorkerSpec(settings(tiny_checkpoint), tiny_checkpoint.read_bytes(), "tiny", False, 0.0, 1)
    try:
        rows = EnhanceWorker(spec)({"task": [to_row(task) for task in tasks]})
    finally:
        torch.set_num_threads(threads)  # the worker takes its CPU share of this process
    report = Report()
    by_target = {os.fspath(task.target): task for task in tasks}
    rows_back = iter([dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)])
    executor = RayExecutor(settings(tiny_checkpoint), RayOptions())
    executor.collect(rows_back, by_target, report, time.perf_counter(), None)

    def worded(run: Report) -> list[str]:
        return [why.worded(flag) if isinstance(why, LowlightError) else why for _, why in run.failed]

    assert worded(report) == worded(local) and len(worded(report)) == 2
    assert worded(report)[0] == "out of memory on cpu: try a smaller --work-size"
    assert worded(report)[1].startswith(os.path.join("dark", "broken.jpg") + ": ")


def test_a_folder_of_videos_goes_one_video_per_worker(ray_cluster, tmp_path, tiny_checkpoint):
    from lowlight_cli.pipeline import build
    from lowlight_cli.run.places import folder_video_tasks
    from lowlight_cli.run.tasks import VideoTask
    from lowlight_cli.run.video import open_video
    from lowlight_cli.settings import VideoSettings
    from tests.test_video import frames_of, make_clip

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=4, size=(64, 48), audio=None)
    make_clip(clips / "b.mov", frames=3, size=(48, 32), audio="aac")
    (clips / "notes.txt").write_text("not a video")
    jobs = folder_video_tasks(clips, tmp_path / "out", VideoSettings())
    assert [(job.source.name, job.target.name) for job in jobs] == [("a.mp4", "a.mp4"), ("b.mov", "b.mov")]
    report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 2)), overwrite=False)
    assert sorted(job.source.name for job in report.done) == ["a.mp4", "b.mov"] and not report.failed
    local = VideoTask(Location.of(clips / "a.mp4"), Location.of(tmp_path / "local.mp4"), VideoSettings())
    with open_video(local) as video:  # the local `lowlight video`
        video.run(build(settings(tiny_checkpoint)))
    ours, theirs = frames_of(tmp_path / "out" / "a.mp4"), frames_of(tmp_path / "local.mp4")
    assert len(ours) == len(theirs) == 4
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(ours, theirs, strict=True)) <= 3
    assert [frame.shape for frame in frames_of(tmp_path / "out" / "b.mov")] == [(32, 48, 3)] * 3
    assert not list((tmp_path / "out").glob(".*"))
    again = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(), overwrite=False)
    assert len(again.skipped) == 2


class SlowAfterTheFirst(EnhanceWorker):
    """Files after a.jpg take long enough for Ctrl-C to find them unfinished."""

    def run_task(self, task: Task):
        if task.target.name != "a.jpg":
            time.sleep(3)
        return super().run_task(task)


def test_ctrl_c_stops_the_pool_keeps_whole_outputs_and_a_rerun_resumes(
    ray_cluster, tmp_path, tiny_checkpoint, monkeypatch
):
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    jobs = plan_folder(Location.of(folder), Location.of(tmp_path / "out"), True, None, None)

    def interrupt(job) -> None:
        raise KeyboardInterrupt

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(ray_executor, "EnhanceWorker", SlowAfterTheFirst)
            run_ray_batch(
                jobs, settings(tiny_checkpoint), RayOptions(workers=(1, 1)), overwrite=False, on_advance=interrupt
            )
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    written = sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert 1 <= len(written) < 3
    for path in written:  # whole images only: never a partial file or a leftover temporary
        assert not path.name.startswith(".") and Image.open(path).size[0] > 0
    report = run_ray_batch(jobs, settings(tiny_checkpoint), RayOptions(), overwrite=False)
    assert len(report.skipped) == len(written) and len(report.done) == 3 - len(written) and not report.failed


# ---- the command line ----------------------------------------------------------------------------------------------

FAST = ["--prior", "fallback", "--steps", "2", "--work-size", "48", "--device", "cpu"]


def cli(*args):
    from typer.testing import CliRunner

    from lowlight_cli.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_ray_takes_an_optional_address():
    from lowlight_cli.cli.app import bare_ray_flag

    assert bare_ray_flag(["batch", "d", "--ray"]) == ["batch", "d", "--ray="]
    assert bare_ray_flag(["batch", "d", "--ray", "-o", "x"]) == ["batch", "d", "--ray=", "-o", "x"]
    assert bare_ray_flag(["batch", "--ray", "d"]) == ["batch", "--ray=", "d"]  # a folder is not an address
    for address in ["auto", "local", "10.0.0.5:6379", "head-node:6379", "ray://head:10001"]:
        assert bare_ray_flag(["batch", "d", "--ray", address]) == ["batch", "d", "--ray", address]
    assert bare_ray_flag(["enhance", "--", "--ray"]) == ["enhance", "--", "--ray"]


def test_cli_checks_options_and_the_model_in_one_line_before_ray_starts(tmp_path, tiny_checkpoint, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_executor, "connect", no_cluster)
    folder = make_folder(tmp_path)
    for args, code, message in [
        (["--ray", "--model", tmp_path / "nope.safetensors"], 1, "no such checkpoint"),
        (["--ray", "--workers", "0"], 2, "--workers 0: give N or MIN,MAX"),
        (["--ray", "--workers", "4,2"], 2, "--workers 4,2"),
        (["--workers", "2"], 2, "--workers applies only with --ray"),
        (["--ray", "--device", "cuda"], 2, "needs --gpus-per-worker"),
        (["--ray", "--cpus-per-worker", "0"], 2, "--cpus-per-worker must be more than 0"),
    ]:
        result = cli("batch", folder, "-o", tmp_path / "out", *FAST, "--model", tiny_checkpoint, *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert result.output.count("error:") == 1
    assert not (tmp_path / "out").exists()
    result = cli("video", folder / "a.jpg", "--ray", *FAST)
    assert result.exit_code == 2 and "--ray takes a folder of videos" in result.output


def test_cli_batch_ray_summary_exit_codes_and_resume(ray_cluster, tmp_path, tiny_checkpoint):
    folder = make_folder(tmp_path)
    out = tmp_path / "out"
    result = cli("batch", folder, "-o", out, "-r", "--ray", "--workers", "1,2", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1, result.output  # the broken file
    assert "3 enhanced, 1 failed" in result.output and "broken.jpg" in result.output
    assert "img/s" in result.output
    (out / "b.png").unlink()
    orphan = out / "sub" / ".c.jpg.a1b2c3.part"  # a writer killed an hour ago
    orphan.write_bytes(b"half")
    os.utime(orphan, (time.time() - 3600,) * 2)
    (folder / "broken.jpg").unlink()
    result = cli("batch", folder, "-o", out, "-r", "--ray", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert "1 enhanced, 2 skipped" in result.output and not orphan.exists()
    result = cli("batch", folder, "-o", out, "-r", "--ray", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0 and "0 enhanced, 3 skipped" in result.output  # nothing to do: no pool started


def test_cli_batch_reads_and_writes_s3_locally_and_on_ray(ray_cluster, s3, tmp_path, tiny_checkpoint):  # noqa: F811 - the s3 fixture
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    for path in sorted(folder.rglob("*.*")):
        s3.put(f"dark/{path.relative_to(folder).as_posix()}", path.read_bytes())
    s3.put("dark/anim.gif", b"GIF89a")
    result = cli("batch", s3.url("dark"), "-r", "--model", tiny_checkpoint, *FAST)  # default: dark_enhanced
    assert result.exit_code == 0, result.output
    assert "3 enhanced" in result.output and "1 unsupported file skipped: anim.gif" in result.output
    assert s3.keys("dark_enhanced/") == ["dark_enhanced/a.jpg", "dark_enhanced/b.png", "dark_enhanced/sub/c.jpg"]
    result = cli("batch", s3.url("dark"), "-o", s3.url("ray"), "-r", "--ray", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    for key in ["a.jpg", "b.png", "sub/c.jpg"]:
        (tmp_path / "local").write_bytes(s3.get(f"dark_enhanced/{key}"))
        (tmp_path / "ray").write_bytes(s3.get(f"ray/{key}"))
        assert np.abs(pixels(tmp_path / "local") - pixels(tmp_path / "ray")).max() <= 2, key
    result = cli("batch", s3.url("dark"), "-o", tmp_path / "to-disk", "-r", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0 and sorted(p.name for p in (tmp_path / "to-disk").rglob("*.*")) == [
        "a.jpg",
        "b.png",
        "c.jpg",
    ]
