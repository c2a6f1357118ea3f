"""Settings: what a user can choose, as validated, torch-free dataclasses whose fields the CLI options are made from.

`EnhanceSettings` (enhance.py: every enhancing command and the Python API),
`VideoSettings` (video.py: `lowlight video`'s own), `TrainSettings`
(train.py: `lowlight train`, and recipe files of them). The names the
registries hold (prior kinds, SAM sizes) are in names.py. Each default and
help text is written once, in its dataclass; a bad value is a `SettingError`
(common.py) that names the setting and words it as its command-line option.
"""

from lowlight_cli.settings.common import SettingError, check_choice, option_name
from lowlight_cli.settings.enhance import (
    DEFAULT_DETAIL_THRESHOLD,
    DEFAULT_DIRECT_SIZE,
    DEFAULT_MODEL,
    DEFAULT_SHADOW_DENOISE,
    DEFAULT_STEPS,
    DEFAULT_TILE,
    DEFAULT_WORK_SIZE,
    DEVICE_CHOICES,
    HIGHLIGHT_MODES,
    MAX_EXPOSURE,
    EnhanceSettings,
    check_steps,
)
from lowlight_cli.settings.names import PRIOR_KINDS, SAM_MODEL_TYPES
from lowlight_cli.settings.train import TrainSettings
from lowlight_cli.settings.video import VideoSettings

__all__ = [
    "DEFAULT_DETAIL_THRESHOLD",
    "DEFAULT_DIRECT_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_SHADOW_DENOISE",
    "DEFAULT_STEPS",
    "DEFAULT_TILE",
    "DEFAULT_WORK_SIZE",
    "DEVICE_CHOICES",
    "HIGHLIGHT_MODES",
    "MAX_EXPOSURE",
    "PRIOR_KINDS",
    "SAM_MODEL_TYPES",
    "EnhanceSettings",
    "SettingError",
    "TrainSettings",
    "VideoSettings",
    "check_choice",
    "check_steps",
    "option_name",
]
