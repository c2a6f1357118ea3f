"""The settings (enhance, video, train): defaults, validation that names the setting, the options made from them,
and the recipe files of training settings."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from lowlight_cli.cli.app import flag
from lowlight_cli.errors import UsageError
from lowlight_cli.settings import (
    DEFAULT_DIRECT_SIZE,
    MAX_EXPOSURE,
    EnhanceSettings,
    SettingError,
    TrainSettings,
    VideoSettings,
    check_steps,
    option_name,
)
from lowlight_cli.settings.video import DEFAULT_SMOOTHING


def test_defaults_are_the_documented_ones():
    settings = EnhanceSettings()
    assert (settings.model, settings.device, settings.prior, settings.sam_model) == ("default", "auto", "auto", "vit_b")
    assert (settings.steps, settings.seed, settings.work_size, settings.tile) == (1, 0, 384, 512)
    assert (settings.detail_threshold, settings.shadow_denoise, settings.exposure) == (2.0, 0.5, 0.0)
    assert (settings.full_res, settings.sam_checkpoint, settings.direct_size) == (False, None, DEFAULT_DIRECT_SIZE)


@pytest.mark.parametrize(
    "changes, setting, message",
    [
        ({"steps": 0}, "steps", "--steps must be at least 1, got 0"),
        ({"work_size": 15}, "work_size", "--work-size must be at least 16 pixels, got 15"),
        ({"tile": 63}, "tile", "--tile must be at least 64 pixels, got 63"),
        ({"detail_threshold": -0.5}, "detail_threshold", "--detail-threshold must be at least 0, got -0.5"),
        ({"shadow_denoise": -1.0}, "shadow_denoise", "--shadow-denoise must be at least 0, got -1.0"),
        ({"exposure": 3.5}, "exposure", "--exposure must be within ±3 EV, got 3.5"),
        ({"direct_size": -1}, "direct_size", "direct_size must be at least 0, got -1"),
        ({"device": "tpu"}, "device", "--device 'tpu' is not one of auto, cuda, mps, cpu"),
        ({"prior": "magic"}, "prior", "--prior 'magic' is not one of auto, sam, fallback, none"),
        ({"sam_model": "vit_q"}, "sam_model", "--sam-model 'vit_q' is not one of vit_b, vit_l, vit_h"),
    ],
)
def test_a_bad_value_names_its_setting(changes, setting, message):
    with pytest.raises(SettingError) as info:
        EnhanceSettings(**changes)
    assert info.value.setting == setting and info.value.worded(flag) == message  # the CLI's words
    assert str(info.value) == f"{setting} {info.value.reason}"  # the library's: the setting's own name
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_changes_are_validated_and_paths_normalised(tmp_path):
    settings = EnhanceSettings(model=tmp_path / "m.safetensors", sam_checkpoint=str(tmp_path / "sam.safetensors"))
    assert settings.model == str(tmp_path / "m.safetensors")
    assert settings.sam_checkpoint == tmp_path / "sam.safetensors" and isinstance(settings.sam_checkpoint, Path)
    assert settings.with_changes(steps=4).steps == 4 and settings.steps == 1
    with pytest.raises(SettingError, match="^exposure"):
        settings.with_changes(exposure=-MAX_EXPOSURE - 0.1)
    with pytest.raises(SettingError, match="^highlights 'glow' is not one of auto, curve, local"):
        settings.with_changes(highlights="glow")
    assert settings.describe() == "1 steps, work size 384, prior auto, exposure +0 EV, highlights auto"


def test_steps_are_checked_against_the_schedule_length_in_one_place():
    check_steps(50, 50)
    with pytest.raises(SettingError, match="^steps must be at most 50 \\(the schedule length\\), got 51"):
        check_steps(51, 50)
    assert option_name("work_size") == "--work-size" and option_name("direct_size") == "direct_size"


def test_every_setting_with_a_flag_is_an_option_of_the_enhancing_commands():
    from lowlight_cli.cli.options import OPTIONS

    flagged = {item.name: item.metadata["flag"] for item in fields(EnhanceSettings) if item.metadata.get("flag")}
    assert set(OPTIONS) == set(flagged) == set(f.name for f in fields(EnhanceSettings)) - {"direct_size"}
    for name, option in OPTIONS.items():
        default = getattr(option.default, "value", option.default)
        assert option.param_decls[0] == flagged[name] and default == getattr(EnhanceSettings(), name)


def test_settings_and_the_cli_import_without_torch():
    code = (
        "import sys, lowlight_cli.settings, lowlight_cli.cli; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_video_settings_defaults_and_bad_values_name_their_setting():
    settings = VideoSettings()
    assert (settings.start, settings.end, settings.max_frames, settings.fps, settings.frame_format) == (None,) * 5
    assert settings.smoothing == DEFAULT_SMOOTHING == 0.8
    assert VideoSettings(frame_format=".PNG").frame_format == "png"
    for changes, setting, message in [
        ({"start": -1.0}, "start", "--start must be at least 0 seconds, got -1.0"),
        ({"start": 2.0, "end": 1.0}, "end", "--end (1.0) must be after --start (2.0)"),
        ({"max_frames": 0}, "max_frames", "--max-frames must be at least 1, got 0"),
        ({"smoothing": 1.0}, "smoothing", "--smoothing must be in [0, 1), got 1.0"),
        ({"fps": 0.0}, "fps", "--fps must be positive (the frame rate of a frames folder), got 0.0"),
        ({"frame_format": "gif"}, "frame_format", "--frame-format 'gif' is not one of png, jpg"),
    ]:
        with pytest.raises(SettingError) as info:
            VideoSettings(**changes)
        assert info.value.setting == setting and info.value.worded(flag) == message


@pytest.mark.parametrize(
    "changes, setting, message",
    [
        ({"steps": 0}, "steps", "--steps must be at least 1, got 0"),
        ({"crop": 20}, "crop", "--crop must be a multiple of 8 and at least 16, got 20"),
        ({"base_channels": 20}, "base_channels", "--base-channels must be a multiple of 8"),
        ({"workers": -1}, "workers", "--workers must be at least 0, got -1"),
        ({"lr": 0.0}, "lr", "--lr must be positive, got 0.0"),
        ({"ema_decay": 1.0}, "ema_decay", "--ema-decay must be in [0, 1), got 1.0"),
        ({"refine_share": 0.6}, "refine_share", "--refine-share must be in [0, 1 - --final-step-share], got 0.6"),
        ({"tone_parts": "look", "look": False}, "tone_parts", "--tone-parts look needs the look head (--look)"),
        ({"tone": False}, "tone_steps", "--tone-steps needs a tone branch: use --tone-steps 0 without one"),
        ({"refine_share": 0.2, "no_diffusion": True}, "refine_share", "needs a diffusion model (not --no-diffusion)"),
        ({"prior": "magic"}, "prior", "--prior 'magic' is not one of auto, sam, fallback, none"),
    ],
)
def test_a_bad_training_setting_names_its_setting(changes, setting, message):
    with pytest.raises(SettingError) as info:
        TrainSettings(**changes)
    assert info.value.setting == setting and message in info.value.worded(flag)


def test_training_settings_are_the_runs_defaults_and_need_data_and_out(tmp_path):
    from lowlight_cli.training.trainer import TrainOptions

    settings = TrainSettings(data=[str(tmp_path)], out=str(tmp_path / "m.safetensors"))
    assert settings.data == (tmp_path,) and settings.out == tmp_path / "m.safetensors"
    assert (settings.steps, settings.tone_steps, settings.batch_size, settings.lr) == (8000, 2500, 16, 2e-4)
    options = TrainOptions(data=[], out=tmp_path)
    shared = {item.name for item in fields(TrainOptions)} & {item.name for item in fields(TrainSettings)}
    resolved = {"data", "out", "init", "device", "workers"}  # TrainOptions holds them as prepare_run resolved them
    assert all(getattr(options, name) == getattr(TrainSettings(), name) for name in shared - resolved)
    assert shared >= {"steps", "ssim_weight", "tone_lr", "ema_decay", "native_share"}
    with pytest.raises(SettingError, match="^data names no folder"):
        TrainSettings().check_ready()
    with pytest.raises(SettingError, match="^out is needed"):
        TrainSettings(data=(tmp_path,)).check_ready()


def test_a_field_two_settings_share_has_one_flag_and_every_flag_is_an_option():
    from lowlight_cli.cli.options import options_of

    flags: dict[str, str] = {}
    for cls in (EnhanceSettings, VideoSettings, TrainSettings):
        options = options_of(cls)
        for item in fields(cls):
            flag = item.metadata.get("flag")
            if flag:
                assert flags.setdefault(item.name, flag) == flag, item.name
                default = getattr(options[item.name].default, "value", options[item.name].default)
                assert default == (",".join(map(str, item.default)) or None if item.name == "data" else item.default)
            assert item.metadata.get("help") or not flag, item.name
    assert option_name("tone") == "--tone" and option_name("smoothing") == "--smoothing"


RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_every_recipe_is_valid_training_settings(recipe):
    settings = TrainSettings.from_recipe(recipe)
    assert settings.data and settings.out is not None and settings.init is not None
    settings.check_ready()


def test_the_default_models_recipe_is_how_its_weights_were_trained():
    """recipes/lowlight-default.toml gives the options and the model config the shipped checkpoint records."""
    from lowlight_cli.checkpoints.locate import default_model_path
    from lowlight_cli.models.checkpoint import read_config, read_provenance
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.training.trainer import run_options

    assert [path.name for path in RECIPES].count("lowlight-default.toml") == 1
    settings = TrainSettings.from_recipe(next(path for path in RECIPES if path.name == "lowlight-default.toml"))
    config = ModelConfig(**settings.model_config_fields())
    assert config == read_config(default_model_path())
    provenance = read_provenance(default_model_path())
    ours = run_options(settings, settings.out, settings.init, "cpu", 0, config)
    machine = {"out", "init", "device", "workers", "resume"}
    assert {k: v for k, v in provenance["options"].items() if k not in machine} == {
        k: getattr(ours, k) for k in provenance["options"] if k not in machine
    }
    assert [Path(p).parts[-2:] for p in provenance["data"]] == [Path(p).parts[-2:] for p in settings.data]
    card = (default_model_path().parent / "README.md").read_text()
    assert "recipes/lowlight-default.toml" in card


def test_a_recipe_is_read_and_the_command_line_overrides_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import lowlight_cli.training.setup as setup
    from lowlight_cli.cli import app
    from lowlight_cli.errors import UsageError
    from lowlight_cli.settings.train import RecipeError

    recipe = tmp_path / "r.toml"
    recipe.write_text('data = ["a", "b"]\nout = "m.safetensors"\ncrop = 96\nssim_weight = 1\nlook = false\n')
    settings = TrainSettings.from_recipe(recipe, crop=64)
    assert settings.data == (Path("a"), Path("b")) and settings.crop == 64 and settings.ssim_weight == 1.0
    seen = []

    def prepare_run(settings, log):
        seen.append(settings)
        raise UsageError("stop")

    monkeypatch.setattr(setup, "prepare_run", prepare_run)
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe), "--crop", "128", "--no-teacher-gains"])
    assert result.exit_code == 2 and "stop" in result.output, result.output
    assert (seen[0].crop, seen[0].teacher_gains, seen[0].look, seen[0].ssim_weight) == (128, False, False, 1.0)
    assert seen[0].steps == TrainSettings().steps  # not in the file nor given: the default
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe), "--data", "c"])
    assert seen[1].data == (Path("c"),) and seen[1].out == Path("m.safetensors")

    recipe.write_text("crop = 100\n")
    with pytest.raises(RecipeError, match=r"r.toml: crop must be a multiple of 8") as info:
        TrainSettings.from_recipe(recipe)
    assert info.value.setting == "crop"
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe), "--crop", "20"])
    assert result.exit_code == 2 and "--crop must be a multiple of 8" in result.output  # the flag's own value
    for text, message in [
        ("crop = 1.5\n", "crop must be an integer, got 1.5"),
        ("ssim = 0.2\n", "no setting named ssim"),
        ("data = 'a'\n", "data must be a list of folders"),
        ("crop = \n", "not a TOML recipe"),
    ]:
        recipe.write_text(text)
        with pytest.raises(UsageError, match=message):
            TrainSettings.from_recipe(recipe)
    result = CliRunner().invoke(app, ["train", "--recipe", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1 and "cannot read the recipe" in result.output
