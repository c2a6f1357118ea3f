"""Where a model's weights are: the one resolver for the bundled denoiser, Hub checkpoints and SAM.

`hub.py` knows the Hub checkpoints (registry, verified download, cache);
this module answers "which file do I load?" for every name a user can give:
`default` (the denoiser bundled with the package), a `.safetensors` path, a
registry name (`sam-vit-b`), or a SAM size (`vit_b`) with an optional local
file. The Hub client is imported only when a Hub name is asked for, so
enhancing with the bundled model never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lowlight_cli.errors import Setting, WeightsError
from lowlight_cli.settings import DEFAULT_MODEL
from lowlight_cli.settings.names import sam_size

BUNDLED_NAMES = {"default", DEFAULT_MODEL}


def default_model_path() -> Path:
    """The checkpoint installed with the package: `lowlight_cli.bundled_weights`, the repo's top-level `weights/`
    folder (installed as that package; in a source checkout, `lowlight_cli/bundled_weights` links to it)."""
    return Path(str(resources.files("lowlight_cli.bundled_weights").joinpath(f"{DEFAULT_MODEL}.safetensors")))


def resolve_model_path(model: str | Path, setting: str = "model") -> Path:
    """`default`/`lowlight-default` → the bundled file; anything else must be a .safetensors path.

    `setting` names the setting the path came from, for the error message.
    """
    if str(model) in BUNDLED_NAMES:
        path = default_model_path()
        if not path.exists():
            raise WeightsError(
                f"the bundled default model is missing ({path}); reinstall lowlight-cli or pass ",
                Setting(setting),
                " PATH",
            )
        return path
    path = Path(model)
    if not path.exists():
        raise WeightsError(
            Setting(setting), f" {model}: no such checkpoint file (use 'default' or a .safetensors path)"
        )
    return path


def locate_sam_checkpoint(sam_model: str, sam_checkpoint: Path | None, download: bool) -> Path | None:
    """The SAM weights to use: an explicit file, else the HF cache, else (if `download`) a fresh download.

    None means "not available locally and not allowed to download" (`--prior auto`).
    """
    name = sam_size(sam_model).checkpoint
    if sam_checkpoint is not None:
        path = Path(sam_checkpoint).expanduser()
        if not path.is_file():
            raise WeightsError(Setting("sam_checkpoint"), f" {sam_checkpoint} not found")
        return path
    from lowlight_cli.checkpoints import hub

    cached = hub.find_cached(name)
    if cached is not None:
        return Path(cached)
    return Path(hub.fetch_checkpoint(name)) if download else None


def cached_path(name: str) -> Path:
    """`lowlight models path NAME`: the local file of a known checkpoint (error if it is not downloaded)."""
    if name in BUNDLED_NAMES:
        return default_model_path()
    from lowlight_cli.checkpoints import hub

    path = hub.find_cached(name)
    if path is None:
        raise WeightsError(f"{name} is not downloaded (run `lowlight models download {name}`)")
    return path


@dataclass
class KnownModel:
    """One row of `lowlight models list` / `lowlight info`."""

    name: str
    kind: str
    source: str
    state: str
    description: str
    path: Path | None


def known_models() -> list[KnownModel]:
    """The bundled denoiser and every Hub checkpoint, with where each is (None: not on disk)."""
    from lowlight_cli.checkpoints import hub

    bundled = default_model_path()
    rows = [
        KnownModel(
            DEFAULT_MODEL,
            "denoiser",
            "bundled",
            "present" if bundled.exists() else "MISSING",
            "bundled diffusion model (weights/README.md)",
            bundled if bundled.exists() else None,
        )
    ]
    for name, entry in hub.REGISTRY.items():
        path = hub.find_cached(name)
        rows.append(
            KnownModel(
                name,
                entry.kind,
                f"{entry.repo_id}@{entry.revision[:8]}",
                "cached" if path else "not downloaded",
                entry.description,
                path,
            )
        )
    return rows
