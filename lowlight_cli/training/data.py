"""Training data: real pairs (SICE `pairs.csv` or `low/`+`high/` folders) and synthetic pairs.

Every sample is drawn the way inference will see it: a dark photo at sensor
resolution, downscaled to a random working scale, cropped, with its region
prior. Priors are computed once per source image (on the brightened input,
as at inference) and cropped/resized with the image, because running a
segmenter per crop would cost more than the training step itself.

On a GPU the numpy synthesis, not the network, sets the pace, so both the
start-up (one prior per image) and the crop sampler can run in forked worker
processes (`workers`); with none they run in-process, as on a small CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch

from lowlight_cli.errors import UsageError
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.imaging.prepare import resize, working_size
from lowlight_cli.io.datasets import paired_rows, read_sice  # noqa: F401 (benchmarks/robustness.py reads SICE through here)
from lowlight_cli.io.images import IMAGE_SUFFIXES, load_image
from lowlight_cli.models.condition import brighten_array, prior_tensors
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.training.synth import DarkeningParams, darken, recast

PriorFn = Callable[[np.ndarray], RegionPrior]


@dataclass
class PairedImage:
    low: np.ndarray  # uint8 H×W×3
    high: np.ndarray  # uint8 H×W×3
    labels: np.ndarray  # int32 H×W, computed on the brightened low image
    group: str  # samples are drawn per group (scene) so multi-exposure scenes are not over-weighted


@dataclass
class NormalImage:
    high: np.ndarray
    labels: np.ndarray
    # False for the photos that check a well-exposed photo comes back unchanged (`UNCHANGED_CHECK`): never
    # trained as an unchanged pair, so that check is not in-sample.
    may_stay: bool = True


UNCHANGED_CHECK = "kodak24_"  # name prefix of the normal/ photos benchmarks/ood.py scores as unchanged


THUMB = 96  # side of the whole-frame thumbnails the tone branch learns from (it pools them to 64)


def to_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 → float (3,H,W) in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(image).astype(np.float32) / 255.0).permute(2, 0, 1)


def prior_labels(low: np.ndarray, prior_fn: PriorFn, target_brightness: float, work_side: int = 256) -> np.ndarray:
    """Label map for a dark uint8 image, computed at working resolution and resized back."""
    height, width = low.shape[:2]
    small = resize(low, *working_size(height, width, work_side))
    prior = prior_fn(brighten_array(small.astype(np.float32) / 255.0, target_brightness))
    return prior.resized(height, width).labels


def load_rgb8(path: Path) -> np.ndarray:
    return quantise(load_image(path).rgb)


# What a forked start-up worker needs; set just before the fork and inherited, since closures do not pickle.
_LOADER: dict[str, Any] = {}


@contextlib.contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """Fork inside this block, so the children inherit OpenCV at one thread.

    A child must not change OpenCV's thread count itself: once the parent's
    pool has run, that waits for threads the child does not have, forever.
    One thread each is also what many workers on shared cores want.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def load_item(job: tuple) -> PairedImage | NormalImage | None:
    """One training image with its prior labels; a paired job of mismatched sizes gives None.

    A photo for synthesis is labelled on its own seeded darkening, so the labels
    do not depend on how many workers share the start-up.
    """
    prior_fn, brightness = _LOADER["prior_fn"], _LOADER["brightness"]
    label = (
        (lambda low: prior_labels(low, prior_fn, brightness))
        if prior_fn
        else (lambda image: np.zeros(image.shape[:2], np.int32))
    )
    if job[0] == "pair":
        _, low_path, high_path, group = job
        low, high = load_rgb8(low_path), load_rgb8(high_path)
        return PairedImage(low, high, label(low), group) if low.shape == high.shape else None
    _, path, index = job
    high = load_rgb8(path)
    rng = np.random.default_rng((0, index))
    return NormalImage(
        high,
        label(darken(high.astype(np.float32) / 255.0, DarkeningParams.sample(rng), rng)),
        may_stay=not path.name.startswith(UNCHANGED_CHECK),
    )


