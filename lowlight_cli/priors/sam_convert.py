"""SAM checkpoints: Hugging Face `SamModel` names → segment-anything names, and strict loading.

The Hub's `facebook/sam-vit-{base,large,huge}` repositories ship
`model.safetensors` written by `transformers.SamModel`; the prior producer
runs segment-anything's `Sam`. The two implementations hold identical
tensors (no transposes or reshapes) under different names, so conversion is
a pure renaming. The rules below were checked against both libraries by
building the two models with the same hyperparameters and comparing key sets,
shapes and outputs (tests/test_sam.py).

Checkpoints are only ever read as `.safetensors` (never `torch.load`, which
can execute code from a pickle).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, overload

import torch
from torch import Tensor

from lowlight_cli.errors import Setting, WeightsError
from lowlight_cli.settings.names import SAM_SIZES, sam_size

# segment-anything's pixel normalisation (Sam.pixel_mean / pixel_std): non-persistent buffers.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamArch:
    """Hyperparameters of one SAM; the defaults are the released models' (segment_anything.build_sam)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3


# The released sizes (settings.names.SAM_SIZES: their names and the encoder that sets them apart).
SAM_ARCHS: dict[str, SamArch] = {
    name: SamArch(size.embed_dim, size.depth, size.num_heads, size.global_attn_indexes)
    for name, size in SAM_SIZES.items()
}


