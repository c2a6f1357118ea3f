"""lowlight-cli: SAM prior-guided conditional diffusion for low-light photos and video.

Python API: `from lowlight_cli import enhance, Enhancer` (see `lowlight_cli.api`).

This module must stay free of heavy imports: `lowlight --help` and `--version`
import it, and they must answer without loading torch. So `enhance` and
`Enhancer` are looked up on first use (module `__getattr__`), not imported here.
"""

import os
from typing import Any

__version__ = "0.1.0"
__all__ = ["Enhancer", "__version__", "enhance"]

# MPS lacks some ops segment-anything uses. Torch reads this switch once, when it is first imported, and
# every entry point imports this package before torch, so this is the one place where it takes effect.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
# NumPy asks the kernel for transparent huge pages on every large array; where the kernel compacts memory to
# find them on request (defrag "madvise", a common default), each fresh 48 MB plane can stall for a tenth of
# a second. A photo's arrays are large and short-lived: without the request a 12 MP `lowlight enhance` took
# 6.3-7.0 s on the 2-core development CPU, with it 10.4-15.3 s. NumPy reads the switch when first imported.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

_API = {"enhance", "Enhancer"}


def __getattr__(name: str) -> Any:
    """Import the API (and with it torch) only when `enhance` or `Enhancer` is first asked for."""
    if name in _API:
        from lowlight_cli import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
