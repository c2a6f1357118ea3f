"""lowlight-cli: SAM prior-guided conditional diffusion for low-light photos and video.

This module must stay free of heavy imports: `lowlight --help` and `--version`
import it, and they must answer without loading torch.
"""

__version__ = "0.1.0"
