"""The SAM region prior: segment-anything's automatic masks painted into a label map.

SAM (ViT-B) at its native 1024-px input with the stock 32×32 point grid costs
minutes per image on a CPU (about 390 s on one busy core in
benchmarks/bench_sam.py, against about 8 s for this producer's defaults);
a region prior for a 384-px working copy needs far less. The producer therefore

* runs the image encoder at `encoder_size` (512 by default): the ViT's
  absolute position table is resampled bicubically to the smaller token
  grid; the relative-position tables of the global-attention blocks are
  resampled (linearly) by segment-anything's own `get_rel_pos`, which
  interpolates whenever the token grid differs from the table, and the
  windowed blocks keep their 14×14 windows unchanged;
* prompts a coarse grid (8×8 points by default) in one batch, without crops;
* paints the surviving masks large-to-small, so small masks stay on top,
  scoring each region with SAM's predicted IoU.

Priors are cached by content (`PriorCache`), so re-running an image, or
sweeping `--steps`, pays for SAM once.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowlight_cli.errors import DeviceError, Setting, UsageError, WeightsError
from lowlight_cli.priors.cache import PriorCache
from lowlight_cli.priors.fallback import prepare_for_segmentation
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.priors.sam_convert import (
    SamArch,
    build_sam,
    check_checkpoint,
    load_sam,
    validate_model_type,
)
from lowlight_cli.settings.names import DEFAULT_SAM_MODEL

_DEFAULT = object()


# --------------------------------------------------------------------------------------------
# Running SAM at a reduced input size
# --------------------------------------------------------------------------------------------


def resize_sam_input(sam, encoder_size: int) -> None:
    """Make `sam` take `encoder_size`-pixel inputs instead of its native size (in place).

    The absolute position table is resampled (bicubic, antialiased when shrinking) from the
    checkpoint's original table every time, so repeated calls do not compound. The prompt
    encoder's input frame and embedding grid follow; `Sam.postprocess_masks` and `SamPredictor`
    read `image_encoder.img_size`. Relative-position tables need no change (see module docstring).
    """
    encoder = sam.image_encoder
    patch = encoder.patch_embed.proj.kernel_size[0]
    if encoder_size % patch or encoder_size < 4 * patch:
        raise UsageError(f"SAM encoder size must be a multiple of {patch} and at least {4 * patch}, got {encoder_size}")
    grid = encoder_size // patch
    if encoder.pos_embed is not None:
        original = getattr(encoder, "_lowlight_native_pos_embed", None)
        if original is None:
            original = encoder.pos_embed.detach()
            encoder._lowlight_native_pos_embed = original
        if original.shape[1] == grid:
            table = original
        else:
            table = (
                torch.nn.functional.interpolate(
                    original.permute(0, 3, 1, 2).float(),
                    size=(grid, grid),
                    mode="bicubic",
                    align_corners=False,
                    antialias=grid < original.shape[1],
                )
                .permute(0, 2, 3, 1)
                .to(original.dtype)
            )
        encoder.pos_embed = torch.nn.Parameter(table.contiguous(), requires_grad=False)
    encoder.img_size = encoder_size
    prompt = sam.prompt_encoder
    prompt.input_image_size = (encoder_size, encoder_size)
    prompt.image_embedding_size = (grid, grid)
    prompt.mask_input_size = (4 * grid, 4 * grid)


def _mask_generator(sam, device: torch.device, **options: Any):
    """SamAutomaticMaskGenerator whose predictor casts prompts to float32 and autocasts the encoder on CUDA."""
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor
    from segment_anything.utils.transforms import ResizeLongestSide

    from lowlight_cli.runtime.devices import autocast_dtype

    class Float32Resize(ResizeLongestSide):
        # The generator turns these float64 numpy coordinates into tensors on the device; MPS rejects float64.
        def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
            return super().apply_coords(coords, original_size).astype(np.float32)

    class Predictor(SamPredictor):
        encoder_seconds = 0.0
        features: torch.Tensor  # set by SamPredictor.set_torch_image

        def __init__(self, model) -> None:
            super().__init__(model)
            self.transform = Float32Resize(model.image_encoder.img_size)

        @torch.no_grad()
        def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
            start = time.perf_counter()
            dtype = autocast_dtype(device)
            context = torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None else nullcontext()
            with context:
                super().set_torch_image(transformed_image, original_image_size)
            self.features = self.features.float()  # the decoder runs in float32
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.encoder_seconds += time.perf_counter() - start

    generator = SamAutomaticMaskGenerator(sam, **options)
    generator.predictor = Predictor(sam)
    return generator


def paint_masks(masks: list[dict[str, Any]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Label map (0 = no mask) painting masks large-to-small, and scores (predicted IoU clipped to [0, 1])
    indexed by label value."""
    labels = np.zeros((height, width), np.int32)
    scores = np.zeros(len(masks) + 1, np.float32)
    order = sorted(range(len(masks)), key=lambda i: -int(masks[i]["area"]))
    for value, index in enumerate(order, start=1):
        labels[np.asarray(masks[index]["segmentation"], bool)] = value
        scores[value] = min(1.0, max(0.0, float(masks[index]["predicted_iou"])))
    return labels, scores


