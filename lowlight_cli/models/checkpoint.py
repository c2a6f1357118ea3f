"""Checkpoint files: one `.safetensors` per model, config JSON in its metadata.

Only safetensors is ever read, so a checkpoint cannot execute code. Loading
checks the metadata, then every tensor name and shape against the model the
config describes, and names the first mismatches instead of failing deep in
`load_state_dict`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lowlight_cli.errors import WeightsError
from lowlight_cli.io.atomic import atomic_path
from lowlight_cli.models.config import FORMAT_VERSION, ModelConfig
from lowlight_cli.models.denoiser import PriorGuidedDenoiser

CONFIG_KEY = "lowlight_config"
FORMAT_KEY = "lowlight_format"
PROVENANCE_KEY = "lowlight_provenance"


def save_checkpoint(
    model: PriorGuidedDenoiser, path: str | Path, provenance: dict | None = None, dtype: torch.dtype = torch.float16
) -> None:
    """Write `model` (weights cast to `dtype`) atomically with its config and provenance."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        CONFIG_KEY: model.config.to_json(),
        FORMAT_KEY: str(FORMAT_VERSION),
        PROVENANCE_KEY: json.dumps(provenance or {}, sort_keys=True),
    }
    with atomic_path(path, suffix=".tmp", fsync=False) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata, or a `WeightsError` if the file is not a valid safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except FileNotFoundError:
        raise WeightsError(f"checkpoint not found: {path}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a valid .safetensors checkpoint ({exc})") from None


def read_config(path: str | Path) -> ModelConfig:
    """The model config of a checkpoint, from its header alone (no weights are read)."""
    metadata = read_metadata(path)
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path} has no lowlight model config in its metadata: not a lowlight-cli checkpoint")
    if metadata.get(FORMAT_KEY) != str(FORMAT_VERSION):
        raise WeightsError(f"{path} has checkpoint format {metadata.get(FORMAT_KEY)!r}, expected {FORMAT_VERSION}")
    return ModelConfig.from_json(metadata[CONFIG_KEY])


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> PriorGuidedDenoiser:
    """Build the model the checkpoint's config describes and load its weights (float32, eval mode)."""
    model = PriorGuidedDenoiser(read_config(path))
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is truncated or corrupt ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if wrong:
            parts.append(f"shape of {wrong[0]} is {found[wrong[0]]}, config expects {expected[wrong[0]]}")
        raise WeightsError(f"{path} does not match its config's architecture: " + "; ".join(parts))
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.to(device).eval()


def read_provenance(path: str | Path) -> dict:
    """Training provenance stored by `save_checkpoint` (empty if none)."""
    try:
        return json.loads(read_metadata(path).get(PROVENANCE_KEY, "{}"))
    except json.JSONDecodeError:
        return {}
