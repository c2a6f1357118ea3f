"""Where lowlight-cli keeps its own cached files: SAM priors and checkpoint verification stamps.

`$XDG_CACHE_HOME/lowlight-cli`, else `~/.cache/lowlight-cli`. The variable is
read on every call, so a wrapper or a test that sets it later is honoured.
Downloaded checkpoints are not here: they live in the Hugging Face cache.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "lowlight-cli"
