"""Networks: the conditional denoiser and the SAM Prior Encoder that feeds it."""

from lowlight_cli.models.config import ModelConfig
from lowlight_cli.models.denoiser import PriorGuidedDenoiser

__all__ = ["ModelConfig", "PriorGuidedDenoiser"]
