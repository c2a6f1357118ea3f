"""Make the before/after strips in examples/ from real dark photos.

    python benchmarks/strip.py ../shared/data/lowlight-samples examples/before_after.jpg --model default
    python benchmarks/strip.py ../shared/data/lowlight-samples examples/exposure.jpg --exposures=-1,0,1
    python benchmarks/strip.py ../shared/data/lowlight-samples examples/highlights.jpg --highlights curve,local

Top row: the dark inputs; below: lowlight-cli's output (default settings), one row per `--exposures` EV and
`--highlights` mode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from lowlight_cli.io.images import load_image
from lowlight_cli.pipeline import build
from lowlight_cli.settings import DEFAULT_STEPS

DEFAULT_NAMES = ["DICM_02.jpg", "LIME_3.jpg", "MEF_Candle.jpg", "DICM_22.jpg", "LIME_8.jpg", "MEF_Office.jpg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--prior", default="fallback")
    parser.add_argument("--height", type=int, default=240, help="row height in pixels")
    parser.add_argument("--names", default=",".join(DEFAULT_NAMES))
    parser.add_argument("--exposures", default="0", help="comma-separated --exposure values, one output row each")
    parser.add_argument("--highlights", default="auto", help="comma-separated --highlights modes, one row each")
    args = parser.parse_args()
    enhancers = [
        build(model=args.model, device="auto", prior=args.prior, steps=args.steps, exposure=float(ev), highlights=mode)
        for ev in args.exposures.split(",")
        for mode in args.highlights.split(",")
    ]
    rows: list[list[np.ndarray]] = [[] for _ in range(len(enhancers) + 1)]
    for name in args.names.split(","):
        rgb = load_image(args.folder / name).rgb
        width = round(rgb.shape[1] * args.height / rgb.shape[0])
        for row, image in zip(rows, [rgb] + [enhancer.enhance(rgb).rgb for enhancer in enhancers], strict=True):
            row.append(
                np.asarray(
                    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).resize((width, args.height), Image.LANCZOS)
                )
            )
        print(name)
    strip = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    Image.fromarray(strip).save(args.out, quality=90)
    print(args.out)


if __name__ == "__main__":
    main()