def load_all(jobs: list[tuple], prior_fn: PriorFn | None, brightness: float, workers: int) -> list:
    """`load_item` over all jobs, in order, in `workers` forked processes when there are several."""
    _LOADER.update(prior_fn=prior_fn, brightness=brightness)
    try:
        if workers <= 1:
            return [load_item(job) for job in jobs]
        # The executor forks as it goes, so all of it runs inside the block; a worker that dies
        # raises BrokenProcessPool here instead of leaving the map waiting for it.
        fork = multiprocessing.get_context("fork")
        with single_threaded_opencv(), ProcessPoolExecutor(workers, mp_context=fork) as pool:
            return list(pool.map(load_item, jobs, chunksize=4))
    finally:
        _LOADER.clear()


# Pixels degraded around a crop window and then cut off: more than the reach of any step of the
# degradation (the chroma blur, sigma up to 3, reaches 12 px; JPEG's decoder reads neighbouring
# blocks, and a 16-px margin still left 2-level differences where 32 px leaves none).
DEGRADE_MARGIN = 32
# Windows start and end on this grid, counted from the image's corner, so the JPEG blocks (8 px,
# 16 px for colour) and the Bayer mosaic sit on the crop as they would on the whole image.
DEGRADE_GRID = 16


def degrade_window(
    image: np.ndarray, window: tuple[slice, slice], degrade: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`degrade` applied to `image[window]` plus a grid-aligned margin, returning the window's pixels."""
    rows, cols = window
    grid = DEGRADE_GRID
    top = max(0, (rows.start - DEGRADE_MARGIN) // grid * grid)
    left = max(0, (cols.start - DEGRADE_MARGIN) // grid * grid)
    bottom = min(image.shape[0], -(-(rows.stop + DEGRADE_MARGIN) // grid) * grid)
    right = min(image.shape[1], -(-(cols.stop + DEGRADE_MARGIN) // grid) * grid)
    out = degrade(image[top:bottom, left:right])
    return out[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]


class TrainingData:
    """All training images in memory, with priors, and a crop sampler."""

    def __init__(
        self,
        folders: list[Path],
        prior_fn: PriorFn | None,
        target_brightness: float,
        crop: int,
        real_fraction: float = 0.5,
        prior_dropout: float = 0.15,
        log: Callable[[str], None] = print,
        workers: int = 0,
        mild_share: float = 0.2,
        unchanged_share: float = 0.1,
        native_share: float = 0.0,
    ) -> None:
        self.crop = crop
        # Share of crops cut at the photo's own pixels, not downscaled: small photos are sampled at their own
        # size, with all of their noise, which downscaled crops average away.
        self.native_share = native_share
        # Shares of synthetic samples darkened only a little, or not at all: a photo that is already
        # well exposed must come back nearly as it is.
        self.mild_share, self.unchanged_share = mild_share, unchanged_share
        self.target_brightness = target_brightness
        self.prior_dropout = prior_dropout if prior_fn is not None else 1.0
        self.paired: dict[str, list[PairedImage]] = {}
        self.normal: list[NormalImage] = []
        for folder in folders:
            if not folder.is_dir():
                raise UsageError(f"training data folder not found: {folder}")
            rows = paired_rows(folder)
            if rows:
                jobs = [("pair", low, high, group) for low, high, group in rows]
            else:
                photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                jobs = [("photo", path, len(self.normal) + i) for i, path in enumerate(photos)]
            for item in load_all(jobs, prior_fn, target_brightness, workers):
                if isinstance(item, PairedImage):
                    self.paired.setdefault(f"{folder}:{item.group}", []).append(item)
                elif isinstance(item, NormalImage):
                    self.normal.append(item)
            log(f"loaded {folder}: {len(rows) or 'synthetic'} pairs")
        if not self.paired and not self.normal:
            raise UsageError("no training images found in " + ", ".join(map(str, folders)))
        self.real_fraction = real_fraction if self.paired and self.normal else (1.0 if self.paired else 0.0)
        self.groups = sorted(self.paired)
        by_folder: dict[str, list[str]] = {}
        for key in self.groups:
            by_folder.setdefault(key.rsplit(":", 1)[0], []).append(key)
        self.groups_by_folder = list(by_folder.values())

    def __repr__(self) -> str:
        pairs = sum(len(v) for v in self.paired.values())
        return f"TrainingData({pairs} real pairs in {len(self.groups)} scenes, {len(self.normal)} photos for synthesis)"

    def _window(self, height: int, width: int, rng: np.random.Generator) -> tuple[slice, slice]:
        """A random crop window in source pixels: the crop×crop window of the image scaled by a random factor.

        Drawing the window first lets the degradation run on that window (and
        a grid-aligned margin) alone: each step is local (per-pixel noise,
        demosaicing, blur, JPEG blocks), so without noise the crop's pixels are
        those of the degraded whole image, at a fraction of the cost.
        """
        min_scale = self.crop / min(height, width)
        if min_scale >= 1.0 or (self.native_share > 0 and rng.random() < self.native_share):
            scale = max(min_scale, 1.0)
        else:
            scale = float(rng.uniform(max(min_scale, 0.3), 1.0))
        new_w, new_h = max(self.crop, round(width * scale)), max(self.crop, round(height * scale))
        y = int(rng.integers(0, new_h - self.crop + 1))
        x = int(rng.integers(0, new_w - self.crop + 1))
        rows = slice(int(y * height / new_h), min(height, round((y + self.crop) * height / new_h)))
        cols = slice(int(x * width / new_w), min(width, round((x + self.crop) * width / new_w)))
        return rows, cols

    def _fit(self, images: list[np.ndarray], labels: np.ndarray, flip: bool) -> tuple[list[np.ndarray], np.ndarray]:
        """Source windows resized to the crop, mirrored when `flip`."""
        size = (self.crop, self.crop)
        images = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images]
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        if flip:
            images = [im[:, ::-1] for im in images]
            labels = labels[:, ::-1]
        return images, labels

    def _real(self, rng: np.random.Generator) -> PairedImage:
        """A real pair: a folder (dataset) first, then a scene group in it, so no dataset crowds out the others."""
        groups = self.groups_by_folder[int(rng.integers(len(self.groups_by_folder)))]
        group = self.paired[groups[int(rng.integers(len(groups)))]]
        return group[int(rng.integers(len(group)))]

    def _darkening(self, rng: np.random.Generator, item: NormalImage) -> DarkeningParams | None:
        """A synthetic degradation: mostly dark, sometimes mild, sometimes none (None: the photo as it is;
        never for a photo that checks exactly that)."""
        draw = rng.random()
        if draw < self.unchanged_share:
            return None if item.may_stay else DarkeningParams.sample_mild(rng)
        if draw < self.unchanged_share + self.mild_share:
            return DarkeningParams.sample_mild(rng)
        return DarkeningParams.sample(rng)

    def _thumbnail(self, image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (THUMB, THUMB), interpolation=cv2.INTER_AREA)

    def _synthetic_thumbnail(
        self, high: np.ndarray, params: DarkeningParams | None, rng: np.random.Generator
    ) -> np.ndarray:
        """The whole photo's degradation at thumbnail size: area averaging divides noise variance by the
        area factor, so the noise is scaled as if the full-size degraded photo had been shrunk."""
        small = self._thumbnail(high)
        if params is None:
            return small
        area = high.shape[0] * high.shape[1] / THUMB**2
        scaled = dataclasses.replace(params, shot=params.shot / area, read=params.read / math.sqrt(area))
        return darken(small.astype(np.float32) / 255.0, scaled, rng)

    def sample(self, rng: np.random.Generator, max_regions: int) -> dict[str, torch.Tensor]:
        """One training crop: low, high (3,c,c) float; labels (c,c) long; scores (max_regions,); boundary (1,c,c);
        thumb (3,96,96): the whole degraded photo, from which the global tone is judged; thumb_high: the
        whole target, whose exposure and white balance the base is developed at in training."""
        if rng.random() < self.real_fraction:
            item = self._real(rng)
            window = self._window(*cast(tuple[int, int], item.labels.shape), rng)
            if rng.random() < 0.5:  # the same cast (seeded) on the crop and on the whole photo
                cast_seed = int(rng.integers(2**31))
                low = degrade_window(item.low, window, lambda im: recast(im, np.random.default_rng(cast_seed)))
                thumb = recast(self._thumbnail(item.low), np.random.default_rng(cast_seed), extra_noise=0.0)
            else:
                low, thumb = item.low[window], self._thumbnail(item.low)
        else:
            item = self.normal[int(rng.integers(len(self.normal)))]
            window = self._window(*cast(tuple[int, int], item.labels.shape), rng)
            params = self._darkening(rng, item)
            low = (
                item.high[window]
                if params is None
                else degrade_window(item.high, window, lambda im: darken(im.astype(np.float32) / 255.0, params, rng))
            )
            thumb = self._synthetic_thumbnail(item.high, params, rng)
        flip = rng.random() < 0.5
        (low, high), labels = self._fit([low, item.high[window]], item.labels[window], flip)
        if rng.random() < self.prior_dropout:
            prior = RegionPrior.empty(*labels.shape)
        else:
            prior = RegionPrior.from_labels(labels, "train", max_regions)
        labels, scores, boundary = prior_tensors(prior, max_regions)
        high_thumb = self._thumbnail(item.high)
        return {
            "low": to_chw(low),
            "high": to_chw(high),
            "thumb": to_chw(thumb[:, ::-1] if flip else thumb),
            "thumb_high": to_chw(high_thumb[:, ::-1] if flip else high_thumb),
            "labels": labels,
            "scores": scores,
            "boundary": boundary,
        }

    def frame(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One whole frame at thumbnail size, low and high (3,96,96): what the global tone branch learns from."""
        if rng.random() < self.real_fraction:
            item = self._real(rng)
            low, high = self._thumbnail(item.low), self._thumbnail(item.high)
            if rng.random() < 0.5:
                low = recast(low, rng, extra_noise=0.0)
        else:
            item = self.normal[int(rng.integers(len(self.normal)))]
            high = self._thumbnail(item.high)
            low = self._synthetic_thumbnail(item.high, self._darkening(rng, item), rng)
        if rng.random() < 0.5:
            low, high = low[:, ::-1], high[:, ::-1]
        return {"low": to_chw(low), "high": to_chw(high)}

    def batch(
        self, rng: np.random.Generator, batch_size: int, max_regions: int, frames: bool = False
    ) -> dict[str, torch.Tensor]:
        """`batch_size` crops, or whole frames for the tone branch when `frames`."""
        items = [self.frame(rng) if frames else self.sample(rng, max_regions) for _ in range(batch_size)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def batches(
        self,
        batch_size: int,
        max_regions: int,
        seed: int,
        workers: int = 0,
        pin_memory: bool = False,
        frames: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches, made ahead of the model so it never waits on numpy.

        With `workers` > 0, forked processes each draw whole batches from their
        own generator, seeded by (seed, worker id), so the stream depends on the
        worker count; a worker's error is re-raised here by torch's DataLoader.
        Otherwise one background thread draws them, and an exception in it is
        passed through the queue and raised here, so a failing sampler stops
        training instead of hanging it. Two batches in flight per worker keep
        the shared memory they pass through small (containers often have 64 MB).
        """
        if workers > 0:
            loader = torch.utils.data.DataLoader(
                _BatchStream(self, batch_size, max_regions, seed, frames),
                batch_size=None,
                num_workers=workers,
                prefetch_factor=2,
                persistent_workers=True,
                multiprocessing_context="fork",
                pin_memory=pin_memory,
            )
            with single_threaded_opencv():
                stream = iter(loader)  # the workers are forked here
            yield from stream
            return
        buffer: queue.Queue = queue.Queue(maxsize=4)

        def produce() -> None:
            rng = np.random.default_rng(seed)
            try:
                while True:
                    buffer.put(self.batch(rng, batch_size, max_regions, frames))
            except Exception as exc:  # handed to the training loop
                buffer.put(exc)

        threading.Thread(target=produce, daemon=True).start()
        while True:
            batch = buffer.get()
            if isinstance(batch, Exception):
                raise batch
            yield batch


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches for one DataLoader worker, from a generator seeded by (seed, worker id)."""

    def __init__(self, data: TrainingData, batch_size: int, max_regions: int, seed: int, frames: bool) -> None:
        self.data, self.batch_size, self.max_regions, self.seed = data, batch_size, max_regions, seed
        self.frames = frames

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng((self.seed, info.id if info else 0))
        while True:
            yield self.data.batch(rng, self.batch_size, self.max_regions, self.frames)
