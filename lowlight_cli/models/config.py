"""The model configuration stored as JSON in every checkpoint's metadata.

Keeping architecture sizes, the noise schedule and the conditioning recipe in
one validated dataclass is what lets a `.safetensors` file be self-describing:
loading never guesses, and a mismatch is reported by field name.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from lowlight_cli.errors import WeightsError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, schedule and conditioning of one denoiser checkpoint."""

    base_channels: int = 24
    channel_mults: tuple[int, ...] = (1, 2, 4, 6)
    token_dim: int = 64
    attn_heads: int = 4
    max_regions: int = 64
    use_prior: bool = True
    diffusion: bool = True
    # Query the last timestep with the noise's mean (zeros) instead of a draw: see diffusion/sampling.py.
    mean_start: bool = False
    # Side of the blocks the structural prior map is averaged over before the stem (1 = full resolution):
    # region colour at a coarse scale, without the segmenter's jagged borders as false edges.
    prior_map_scale: int = 1
    # A global tone branch (models/tone.py) develops the base from a thumbnail of the whole photo;
    # False: the parameter-free luminance auto-gamma of condition.brighten (the first release's base).
    tone_curve: bool = False
    # The tone branch also judges the black point and the local exposure (models/tone.py, `look` head).
    tone_look: bool = False
    num_train_timesteps: int = 1000
    residual_scale: float = 2.0
    target_brightness: float = 0.42
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        problems = []
        if self.base_channels < 4 or self.base_channels % self.attn_heads:
            problems.append(f"base_channels={self.base_channels} must be >=4 and divisible by attn_heads")
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            problems.append(f"channel_mults={self.channel_mults} must be positive")
        elif any(self.base_channels * m % min(8, self.base_channels * m) for m in self.channel_mults):
            problems.append(f"base_channels={self.base_channels} must be a multiple of 8 (group normalisation)")
        if self.token_dim % self.attn_heads:
            problems.append(f"token_dim={self.token_dim} must be divisible by attn_heads={self.attn_heads}")
        if self.max_regions < 1:
            problems.append("max_regions must be >= 1")
        if self.prior_map_scale < 1:
            problems.append("prior_map_scale must be >= 1")
        if self.num_train_timesteps < 2:
            problems.append("num_train_timesteps must be >= 2")
        if not 0.05 <= self.target_brightness <= 0.9:
            problems.append("target_brightness must be in [0.05, 0.9]")
        if problems:
            raise WeightsError("invalid model config: " + "; ".join(problems))

    @property
    def downsample_factor(self) -> int:
        """Input sides must be a multiple of this (the sampler pads to it)."""
        return 2 ** (len(self.channel_mults) - 1)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"checkpoint config is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise WeightsError("checkpoint config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise WeightsError(f"checkpoint config has unknown fields {unknown}: made by a newer lowlight-cli?")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise WeightsError(f"checkpoint config is malformed: {exc}") from None
