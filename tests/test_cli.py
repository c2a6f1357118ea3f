"""The `lowlight` commands as a user runs them (typer's CliRunner)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lowlight_cli import __version__
from lowlight_cli.cli import app
from tests.conftest import dark_array

runner = CliRunner()
FAST = ["--prior", "fallback", "--steps", "2", "--work-size", "48"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from lowlight_cli.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['enhance', '--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert __version__ in run("--version").output


def test_enhance_writes_same_size_output_beside_input(dark_jpeg, tiny_checkpoint, monkeypatch):
    before = dark_jpeg.read_bytes()
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    out = dark_jpeg.with_name("dark photo_enhanced.jpg")
    assert Image.open(out).size == Image.open(dark_jpeg).size
    assert dark_jpeg.read_bytes() == before
    # A second run skips the finished output instead of redoing it, without loading a model.
    mtime = out.stat().st_mtime_ns
    monkeypatch.setattr("lowlight_cli.cli.photos.build_pipeline", lambda settings: pytest.fail("model loaded"))
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0 and "skipped" in result.output
    assert out.stat().st_mtime_ns == mtime


def test_enhance_output_file_and_folder(tmp_path, dark_jpeg, tiny_checkpoint):
    result = run("enhance", dark_jpeg, "-o", tmp_path / "x.png", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "x.png").format == "PNG"
    second = tmp_path / "second.png"
    Image.fromarray(dark_array(seed=1)).save(second)
    result = run("enhance", dark_jpeg, second, "-o", tmp_path / "outs", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    # One naming rule with batch: an output folder keeps the names; the input's own folder adds _enhanced.
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["dark photo.jpg", "second.png"]
    result = run("enhance", second, "-o", tmp_path, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "second_enhanced.png").is_file()


def test_an_output_name_and_format_that_disagree_is_an_error(tmp_path, dark_jpeg, tiny_checkpoint):
    result = run("enhance", dark_jpeg, "-o", tmp_path / "o.jpg", "--format", "png", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 2 and "format asked for is .png" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "o.jpg").exists()
    result = run("enhance", dark_jpeg, "-o", tmp_path / "o.jpeg", "--format", "jpg", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output


def test_missing_input_is_one_line_error(tmp_path):
    result = run("enhance", tmp_path / "nope.jpg")
    assert result.exit_code == 1
    assert "nope.jpg: file not found" in result.output
    assert "Traceback" not in result.output


def test_refuses_to_write_over_input(dark_jpeg, tiny_checkpoint):
    before = dark_jpeg.read_bytes()
    result = run("enhance", dark_jpeg, "-o", dark_jpeg, "--model", tiny_checkpoint, "--overwrite", *FAST)
    assert result.exit_code == 1 and "one of the inputs" in result.output
    assert dark_jpeg.read_bytes() == before


def test_an_input_named_like_another_inputs_output_is_not_replaced(dark_jpeg, tiny_checkpoint):
    earlier = dark_jpeg.with_name("dark photo_enhanced.jpg")
    Image.fromarray(dark_array(seed=3)).save(earlier)
    before = earlier.read_bytes()
    result = run("enhance", dark_jpeg, earlier, "--model", tiny_checkpoint, "--overwrite", *FAST)
    assert result.exit_code == 1 and "is one of the inputs" in result.output and "1 enhanced" in result.output
    assert earlier.read_bytes() == before
    assert dark_jpeg.with_name("dark photo_enhanced_enhanced.jpg").exists()


def test_two_inputs_with_one_output_name_are_refused(tmp_path, dark_jpeg, tiny_checkpoint):
    twin = dark_jpeg.with_suffix(".png")
    Image.fromarray(dark_array(seed=1)).save(twin)
    result = run("enhance", dark_jpeg, twin, "--format", "jpg", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1 and "would both be written to" in result.output
    assert not dark_jpeg.with_name("dark photo_enhanced.jpg").exists()


def make_folder(root: Path) -> Path:
    folder = root / "dark"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(dark_array(seed=1)).save(folder / "a.jpg")
    Image.fromarray(dark_array(seed=2)).save(folder / "sub" / "b.png")
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_batch_outputs_resume_and_failures(tmp_path, tiny_checkpoint):
    folder = make_folder(tmp_path)
    out = tmp_path / "out"
    result = run("batch", folder, "-o", out, "--recursive", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1  # one file failed
    assert "broken.jpg" in result.output and "2 enhanced" in result.output and "1 failed" in result.output
    assert (out / "a.jpg").exists() and (out / "sub" / "b.png").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    (folder / "broken.jpg").unlink()
    result = run("batch", folder, "-o", out, "--recursive", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert "0 enhanced" in result.output and "2 skipped" in result.output
    assert "2/2" in result.output and "img/s" not in result.output  # skips are done, and no throughput
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.*")} == mtimes


def test_batch_into_a_sub_folder_does_not_take_its_outputs_for_inputs(tmp_path, tiny_checkpoint):
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    for _ in range(2):
        result = run("batch", folder, "-o", folder / "out", "--recursive", "--model", tiny_checkpoint, *FAST)
        assert result.exit_code == 0, result.output
    assert "0 enhanced, 2 skipped" in result.output
    assert not (folder / "out" / "out").exists()


def test_batch_of_the_current_folder_writes_beside_it(tmp_path, tiny_checkpoint, monkeypatch):
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    monkeypatch.chdir(folder)
    result = run("batch", ".", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dark_enhanced" / "a.jpg").exists()


def test_batch_into_its_own_folder_names_outputs_as_enhance_does(tmp_path, tiny_checkpoint):
    """One rule for enhance and batch: a folder of its own keeps the names; the input's own folder adds _enhanced."""
    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    (folder / "deep" / "er").mkdir(parents=True)
    downloads = [folder / ".download.part", folder / "deep" / "er" / ".video.mkv.part"]  # the user's own
    for path in downloads:
        path.write_bytes(b"half a download")
        os.utime(path, (0, 0))  # old enough for any sweep: still not ours to remove
    result = run("batch", folder, "-o", folder, "--recursive", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*_enhanced.*"))
    assert written == ["a_enhanced.jpg", "sub/b_enhanced.png"]
    assert all(path.read_bytes() == b"half a download" for path in downloads)
    result = run("enhance", folder / "a.jpg", "-o", folder, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0 and "skipped" in result.output  # the very file enhance names
    result = run("batch", folder, "-o", folder, "--recursive", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0 and "0 enhanced, 2 skipped" in result.output  # outputs are never taken for inputs


def test_batch_glob_and_non_recursive(tmp_path, tiny_checkpoint):
    folder = make_folder(tmp_path)
    result = run(
        "batch", folder, "-o", tmp_path / "o", "--glob", "*.png", "--recursive", "--model", tiny_checkpoint, *FAST
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "o").rglob("*.*")] == ["b.png"]


def test_ctrl_c_stops_with_130_and_keeps_finished_outputs(tmp_path, tiny_checkpoint, monkeypatch):
    import lowlight_cli.run.local as local

    folder = make_folder(tmp_path)
    (folder / "broken.jpg").unlink()
    real = local.enhance_photo
    calls = []

    def interrupt_second(enhancer, task, photo, *args, **kwargs):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(enhancer, task, photo, *args, **kwargs)

    monkeypatch.setattr(local, "enhance_photo", interrupt_second)
    result = run("batch", folder, "-o", tmp_path / "o", "--recursive", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 130
    assert [p.name for p in (tmp_path / "o").rglob("*.*")] == ["a.jpg"]
    assert not list((tmp_path / "o").rglob("*.part"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--steps", "-3"], "--steps must be at least 1"),
        (["--steps", "51"], "at most 50"),
        (["--device", "cuda"], "cuda"),
        (["--device", "mps"], "mps"),
        (["--work-size", "4"], "--work-size"),
        (["--sam-checkpoint", "/nonexistent/sam.safetensors", "--prior", "sam"], "not found"),
    ],
)
def test_invalid_options_are_clear_errors(dark_jpeg, tiny_checkpoint, args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "mps" in args and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    before = dark_jpeg.read_bytes()
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert dark_jpeg.read_bytes() == before


@pytest.mark.parametrize("option, value", [("--prior", "magic"), ("--sam-model", "vit_x"), ("--device", "tpu")])
def test_unknown_choices_are_rejected(dark_jpeg, option, value):
    result = run("enhance", dark_jpeg, option, value)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_wrong_checkpoint_is_refused(dark_jpeg, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04 pickle bytes")
    result = run("enhance", dark_jpeg, "--model", bad, *FAST)
    assert result.exit_code == 1 and "not a valid .safetensors" in result.output


def test_steps_help_says_what_more_steps_buy_and_cost():
    import re

    result = runner.invoke(app, ["enhance", "--help"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    text = " ".join(line.strip(" │") for line in result.output.splitlines())
    steps = text[text.index("--steps") : text.index("--seed")]
    assert "scores best" in steps and "scores lower" in steps  # what they buy
    assert "one denoiser pass each" in steps and len(re.findall(r"\d s at \d", steps)) >= 4  # what they cost


def test_models_list_path_and_info():
    result = run("models", "list")
    assert result.exit_code == 0 and "sam-vit-b" in result.output and "lowlight-default" in result.output
    header, first = result.output.splitlines()[:2]
    assert header.split() == ["name", "state", "description"]
    assert first.split()[:2] == ["lowlight-default", "present"]
    assert first.index("present") == header.index("state")  # aligned columns
    assert "sam-vit-b: facebook/sam-vit-base@" in result.output
    assert result.output.splitlines()[-1].startswith("--prior auto: sam-vit-b if downloaded, else built-in")
    result = run("models", "path", "sam-vit-h")
    assert result.exit_code == 1 and "not downloaded" in result.output
    result = run("info")
    assert result.exit_code == 0 and "Hugging Face cache" in result.output


def test_models_download_of_a_bundled_model_says_it_ships_inside(monkeypatch):
    """`lowlight models list` shows lowlight-default, so `models download lowlight-default` is no error: one line
    says it needs no download, and nothing is fetched; an unknown name's usage error lists it among the known."""
    monkeypatch.setattr(
        "lowlight_cli.checkpoints.hub.fetch_checkpoint", lambda *a, **k: pytest.fail("nothing to download")
    )
    for name in ["lowlight-default", "default"]:
        result = run("models", "download", name)
        assert result.exit_code == 0, result.output
        assert result.output == f"{name}: ships inside lowlight-cli, no download needed\n"
    result = run("models", "download", "sam-vit-z")
    assert result.exit_code == 2
    known = result.output.split("(known: ", 1)[1].rstrip(")\n").split(", ")
    assert {"lowlight-default", "default", "sam-vit-b"} <= set(known), result.output


def test_models_list_fits_80_columns_and_download_names_complete():
    code = (
        "import subprocess, sys; out = subprocess.run([sys.executable, '-m', 'lowlight_cli', 'models', 'list'], "
        "capture_output=True, text=True, env={'COLUMNS': '80', 'PATH': ''}).stdout; print(out)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    lines = out.strip("\n").splitlines()
    assert max(map(len, lines)) <= 80, out
    from lowlight_cli.checkpoints.hub import REGISTRY

    names = ["lowlight-default", *REGISTRY]
    # One line per model, nothing wrapped: the header, a row per model, a source per model, the --prior auto line.
    assert len(lines) == 1 + 2 * len(names) + 1, out
    assert [line.split()[0] for line in lines[1 : 1 + len(names)]] == names, out
    # What a shell gets for `lowlight models download sam-vit-<TAB>` (Click's bash completion protocol).
    env = {"_LOWLIGHT_COMPLETE": "complete_bash", "COMP_WORDS": "lowlight models download sam-vit-", "COMP_CWORD": "3"}
    result = runner.invoke(app, [], prog_name="lowlight", env=env)
    assert result.output.split() == ["sam-vit-b", "sam-vit-l", "sam-vit-h"], result.output


def test_the_built_in_prior_note_is_said_under_verbose_only(dark_jpeg, tiny_checkpoint, tmp_path):
    quiet = run(
        "enhance",
        dark_jpeg,
        "-o",
        tmp_path / "a.png",
        "--model",
        tiny_checkpoint,
        "--prior",
        "auto",
        "--steps",
        "1",
        "--work-size",
        "48",
    )
    loud = run(
        "enhance",
        dark_jpeg,
        "-o",
        tmp_path / "b.png",
        "--model",
        tiny_checkpoint,
        "--prior",
        "auto",
        "--steps",
        "1",
        "--work-size",
        "48",
        "-v",
    )
    assert quiet.exit_code == loud.exit_code == 0, (quiet.output, loud.output)
    assert "built-in region prior" not in quiet.output and "built-in region prior" in loud.output


def test_eval_and_train_on_a_tiny_paired_folder(tmp_path, tiny_checkpoint):
    for sub in ("low", "high"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(dark_array(40, 48, seed=i)).save(tmp_path / "pairs" / "low" / f"{i}.png")
        Image.fromarray((dark_array(40, 48, seed=i).astype(int) * 4).clip(0, 255).astype("uint8")).save(
            tmp_path / "pairs" / "high" / f"{i}.png"
        )
    result = run("eval", "--data", tmp_path / "pairs", "--model", tiny_checkpoint, "--per-image", *FAST)
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "on 2 pairs" in result.output
    result = run("eval", "--data", tmp_path / "pairs", "--method", "gamma")
    assert result.exit_code == 0 and "gamma on 2 pairs" in result.output
    result = run("eval", "--data", tmp_path / "pairs", "--method", "gamma", "--limit", "-1")
    assert result.exit_code == 2 and "--limit must be at least 0" in result.output

    Image.fromarray(dark_array(40, 40, seed=5)).save(tmp_path / "pairs" / "low" / "2.png")
    Image.fromarray(dark_array(40, 48, seed=5)).save(tmp_path / "pairs" / "high" / "2.png")
    result = run("eval", "--data", tmp_path / "pairs", "--method", "gamma")
    assert result.exit_code == 1 and "pairs must be aligned" in result.output and "Traceback" not in result.output
    for sub in ("low", "high"):
        (tmp_path / "pairs" / sub / "2.png").unlink()

    out = tmp_path / "new" / "folder" / "m.safetensors"  # created by train, not lost at the first save
    args = [
        "train",
        "--data",
        tmp_path / "pairs",
        "--out",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "32",
        "--base-channels",
        "8",
        "--save-every",
        "1",
        "--device",
        "cpu",
        "--no-mean-start",
        "--no-tone",
        "--tone-steps",
        "0",
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    args[args.index("--steps") + 1] = "4"
    result = run(*args, "--stop-at", "3")  # resumes from step 2, stops early at 3
    assert result.exit_code == 0, result.output
    from lowlight_cli.models.checkpoint import read_provenance

    assert read_provenance(out)["steps"] == 3
    result = run(*args)  # and resumes again to the end of the schedule
    assert result.exit_code == 0, result.output
    assert read_provenance(out)["steps"] == 4
    result = run("enhance", tmp_path / "pairs" / "low" / "0.png", "-o", tmp_path / "e.png", "--model", out, *FAST)
    assert result.exit_code == 0, result.output
    args[args.index("--base-channels") + 1] = "16"
    args[args.index("--steps") + 1] = "6"
    result = run(*args)  # another architecture cannot continue this run's state
    assert result.exit_code == 2 and "another architecture (base_channels differ)" in result.output, result.output
    assert read_provenance(out)["steps"] == 4
    args[args.index("--base-channels") + 1] = "8"
    args[args.index("--no-mean-start")] = "--mean-start"
    result = run(*args)  # another recipe can: that is how a second phase is trained
    assert result.exit_code == 0 and "mean_start False → True" in result.output, result.output
    assert read_provenance(out)["steps"] == 6

    tuned = tmp_path / "tuned.safetensors"  # fine-tuning starts from a model's weights, with its own schedule
    args[args.index("--out") + 1] = tuned
    result = run(*args, "--init", out, "--refine-share", "0.3", "--lr", "1e-2")
    assert result.exit_code == 0, result.output
    assert read_provenance(tuned)["steps"] == 6
    import torch

    from lowlight_cli.models.checkpoint import load_checkpoint

    before, after = load_checkpoint(out).state_dict(), load_checkpoint(tuned).state_dict()
    # The exported EMA averages from the first step (no warm-up), so 6 big steps barely move the trained weights.
    assert all(torch.allclose(before[k], after[k], atol=1e-3) for k in before)
    args[args.index("--base-channels") + 1] = "16"
    result = run(
        *args[: args.index("--out") + 1],
        tmp_path / "other.safetensors",
        *args[args.index("--out") + 2 :],
        "--init",
        out,
    )
    assert result.exit_code == 2 and "another architecture" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--batch-size", "0", "--batch-size must be at least 1"),
        ("--crop", "20", "--crop must be a multiple of 8"),
        ("--steps", "0", "--steps must be at least 1"),
        ("--save-every", "0", "--save-every must be at least 1"),
        ("--stop-at", "0", "--stop-at must be at least 1"),
        ("--base-channels", "20", "must be a multiple of 8"),
        ("--workers", "-1", "--workers must be at least 0"),
        ("--refine-share", "0.6", "--refine-share must be in [0, 1 - --final-step-share]"),
        ("--native-share", "1.5", "--native-share must be in [0, 1]"),
        ("--init", "missing.safetensors", "--init missing.safetensors: no such checkpoint file"),
    ],
)
def test_train_options_are_checked_before_any_work(tmp_path, option, value, message):
    result = run("train", "--data", tmp_path, "--out", tmp_path / "m.safetensors", option, value, "--device", "cpu")
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: 9 GB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"),
    ],
)
def test_out_of_memory_names_the_option_that_fixes_it(dark_jpeg, tiny_checkpoint, monkeypatch, error):
    import lowlight_cli.pipeline as pipeline

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipeline, "sample_residual", exhausted)
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1
    assert "out of memory" in result.output and "--work-size" in result.output
    assert "Traceback" not in result.output


def test_cli_defaults_match_the_library():
    """The CLI's options are made from the torch-free settings, whose defaults the pipeline uses."""
    from lowlight_cli import settings
    from lowlight_cli.cli.options import OPTIONS

    assert OPTIONS["steps"].default == settings.DEFAULT_STEPS
    assert OPTIONS["work_size"].default == settings.DEFAULT_WORK_SIZE
    assert OPTIONS["detail_threshold"].default == settings.DEFAULT_DETAIL_THRESHOLD
    assert OPTIONS["shadow_denoise"].default == settings.DEFAULT_SHADOW_DENOISE
    assert -OPTIONS["exposure"].min == OPTIONS["exposure"].max == settings.MAX_EXPOSURE


def test_detail_threshold_trades_grain_for_texture(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(0)
    # Dark, grainy, flat, and longer than the size up to which photos are sampled directly (no reconstruction).
    noisy = np.clip(40 + rng.normal(0, 12, (64, 704, 3)), 0, 255).astype(np.uint8)
    source = tmp_path / "grain.png"
    Image.fromarray(noisy).save(source)
    detail = {}
    for threshold in ("0", "4"):
        out = tmp_path / f"out_{threshold}.png"
        result = run("enhance", source, "-o", out, "--model", tiny_checkpoint, *FAST, "--detail-threshold", threshold)
        assert result.exit_code == 0, result.output
        image = np.asarray(Image.open(out), np.float32)
        detail[threshold] = np.abs(np.diff(image, axis=1)).mean()
    assert detail["0"] > 1.5 * detail["4"]
    result = run(
        "enhance", source, "-o", tmp_path / "bad.png", "--model", tiny_checkpoint, *FAST, "--detail-threshold", "-1"
    )
    assert result.exit_code == 2 and not (tmp_path / "bad.png").exists()


def test_exposure_biases_brightness_through_the_tone_branch(tmp_path, dark_jpeg, tiny_checkpoint):
    from lowlight_cli.models.checkpoint import save_checkpoint
    from tests.conftest import tiny_model

    toned = tmp_path / "toned.safetensors"
    save_checkpoint(tiny_model(tone_curve=True), toned)
    means = {}
    for ev in ("-1", "0", "1"):
        out = tmp_path / f"ev{ev}.png"
        result = run("enhance", dark_jpeg, "-o", out, "--model", toned, *FAST, "--exposure", ev)
        assert result.exit_code == 0, result.output
        means[ev] = np.asarray(Image.open(out), np.float32).mean()
    assert means["-1"] < 0.9 * means["0"] and means["1"] > 1.1 * means["0"], means
    # A model without a tone branch runs at 0 as before, and refuses a bias in one line.
    result = run(
        "enhance", dark_jpeg, "-o", tmp_path / "plain.png", "--model", tiny_checkpoint, *FAST, "--exposure", "0.5"
    )
    assert result.exit_code == 2 and "needs a model with a tone branch" in result.output
    assert not (tmp_path / "plain.png").exists()
    result = run("enhance", dark_jpeg, "--exposure", "5")
    assert result.exit_code == 2 and "--exposure" in result.output


@pytest.mark.parametrize("command", ["enhance", "batch", "video", "eval"])
def test_every_enhancing_command_takes_exposure(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "--exposure" in result.output and "EV" in result.output


def test_verbose_and_quiet_are_accepted_after_the_subcommand(dark_jpeg, tiny_checkpoint):
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *FAST, "-v")
    assert result.exit_code == 0, result.output
    assert "model: " in result.output and "regions in" in result.output
    result = run("enhance", dark_jpeg, "--model", tiny_checkpoint, *FAST, "--overwrite", "-q")
    assert result.exit_code == 0 and result.output == ""
    result = run("models", "list", "--quiet")
    assert result.exit_code == 0 and "lowlight-default" in result.output


@pytest.mark.parametrize("command", [["enhance"], ["batch"], ["video"], ["eval"], ["train"], ["models", "download"]])
def test_help_is_in_panels_without_python_type_names(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for python_name in ("<bool>", "<int>", "<float", "<str>", "<path>", "list[", "{inputs", "{folder", "{source"):
        assert python_name not in result.output, python_name
    if command[0] in {"enhance", "batch", "video", "eval"}:
        for panel in ("Output" if command[0] != "eval" else "Look", "Model and prior", "Quality and speed", "Look"):
            assert f"─ {panel} ─" in result.output, panel
    if command == ["enhance"]:
        assert "Usage: lowlight enhance [OPTIONS] PHOTO..." in result.output
        flag = next(line for line in result.output.splitlines() if "--overwrite" in line)
        assert flag.split()[1:3] == ["--overwrite", "Replace"]  # a flag: no placeholder after it
    if command == ["train"]:
        assert "─ Schedule ─" in result.output and "auto, which trains on the built-in prior" in result.output


def test_shell_completion_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from lowlight_cli.cli import app; "
        "r = CliRunner().invoke(app, ['--show-completion', 'bash']); assert r.exit_code == 0, r.output; "
        "assert '_LOWLIGHT_COMPLETE' in r.output, r.output; "
        "r = CliRunner().invoke(app, [], prog_name='lowlight', env={'_LOWLIGHT_COMPLETE': 'complete_bash', "
        "'COMP_WORDS': 'lowlight ba', 'COMP_CWORD': '1'}); assert r.output.split() == ['batch'], r.output; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    # Typer takes `bash` as --show-completion's value only with shell detection off; with it on, the flag
    # detects the parent process's shell, which depends on how the suite was started.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize(
    "args", [["enhance", "missing.jpg"], ["batch", "missing"], ["video", "missing.mp4"], ["eval", "--data", "missing"]]
)
def test_missing_inputs_fail_before_torch_is_imported(tmp_path, args):
    code = (
        "import sys; from typer.testing import CliRunner; from lowlight_cli.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 1, r.output; "
        "assert 'missing' in r.output and len(r.output.strip().splitlines()) == 1, r.output; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def bad_photos(folder: Path) -> list[Path]:
    """The four bad files of issue 31: a cut-off JPEG, text named .jpg, a GIF, a 3-page TIFF."""
    import tifffile

    folder.mkdir(exist_ok=True)
    Image.fromarray(dark_array()).save(folder / "whole.jpg")
    data = (folder / "whole.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 2])
    (folder / "whole.jpg").unlink()
    (folder / "text.jpg").write_text("not a photo")
    Image.fromarray(dark_array()).save(folder / "anim.gif")
    with tifffile.TiffWriter(folder / "scan.tif") as tif:
        for seed in range(3):
            tif.write(dark_array(16, 16, seed=seed), photometric="rgb")
    return [folder / name for name in ("corrupt.jpg", "text.jpg", "anim.gif", "scan.tif")]


def test_bad_photos_fail_before_torch_is_imported(tmp_path):
    """Each fails with its reason, and no model loads: torch is never imported, so they fail in well under a second."""
    names = [path.name for path in bad_photos(tmp_path)]
    code = (
        "import sys; from typer.testing import CliRunner; from lowlight_cli.cli import app; "
        f"r = CliRunner().invoke(app, ['enhance', *{names!r}]); assert r.exit_code == 1, r.output; "
        "assert '0 enhanced, 4 failed' in r.output, r.output; "
        f"assert all('failed ' + n + ': ' in r.output for n in {names!r}), r.output; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_quality_keeps_the_inputs_or_takes_the_option(tmp_path, tiny_checkpoint):
    from lowlight_cli.io.images import jpeg_quality

    source = tmp_path / "q70.jpg"
    Image.fromarray(dark_array()).save(source, quality=70)
    png = tmp_path / "lossless.png"
    Image.fromarray(dark_array()).save(png)
    assert jpeg_quality(source) == 70 and jpeg_quality(png) is None
    for extra, name, expected in ([], "kept.jpg", 70), (["--quality", "40"], "forty.jpg", 40):
        result = run("enhance", source, "-o", tmp_path / name, "--model", tiny_checkpoint, *FAST, *extra)
        assert result.exit_code == 0, result.output
        assert jpeg_quality(tmp_path / name) == expected
    result = run("enhance", png, "--format", "jpg", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert jpeg_quality(tmp_path / "lossless_enhanced.jpg") == 95
    result = run("enhance", source, "--quality", "0")
    assert result.exit_code == 2 and "--quality" in result.output


def test_dash_reads_stdin_and_writes_stdout(tmp_path, dark_jpeg, tiny_checkpoint):
    import io

    png = io.BytesIO()
    Image.fromarray(dark_array()).save(png, format="PNG")
    result = runner.invoke(app, ["enhance", "-", "--model", str(tiny_checkpoint), *FAST], input=png.getvalue())
    assert result.exit_code == 0, result.output
    out = Image.open(io.BytesIO(result.stdout_bytes))
    assert out.format == "PNG" and out.size == (64, 48)  # the input's format when --format is not given
    assert np.asarray(out).mean() > 2 * dark_array().mean()
    result = runner.invoke(
        app, ["enhance", str(dark_jpeg), "-o", "-", "--format", "webp", "--model", str(tiny_checkpoint), *FAST]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(io.BytesIO(result.stdout_bytes)).format == "WEBP"
    assert sorted(p.name for p in dark_jpeg.parent.iterdir()) == [dark_jpeg.name]  # nothing written beside it
    result = runner.invoke(app, ["enhance", "-"], input=b"not an image")
    assert result.exit_code == 1 and "standard input: not a supported image" in result.output
    result = run("enhance", "-", dark_jpeg)
    assert result.exit_code == 2 and "single input" in result.output


def test_a_file_named_like_an_option_gets_a_one_line_hint(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(dark_array()).save("-dark.png")
    result = run("enhance", "-dark.png")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: -dark.png: a name starting with '-' is read as an option; write ./-dark.png or put -- before it"
    )
    result = run("enhance", "--model", tiny_checkpoint, *FAST, "--", "-dark.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "-dark_enhanced.png").size == (64, 48)
    result = run("enhance", "--bogus", "x.jpg")
    assert result.exit_code == 2 and "No such option: --bogus" in result.output


def test_readme_setup_is_what_ci_runs():
    """README's test command is the one .ci/run runs, so following README is what CI checks."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv && ")]
    tested = [command for command in commands if command.endswith("python -m pytest -q")]
    assert len(tested) == 1
    ci = [line for line in (root / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == tested[0]


def test_the_readme_stays_a_page_for_users():
    """Issue 32: README at most 250 lines and no line over 400 characters; the lab notes live in EXPERIMENTS."""
    lines = (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert [n for n, line in enumerate(lines, 1) if len(line) > 400] == []


def test_the_readme_examples_output_is_git_ignored():
    """Following README's first command leaves no new file for `git status` to show."""
    import fnmatch
    import re

    root = Path(__file__).resolve().parent.parent
    outputs = re.findall(r"# -> (examples/\S+)", (root / "README.md").read_text())
    assert outputs, "README's install line names its output"
    patterns = [line for line in (root / ".gitignore").read_text().splitlines() if line and line[0] not in "#!"]
    for output in outputs:
        assert any(fnmatch.fnmatch(output, pattern) for pattern in patterns), output


def test_every_package_is_in_the_wheel():
    """Packages are found automatically, as setuptools finds them from pyproject's `packages.find`: every package
    under `lowlight_cli/` and the bundled weights (a link to `weights/`), with the model among its package data."""
    import fnmatch

    import tomllib
    from setuptools.discovery import PEP420PackageFinder

    root = Path(__file__).resolve().parent.parent
    setuptools_config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(PEP420PackageFinder.find(str(root), **setuptools_config["packages"]["find"]))
    packages = {".".join(path.parent.relative_to(root).parts) for path in (root / "lowlight_cli").rglob("__init__.py")}
    assert packages <= found, sorted(packages - found)
    assert "lowlight_cli.bundled_weights" in found
    bundled = root / "lowlight_cli" / "bundled_weights"
    assert bundled.resolve() == (root / "weights").resolve()
    data = setuptools_config["package-data"]["lowlight_cli.bundled_weights"]
    assert any(fnmatch.fnmatch("lowlight-default.safetensors", pattern) for pattern in data)
    assert (bundled / "lowlight-default.safetensors").is_file()


# How each dependency in pyproject is used: the module our code imports, or (None) why none of it is imported.
DEPENDENCY_USE = {
    "torch": "torch",
    "torchvision": None,  # segment-anything imports it (checked below); it lists no requirements of its own
    "segment-anything": "segment_anything",
    "typer": "typer",
    "rich": "rich",
    "pillow": "PIL",
    "pillow-heif": "pillow_heif",
    "rawpy": "rawpy",
    "tifffile": "tifffile",
    "opencv-python-headless": "cv2",
    "huggingface-hub": "huggingface_hub",
    "safetensors": "safetensors",
    "numpy": "numpy",
    "scikit-image": "skimage",
    "av": "av",
    "tomli": "tomli",  # settings/train.py reads recipes with it on Python 3.10 (tomllib from 3.11)
    "ray": "ray",
    "fsspec": "fsspec",
    "s3fs": None,  # fsspec loads it for s3:// (storage.PROTOCOL_PACKAGES names it)
    "gcsfs": None,  # and this for gs://
    "pytest": "pytest",
    "hypothesis": "hypothesis",
    "transformers": "transformers",  # tests/test_sam.py: our SAM checkpoint conversion against transformers' SamModel
    "pytest-timeout": None,  # pytest.mark.timeout in tests/test_ray_batch.py
    "lowlight-cli": None,  # the test extra pulls in the ray extra
    "moto": "moto",
    "boto3": "boto3",
    "ruff": None,  # .ci/run lints and formats with it
    "mypy": None,  # .ci/run type-checks with it
}


def test_every_dependency_is_used_where_it_is_listed():
    """Nothing in pyproject is installed for nothing: the package imports its dependencies and the [ray] extra's,
    the tests import the [test] extra's (or use them as named above)."""
    import re

    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return [re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower() for requirement in requirements]

    def imported(module, folder):
        pattern = re.compile(rf"^\s*(import|from) {module}[\s.]|importorskip\(\"{module}[\".]", re.M)
        return any(pattern.search(path.read_text()) for path in (root / folder).rglob("*.py"))

    listed = {
        "lowlight_cli": names(project["dependencies"] + project["optional-dependencies"]["ray"]),
        "tests": names(project["optional-dependencies"]["test"]),
    }
    for folder, dependencies in listed.items():
        for name in dependencies:
            assert name in DEPENDENCY_USE, f"{name}: say in DEPENDENCY_USE what it is for"
            module = DEPENDENCY_USE[name]
            assert module is None or imported(module, folder), f"{name} is listed for {folder} but never imported"
    assert "s3fs" in (root / "lowlight_cli" / "storage.py").read_text()
    assert "timeout" in (root / "tests" / "test_ray_batch.py").read_text()
    import importlib.util

    spec = importlib.util.find_spec("segment_anything")  # located, not imported (that would import torch)
    assert spec is not None and spec.origin is not None
    assert imported("torchvision", Path(spec.origin).parent)


@pytest.mark.parametrize(
    "args",
    [
        ["enhance"],
        ["enhance", "x.jpg", "--steps", "abc"],
        ["enhance", "x.jpg", "--bogus"],
        ["batch"],
        ["enhance", "x.jpg", "--device", "tpu"],
        ["video"],
        ["video", "x.mp4", "--fps", "abc"],
        ["enhnace", "x.jpg"],
        ["models", "download"],
        ["models", "download", "sam-vit-z"],
        ["models", "path", "sam-vit-z"],
        ["info", "extra"],
    ],
)
def test_a_wrong_command_line_is_one_line_and_exit_code_2(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: "), result.output