def build_sam(arch: SamArch, meta: bool = False):
    """segment-anything `Sam` with `arch`'s sizes, built exactly like `_build_sam`: the one SAM builder.

    Random weights; with `meta`, parameters on the meta device (no init cost), for a
    checkpoint to be checked against or loaded into with `assign`.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = arch.image_size // arch.patch_size
    with torch.device("meta") if meta else nullcontext():
        sam = _sam(arch, grid, Sam, ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer)
    # The pixel buffers are created by the legacy torch.Tensor(list) constructor, which ignores the
    # default device; make sure anyway that they are real tensors.
    for name, values in (("pixel_mean", PIXEL_MEAN), ("pixel_std", PIXEL_STD)):
        if getattr(sam, name).is_meta:
            sam.register_buffer(name, torch.tensor(values).view(-1, 1, 1), persistent=False)
    return sam.eval()


def _sam(arch: SamArch, grid: int, Sam, ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer):
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.depth,
            embed_dim=arch.embed_dim,
            img_size=arch.image_size,
            mlp_ratio=arch.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=arch.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_num_heads,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


# --------------------------------------------------------------------------------------------
# Renaming rules, HF `SamModel` → segment-anything `Sam`. Each regex must match a whole key.
# --------------------------------------------------------------------------------------------
_WB = r"(weight|bias)"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        # Image encoder (ViT backbone): vision_encoder → image_encoder, layers → blocks, layer_norm → norm.
        (rf"vision_encoder\.patch_embed\.projection\.{_WB}", r"image_encoder.patch_embed.proj.\1"),
        (r"vision_encoder\.pos_embed", r"image_encoder.pos_embed"),
        (rf"vision_encoder\.layers\.(\d+)\.layer_norm([12])\.{_WB}", r"image_encoder.blocks.\1.norm\2.\3"),
        (rf"vision_encoder\.layers\.(\d+)\.attn\.(qkv|proj)\.{_WB}", r"image_encoder.blocks.\1.attn.\2.\3"),
        (r"vision_encoder\.layers\.(\d+)\.attn\.rel_pos_([hw])", r"image_encoder.blocks.\1.attn.rel_pos_\2"),
        (rf"vision_encoder\.layers\.(\d+)\.mlp\.(lin[12])\.{_WB}", r"image_encoder.blocks.\1.mlp.\2.\3"),
        # Neck: named modules → nn.Sequential indices (conv, LayerNorm2d, conv, LayerNorm2d; convs have no bias).
        (r"vision_encoder\.neck\.conv1\.weight", r"image_encoder.neck.0.weight"),
        (rf"vision_encoder\.neck\.layer_norm1\.{_WB}", r"image_encoder.neck.1.\1"),
        (r"vision_encoder\.neck\.conv2\.weight", r"image_encoder.neck.2.weight"),
        (rf"vision_encoder\.neck\.layer_norm2\.{_WB}", r"image_encoder.neck.3.\1"),
        # Prompt encoder. HF keeps the random-Fourier matrix at the top level (shared with the prompt encoder).
        (
            r"shared_image_embedding\.positional_embedding",
            r"prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
        (r"prompt_encoder\.point_embed\.(\d+)\.weight", r"prompt_encoder.point_embeddings.\1.weight"),
        (r"prompt_encoder\.(not_a_point_embed|no_mask_embed)\.weight", r"prompt_encoder.\1.weight"),
        # Mask embedding: nn.Sequential(conv, LN2d, GELU, conv, LN2d, GELU, conv) → indices 0, 1, 3, 4, 6.
        (rf"prompt_encoder\.mask_embed\.conv1\.{_WB}", r"prompt_encoder.mask_downscaling.0.\1"),
        (rf"prompt_encoder\.mask_embed\.layer_norm1\.{_WB}", r"prompt_encoder.mask_downscaling.1.\1"),
        (rf"prompt_encoder\.mask_embed\.conv2\.{_WB}", r"prompt_encoder.mask_downscaling.3.\1"),
        (rf"prompt_encoder\.mask_embed\.layer_norm2\.{_WB}", r"prompt_encoder.mask_downscaling.4.\1"),
        (rf"prompt_encoder\.mask_embed\.conv3\.{_WB}", r"prompt_encoder.mask_downscaling.6.\1"),
        # Mask decoder: tokens and the two-way transformer (same names except layer_norm → norm).
        (r"mask_decoder\.(iou_token|mask_tokens)\.weight", r"mask_decoder.\1.weight"),
        (
            rf"mask_decoder\.transformer\.layers\.(\d+)\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)"
            rf"\.([qkv]_proj|out_proj)\.{_WB}",
            r"mask_decoder.transformer.layers.\1.\2.\3.\4",
        ),
        (
            rf"mask_decoder\.transformer\.layers\.(\d+)\.layer_norm([1-4])\.{_WB}",
            r"mask_decoder.transformer.layers.\1.norm\2.\3",
        ),
        (
            rf"mask_decoder\.transformer\.layers\.(\d+)\.mlp\.(lin[12])\.{_WB}",
            r"mask_decoder.transformer.layers.\1.mlp.\2.\3",
        ),
        (
            rf"mask_decoder\.transformer\.final_attn_token_to_image\.([qkv]_proj|out_proj)\.{_WB}",
            r"mask_decoder.transformer.final_attn_token_to_image.\1.\2",
        ),
        (rf"mask_decoder\.transformer\.layer_norm_final_attn\.{_WB}", r"mask_decoder.transformer.norm_final_attn.\1"),
        # Upscaling: nn.Sequential(convT, LN2d, GELU, convT, GELU) → indices 0, 1, 3.
        (rf"mask_decoder\.upscale_conv1\.{_WB}", r"mask_decoder.output_upscaling.0.\1"),
        (rf"mask_decoder\.upscale_layer_norm\.{_WB}", r"mask_decoder.output_upscaling.1.\1"),
        (rf"mask_decoder\.upscale_conv2\.{_WB}", r"mask_decoder.output_upscaling.3.\1"),
    ]
]

# Hypernetwork MLPs and the IoU head: HF `proj_in, layers.0..n-3, proj_out` → segment-anything `layers.0..n-1`.
_MLP = re.compile(
    rf"(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))"
    rf"\.(proj_in|layers\.(\d+)|proj_out)\.{_WB}"
)

# The HF tensor duplicated by weight tying: `SamModel` ties the prompt encoder's copy of the Fourier
# matrix to `shared_image_embedding.positional_embedding` (the tie's source); segment-anything has one
# `pe_layer` for both uses. Files saved by newer transformers omit it, older ones store both.
_HF_TIED = "prompt_encoder.shared_embedding.positional_embedding"
_HF_PE = "shared_image_embedding.positional_embedding"

# segment-anything's pixel normalisation buffers are non-persistent (not in `Sam.state_dict()`), but some
# exports of the original checkpoints include them; HF does the normalisation in its image processor.
_SA_EXTRA = ("pixel_mean", "pixel_std")

_HF_PREFIXES = (
    "vision_encoder.",
    "shared_image_embedding.",
    "prompt_encoder.point_embed.",
    "prompt_encoder.mask_embed.",
    "prompt_encoder.shared_embedding.",
)


def is_hf_sam_state(state: Mapping[str, object] | Iterable[str]) -> bool:
    """True when the names are transformers `SamModel`'s rather than segment-anything's."""
    return any(str(key).startswith(_HF_PREFIXES) for key in state)


def hf_key_map(keys: Iterable[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(HF name → segment-anything name, dropped HF name → reason, names no rule covers)."""
    keys = list(keys)
    mlp_depth: dict[str, int] = {}
    for key in keys:
        match = _MLP.fullmatch(key)
        if match:
            hidden = int(match.group(3)) + 1 if match.group(3) is not None else 0
            mlp_depth[match.group(1)] = max(mlp_depth.get(match.group(1), 0), hidden)
    renamed: dict[str, str] = {}
    dropped: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        if key == _HF_TIED:
            if _HF_PE in keys:
                dropped[key] = f"tied copy of {_HF_PE}"
            else:  # only the tied copy was stored: it is the matrix
                renamed[key] = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
            continue
        match = _MLP.fullmatch(key)
        if match:
            prefix, part, hidden_index, kind = match.groups()
            if part == "proj_in":
                index = 0
            elif part == "proj_out":
                index = mlp_depth[prefix] + 1
            else:
                index = int(hidden_index) + 1
            renamed[key] = f"{prefix}.layers.{index}.{kind}"
            continue
        for pattern, replacement in _RULES:
            if pattern.fullmatch(key):
                renamed[key] = pattern.sub(replacement, key)
                break
        else:
            unknown.append(key)
    return renamed, dropped, unknown


