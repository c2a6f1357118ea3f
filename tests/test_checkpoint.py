"""Checkpoint round-trip and validation of config and tensors."""

import json

import pytest
import torch
from safetensors.torch import save_file

from lowlight_cli.errors import WeightsError
from lowlight_cli.models import ModelConfig
from lowlight_cli.models.checkpoint import CONFIG_KEY, FORMAT_KEY, load_checkpoint, read_provenance, save_checkpoint
from tests.conftest import TINY, tiny_model


def test_round_trip_keeps_config_weights_and_provenance(tmp_path):
    model = tiny_model()
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, provenance={"steps": 3}, dtype=torch.float32)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert read_provenance(path) == {"steps": 3}


def test_fp16_export_is_close(tmp_path):
    model = tiny_model()
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    a = model.state_dict()["stem.weight"]
    assert torch.allclose(a, loaded.state_dict()["stem.weight"], atol=1e-3)


def test_other_architecture_is_refused_with_the_mismatch_named(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(tiny_model(), path)
    tensors = {k: v for k, v in __import__("safetensors.torch").torch.load_file(str(path)).items()}
    other = ModelConfig(**{**TINY, "base_channels": 16})
    save_file(tensors, str(path), metadata={CONFIG_KEY: other.to_json(), FORMAT_KEY: "1"})
    with pytest.raises(WeightsError, match="does not match its config"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "not a valid .safetensors"),
        (b"PK\x03\x04 a pickle-style zip", "not a valid .safetensors"),
    ],
)
def test_non_safetensors_files_are_refused(tmp_path, payload, message):
    path = tmp_path / "m.safetensors"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(tiny_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        load_checkpoint(path)


def test_missing_config_and_bad_config(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match="no lowlight model config"):
        load_checkpoint(path)
    save_file({"x": torch.zeros(1)}, str(path), metadata={CONFIG_KEY: json.dumps({"wings": 2}), FORMAT_KEY: "1"})
    with pytest.raises(WeightsError, match="unknown fields"):
        load_checkpoint(path)
    with pytest.raises(WeightsError, match="target_brightness"):
        ModelConfig(target_brightness=2.0)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
