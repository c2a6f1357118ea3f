"""`settings.EnhanceSettings`: defaults, validation that names the setting, and the options made from it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from lowlight_cli.errors import UsageError
from lowlight_cli.settings import (
    DEFAULT_DIRECT_SIZE,
    MAX_EXPOSURE,
    EnhanceSettings,
    SettingError,
    check_steps,
    option_name,
)


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
    assert info.value.setting == setting and str(info.value) == message
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_changes_are_validated_and_paths_normalised(tmp_path):
    settings = EnhanceSettings(model=tmp_path / "m.safetensors", sam_checkpoint=str(tmp_path / "sam.safetensors"))
    assert settings.model == str(tmp_path / "m.safetensors")
    assert settings.sam_checkpoint == tmp_path / "sam.safetensors" and isinstance(settings.sam_checkpoint, Path)
    assert settings.with_changes(steps=4).steps == 4 and settings.steps == 1
    with pytest.raises(SettingError, match="--exposure"):
        settings.with_changes(exposure=-MAX_EXPOSURE - 0.1)
    with pytest.raises(SettingError, match="--highlights 'glow' is not one of curve, local"):
        settings.with_changes(highlights="glow")
    assert settings.describe() == "1 steps, work size 384, prior auto, exposure +0 EV, highlights curve"


def test_steps_are_checked_against_the_schedule_length_in_one_place():
    check_steps(50, 50)
    with pytest.raises(SettingError, match="--steps must be at most 50 \\(the schedule length\\), got 51"):
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