def convert_hf_to_segment_anything(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a transformers `SamModel` state dict to segment-anything `Sam` names (no tensor changes).

    Raises `WeightsError` for any tensor no rule accounts for.
    """
    renamed, dropped, unknown = hf_key_map(state)
    if unknown:
        raise WeightsError(
            f"cannot convert {len(unknown)} tensor(s) of the Hugging Face SAM checkpoint "
            f"(e.g. {unknown[0]}): not a SamModel checkpoint"
        )
    # When both Fourier matrices are stored, the tie's source wins, as it does when SamModel loads the file.
    return {renamed[key]: value for key, value in state.items() if key in renamed}


def to_segment_anything_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Either naming → segment-anything names, without the optional pixel-normalisation buffers."""
    if is_hf_sam_state(state):
        state = convert_hf_to_segment_anything(state)
    return {key: value for key, value in state.items() if key not in _SA_EXTRA}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _guess_model_type(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """Which released SAM a checkpoint's shapes belong to (by the ViT width), if any."""
    shape = shapes.get("image_encoder.patch_embed.proj.weight")
    if not shape:
        return None
    depth = 1 + max((int(k.split(".")[2]) for k in shapes if k.startswith("image_encoder.blocks.")), default=-1)
    for name, arch in SAM_ARCHS.items():
        if shape[0] == arch.embed_dim and depth == arch.depth:
            return name
    return None


def check_shapes(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], model_type: str, path: Path
) -> None:
    """`WeightsError` (one line) unless `found` has exactly `expected`'s names and shapes."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    mismatched = [key for key in expected if key in found and tuple(found[key]) != tuple(expected[key])]
    if not (missing or unexpected or mismatched):
        return
    parts = [
        f"{len(items)} {what}"
        for items, what in ((mismatched, "with other shapes"), (missing, "missing"), (unexpected, "unexpected"))
        if items
    ]
    if mismatched:
        key = mismatched[0]
        example = f"{key} is {tuple(found[key])} in the file but {tuple(expected[key])} in {model_type}"
    elif missing:
        example = f"{missing[0]} is missing"
    else:
        example = f"{unexpected[0]} is not part of SAM"
    guess = _guess_model_type(found)
    hint = (
        (f"; it looks like a {guess} checkpoint: use ", Setting("sam_model"), f" {guess}")
        if guess != model_type
        else ()
    )
    raise WeightsError(
        f"SAM checkpoint {path} does not match {model_type} (tensors: {', '.join(parts)}; e.g. {example})",
        *(hint if guess else ()),
    )


@overload
def read_safetensors(path: Path, *, header_only: Literal[True]) -> dict[str, tuple[int, ...]]: ...
@overload
def read_safetensors(path: Path, *, header_only: Literal[False] = False) -> dict[str, Tensor]: ...
def read_safetensors(path: Path, *, header_only: bool = False) -> dict[str, Tensor] | dict[str, tuple[int, ...]]:
    """Tensors (or just their shapes) of a local .safetensors file; `WeightsError` for anything else."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"SAM checkpoint {path} not found")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise WeightsError(
            f"SAM checkpoint {path} is a PyTorch pickle (.pth), not .safetensors: "
            "use the Hugging Face model.safetensors (`lowlight models download`) or convert it"
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            if header_only:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # SafetensorError, OSError, ValueError...: the message names the defect
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(
            f"SAM checkpoint {path} is not a valid .safetensors file "
            f"(truncated or another format: {reason}); download it again"
        ) from None


def validate_model_type(model_type: str) -> None:
    """`ValueError` unless `model_type` is a released SAM size."""
    sam_size(model_type)


def expected_shapes(model_type: str, model=None) -> dict[str, tuple[int, ...]]:
    if model is None:
        validate_model_type(model_type)
        model = build_sam(SAM_ARCHS[model_type], meta=True)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def check_checkpoint(model_type: str, path: Path, model=None) -> None:
    """Cheap validation from the file header alone (names and shapes; no tensor data is read)."""
    shapes = read_safetensors(path, header_only=True)
    if is_hf_sam_state(shapes):
        renamed, _, unknown = hf_key_map(shapes)
        if unknown:
            raise WeightsError(
                f"cannot convert {len(unknown)} tensor(s) of the Hugging Face SAM checkpoint "
                f"{path} (e.g. {unknown[0]}): not a SamModel checkpoint"
            )
        shapes = {renamed[key]: shape for key, shape in shapes.items() if key in renamed}
    shapes = {key: shape for key, shape in shapes.items() if key not in _SA_EXTRA}
    check_shapes(expected_shapes(model_type, model), shapes, model_type, Path(path))


def load_sam(model_type: str, path: Path, device: str | torch.device = "cpu", model=None):
    """segment-anything `Sam` with the weights of a local .safetensors file (HF or segment-anything names).

    `model`, if given, is a prebuilt `Sam` to load into (other sizes than the released ones; it may
    live on the meta device); otherwise `sam_model_registry[model_type]` is built on the meta device.
    Loading is strict: any missing, unexpected or differently-shaped tensor is a `WeightsError`
    naming the problem.
    """
    path = Path(path)
    if model is None:
        validate_model_type(model_type)
    raw = read_safetensors(path)
    state = to_segment_anything_names(raw)
    for key, value in state.items():
        if not value.is_floating_point():
            raise WeightsError(f"SAM checkpoint {path}: tensor {key} has dtype {value.dtype}, expected floats")
    sam = build_sam(SAM_ARCHS[model_type], meta=True) if model is None else model
    assign = any(tensor.is_meta for tensor in sam.state_dict().values())
    check_shapes(
        {key: tuple(value.shape) for key, value in sam.state_dict().items()},
        {key: tuple(value.shape) for key, value in state.items()},
        model_type,
        path,
    )
    if assign:  # parameters are on the meta device: adopt the file's tensors (as float32)
        state = {key: value.float() for key, value in state.items()}
    try:
        sam.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as error:  # check_shapes should have caught everything; keep the message one line
        raise WeightsError(
            f"SAM checkpoint {path} does not load into {model_type}: {str(error).splitlines()[0]}"
        ) from None
    return sam.to(device).eval()
