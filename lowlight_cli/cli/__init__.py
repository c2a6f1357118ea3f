"""The `lowlight` command line: parse options, build the settings, call the library, print.

One module per command group: `photos` (enhance, batch), `video`, `evaluate`
(eval), `models` (info, models …), `train`; `app` holds the typer app, the
help panels and the error handling, `options` the enhancing commands' options
made from `settings.EnhanceSettings`. Heavy modules (torch, cv2, the pipeline)
are imported inside commands, so that `lowlight --help` and `--version`
answer instantly without torch.
"""

from lowlight_cli.cli import photos, video, evaluate, models, train  # noqa: F401,I001 (each registers its commands, in help order)
from lowlight_cli.cli.app import app

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
