"""lowlight-cli: SAM prior-guided conditional diffusion for low-light photos and video.

This module must stay free of heavy imports: `lowlight --help` and `--version`
import it, and they must answer without loading torch.
"""

import os

__version__ = "0.1.0"

# MPS lacks some ops segment-anything uses. Torch reads this switch once, when it is first imported, and
# every entry point imports this package before torch, so this is the one place where it takes effect.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
