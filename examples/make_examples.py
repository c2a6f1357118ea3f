"""Regenerate the example dark photos from Kodak images with our own low-light synthesis.

    python examples/make_examples.py ../shared/data/normal

Each example fixes one draw of the degradation (exposure, white-balance cast,
shot/read noise on the Bayer mosaic, the camera's white-balance gains, JPEG)
so the files are reproducible byte for byte on one platform.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight_cli.training.synth import DarkeningParams, darken

EXAMPLES = {
    # name: (Kodak source, exposure, (R, G, B) gains, shot, read, JPEG quality, seed)
    "kodim03_dark_warm.jpg": ("kodak24_kodim03.jpg", 1 / 14, (1.35, 1.0, 0.65), 4e-3, 2e-3, 90, 1),
    "kodim05_dark_noisy.jpg": ("kodak24_kodim05.jpg", 1 / 30, (1.0, 1.0, 1.0), 8e-3, 4e-3, 90, 2),
    "kodim15_dark_cool.jpg": ("kodak24_kodim15.jpg", 1 / 10, (0.7, 1.0, 1.4), 3e-3, 1.5e-3, 90, 3),
    "kodim23_dark_sodium.jpg": ("kodak24_kodim23.jpg", 1 / 20, (1.5, 1.05, 0.5), 5e-3, 3e-3, 90, 4),
}
SENSOR_GAINS = (2.0, 1.0, 1.6)  # a typical camera's daylight white-balance multipliers


def main(normal_dir: Path, out_dir: Path) -> None:
    for name, (source, exposure, gains, shot, read, quality, seed) in EXAMPLES.items():
        image = np.asarray(Image.open(normal_dir / source).convert("RGB")).astype(np.float32) / 255.0
        params = DarkeningParams(exposure=exposure, wb_gains=gains, shot=shot, read=read, jpeg_quality=None,
                                 sensor_gains=SENSOR_GAINS)
        dark = darken(image, params, np.random.default_rng(seed))
        Image.fromarray(dark).save(out_dir / name, quality=quality)
        print(out_dir / name)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/normal"), Path(__file__).parent)