def _file_fingerprint(path: Path) -> str:
    """Content fingerprint of a checkpoint without reading all of it: size + first and last MiB."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def _model_fingerprint(sam) -> str:
    digest = hashlib.sha256()
    for tensor in (
        sam.image_encoder.patch_embed.proj.weight,
        sam.image_encoder.neck[2].weight,
        sam.mask_decoder.iou_prediction_head.layers[-1].weight,
    ):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class SamPriorProducer:
    """base_rgb (H×W×3 float in [0,1], brightened, working resolution) → RegionPrior from SAM's masks.

    The checkpoint is validated (names and shapes, from its header) at construction and loaded on
    the first image that is not in the cache. `cache=None` disables the prior cache; the default
    is a `PriorCache()` in the user cache folder. `mask_generator_options` overrides any
    SamAutomaticMaskGenerator argument (the benchmark uses it to run the stock settings).
    After each call, `last_seconds`, `last_regions`, `last_masks`, `last_cached` and
    `last_timings` ({"encoder", "decoder", "total"} seconds) describe it.
    """

    def __init__(
        self,
        sam_model: str,
        checkpoint: Path | None,
        device: str = "cpu",
        max_regions: int = 64,
        points_per_side: int = 8,
        encoder_size: int = 512,
        *,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.9,
        box_nms_thresh: float = 0.7,
        mask_generator_options: dict[str, Any] | None = None,
        cache: Any = _DEFAULT,
        arch: SamArch | None = None,
    ) -> None:
        if arch is None and checkpoint is not None:
            validate_model_type(sam_model)
        patch = arch.patch_size if arch is not None else SamArch.patch_size  # the same in every released size
        if encoder_size % patch or encoder_size < 4 * patch:
            raise UsageError(
                f"SAM encoder size must be a multiple of {patch} and at least {4 * patch}, got {encoder_size}"
            )
        if max_regions < 1:
            raise UsageError(f"max_regions must be at least 1, got {max_regions}")
        if points_per_side < 1:
            raise UsageError(f"points per side must be at least 1, got {points_per_side}")
        self.sam_model = sam_model
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.device = torch.device(device)
        self.max_regions = max_regions
        self.points_per_side = points_per_side
        self.encoder_size = encoder_size
        self.arch = arch
        self.options: dict[str, Any] = {
            "points_per_side": points_per_side,
            # All points in one batch, unless that batch's upsampled logits and their temporaries (about
            # 5 × points × 3 × encoder_size² float32) would exceed 1 GiB: the default 64 points at 512 px
            # are one batch; 256 points at 512 px peaked at 3.7 GB RSS in one batch.
            "points_per_batch": max(16, min(points_per_side**2, (1 << 30) // (60 * encoder_size**2))),
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
            "box_nms_thresh": box_nms_thresh,
            "crop_n_layers": 0,
            "min_mask_region_area": 0,
            "output_mode": "binary_mask",
        }
        self.options.update(mask_generator_options or {})
        self.cache: PriorCache | None = PriorCache() if cache is _DEFAULT else cache
        self._sam = None
        self._parked = False  # SAM moved off the accelerator by release()
        self._generator = None
        self._fingerprint: str | None = None
        if self.checkpoint is not None:
            if not self.checkpoint.is_file():
                raise WeightsError(f"SAM checkpoint {self.checkpoint} not found")
            skeleton = build_sam(arch, meta=True) if arch is not None else None
            check_checkpoint(sam_model, self.checkpoint, skeleton)
        self.last_seconds = 0.0
        self.last_regions = 0
        self.last_masks = 0
        self.last_cached = False
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_model(cls, sam, sam_model: str = DEFAULT_SAM_MODEL, **kwargs: Any) -> SamPriorProducer:
        """A producer around an already-built segment-anything `Sam` (adapted in place to encoder_size)."""
        producer = cls(sam_model, None, **kwargs)
        producer._sam = sam.to(producer.device).eval()
        return producer

    @property
    def identity(self) -> str:
        """What determines this producer's output, for the prior cache."""
        if self._fingerprint is None:
            self._fingerprint = (
                _file_fingerprint(self.checkpoint)
                if self._sam is None and self.checkpoint
                else _model_fingerprint(self.sam)
            )
        settings = ",".join(f"{key}={self.options[key]}" for key in sorted(self.options) if key != "points_per_batch")
        return f"sam:{self.sam_model}:{self._fingerprint}|enc={self.encoder_size}|max={self.max_regions}|{settings}"

    @property
    def sam(self):
        if self._sam is None:
            model = build_sam(self.arch) if self.arch is not None else None
            self._sam = load_sam(self.sam_model, self.checkpoint, self.device, model=model)
        elif self._parked:
            self._sam.to(self.device)
            self._parked = False
        return self._sam

    def release(self) -> bool:
        """Give SAM's memory back to the denoiser; the next image brings it back.

        On an accelerator SAM moves to host memory (cheap to move back); on the
        CPU it is dropped and reloaded from its checkpoint, unless it was handed
        in as a model (then there is nothing to reload from, and it stays).
        Returns whether memory was freed.
        """
        if self._sam is None or self._parked:
            return False
        if self.device.type != "cpu":
            self._sam.to("cpu")
            self._parked = True
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return True
        if self.checkpoint is None:
            return False
        self._sam = None
        self._generator = None
        return True

    @property
    def generator(self):
        sam = self.sam  # loads SAM, or brings back a released one
        if self._generator is None:
            resize_sam_input(sam, self.encoder_size)
            self._generator = _mask_generator(sam, self.device, **self.options)
        return self._generator

    def __call__(self, base_rgb: np.ndarray) -> RegionPrior:
        start = time.perf_counter()
        base_rgb = np.asarray(base_rgb)
        if base_rgb.ndim != 3 or base_rgb.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 image, got shape {base_rgb.shape}")
        height, width = base_rgb.shape[:2]
        key = None
        if self.cache is not None:
            key = self.cache.key(base_rgb, self.identity, (height, width))
            prior = self.cache.get(key)
            if prior is not None:
                self.last_cached = True
                self.last_seconds = time.perf_counter() - start
                self.last_regions = prior.num_regions
                self.last_timings = {"encoder": 0.0, "decoder": 0.0, "total": self.last_seconds}
                return prior
        prior = self._compute(base_rgb)
        if self.cache is not None and key is not None:
            self.cache.put(key, prior)
        self.last_cached = False
        self.last_seconds = time.perf_counter() - start
        self.last_regions = prior.num_regions
        self.last_timings["total"] = self.last_seconds
        return prior

    def _compute(self, base_rgb: np.ndarray) -> RegionPrior:
        image = prepare_for_segmentation(base_rgb)
        generator = self.generator
        generator.predictor.encoder_seconds = 0.0
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                masks = generator.generate(image)
        except torch.OutOfMemoryError:
            raise DeviceError(
                f"out of memory running SAM on {self.device}: use ",
                Setting("device"),
                " cpu or a smaller SAM (",
                Setting("sam_model"),
                f" {DEFAULT_SAM_MODEL})",
            ) from None
        elapsed = time.perf_counter() - start
        encoder = generator.predictor.encoder_seconds
        self.last_timings = {"encoder": encoder, "decoder": elapsed - encoder}
        self.last_masks = len(masks)
        labels, scores = paint_masks(masks, *image.shape[:2])
        return RegionPrior.from_labels(
            labels, source=f"sam:{self.sam_model}", max_regions=self.max_regions, scores=scores
        )


__all__ = ["SamPriorProducer", "resize_sam_input", "paint_masks"]
