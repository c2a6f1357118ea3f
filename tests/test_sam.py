"""SAM prior: HF → segment-anything conversion, strict loading, the producer and its cache.

Everything uses random-weight models built in code (no real SAM weights are needed).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lowlight_cli.checkpoints.locate import locate_sam_checkpoint
from lowlight_cli.errors import WeightsError
from lowlight_cli.priors.cache import PriorCache
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.priors.sam import SamPriorProducer, paint_masks, resize_sam_input
from lowlight_cli.priors.sam_convert import (
    SAM_ARCHS,
    SamArch,
    build_sam,
    convert_hf_to_segment_anything,
    hf_key_map,
    is_hf_sam_state,
    load_sam,
)

TINY = SamArch(
    embed_dim=32,
    depth=3,
    num_heads=2,
    global_attn_indexes=(1,),
    image_size=128,
    window_size=3,
    mlp_ratio=2.0,
    prompt_embed_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_depth=4,
    iou_head_hidden_dim=24,
)
# ViT-B's encoder exactly (width, depth, heads, global blocks, 14-token windows) and SAM's real decoder,
# at a 256-px input so the test stays fast.
VIT_B_256 = SamArch(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11), image_size=256)


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def hf_config(arch: SamArch):
    from transformers import SamConfig

    return SamConfig(
        vision_config=dict(
            hidden_size=arch.embed_dim,
            num_hidden_layers=arch.depth,
            num_attention_heads=arch.num_heads,
            image_size=arch.image_size,
            patch_size=arch.patch_size,
            output_channels=arch.prompt_embed_dim,
            window_size=arch.window_size,
            global_attn_indexes=list(arch.global_attn_indexes),
            num_pos_feats=arch.prompt_embed_dim // 2,
            mlp_dim=int(arch.embed_dim * arch.mlp_ratio),
        ),
        prompt_encoder_config=dict(
            hidden_size=arch.prompt_embed_dim,
            image_size=arch.image_size,
            patch_size=arch.patch_size,
            mask_input_channels=arch.mask_in_chans,
        ),
        mask_decoder_config=dict(
            hidden_size=arch.prompt_embed_dim,
            mlp_dim=arch.decoder_mlp_dim,
            num_hidden_layers=arch.decoder_depth,
            num_attention_heads=arch.decoder_num_heads,
            num_multimask_outputs=arch.num_multimask_outputs,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
    )


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random and non-trivial (zero-initialised tables would hide naming mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator)
        if "norm" in name and name.endswith("weight"):
            param.copy_(1.0 + 0.1 * noise)
        elif "positional" in name:
            param.copy_(noise)
        elif param.ndim >= 2 and "pos" not in name:
            param.copy_(noise / math.sqrt(param[0].numel()))
        else:  # biases, absolute and relative position tables
            param.copy_(0.1 * noise)


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 2e-4) -> None:
    scale = float(expected.abs().max()) + 1e-6
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("arch", [TINY, VIT_B_256], ids=["tiny", "vit_b_shaped"])
def test_hf_checkpoint_converts_to_equivalent_segment_anything_model(arch, tmp_path):
    pytest.importorskip("transformers")
    from transformers import SamModel

    torch.manual_seed(0)
    hf = SamModel(hf_config(arch)).eval()
    randomize(hf, seed=1)
    hf.save_pretrained(tmp_path)  # the layout of the Hub's model.safetensors
    path = tmp_path / "model.safetensors"

    with torch.device("meta"):
        skeleton = build_sam(arch)
    sam = load_sam("custom", path, "cpu", model=skeleton)
    assert not any(p.is_meta for p in sam.parameters())

    # The same already-normalised, padded input to both encoders (HF normalises in its processor).
    grid = arch.image_size // arch.patch_size
    pixels = torch.randn(1, 3, arch.image_size, arch.image_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hf_embed = hf.get_image_embeddings(pixels)
        sa_embed = sam.image_encoder(pixels)
        assert sa_embed.shape == (1, arch.prompt_embed_dim, grid, grid)
        close(sa_embed, hf_embed)

        # Point prompts: positive and negative clicks, single and multi-mask output.
        points = torch.rand(5, 2, 2, generator=torch.Generator().manual_seed(3)) * arch.image_size
        labels = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0], [1, 1]], dtype=torch.int)
        for multimask in (True, False):
            hf_out = hf(
                image_embeddings=sa_embed,
                input_points=points[None],
                input_labels=labels[None],
                multimask_output=multimask,
            )
            sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
            masks, iou = sam.mask_decoder(
                image_embeddings=sa_embed,
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            assert masks.shape == (5, 3 if multimask else 1, 4 * grid, 4 * grid)
            close(masks, hf_out.pred_masks[0])
            close(iou, hf_out.iou_scores[0])

        # Box prompts use the other two point embeddings; mask prompts use the mask embedding.
        boxes = torch.tensor([[10.0, 20.0, 90.0, 100.0], [0.0, 0.0, 50.0, 60.0]]) * arch.image_size / 128
        hf_out = hf(image_embeddings=sa_embed, input_boxes=boxes[None], multimask_output=True)
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        masks, iou = sam.mask_decoder(
            image_embeddings=sa_embed,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        close(masks, hf_out.pred_masks[0])
        close(iou, hf_out.iou_scores[0])
        mask_input = torch.randn(2, 1, 4 * grid, 4 * grid, generator=torch.Generator().manual_seed(4))
        close(sam.prompt_encoder._embed_masks(mask_input), hf.prompt_encoder.mask_embed(mask_input))


def test_conversion_covers_every_tensor_of_both_models():
    pytest.importorskip("transformers")
    from transformers import SamModel

    hf_state = SamModel(hf_config(TINY)).state_dict()  # holds the tied prompt-encoder copy too
    assert is_hf_sam_state(hf_state)
    renamed, dropped, unknown = hf_key_map(hf_state)
    assert unknown == []
    assert list(dropped) == ["prompt_encoder.shared_embedding.positional_embedding"]
    converted = convert_hf_to_segment_anything(hf_state)
    expected = {k: tuple(v.shape) for k, v in build_sam(TINY).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert not is_hf_sam_state(converted)

    with pytest.raises(WeightsError, match="cannot convert"):
        convert_hf_to_segment_anything({**hf_state, "vision_encoder.extra.weight": torch.zeros(1)})


def test_registry_models_match_the_internal_builder():
    from segment_anything import sam_model_registry

    for name, arch in SAM_ARCHS.items():
        with torch.device("meta"):
            registry = {k: tuple(v.shape) for k, v in sam_model_registry[name](checkpoint=None).state_dict().items()}
            ours = {k: tuple(v.shape) for k, v in build_sam(arch).state_dict().items()}
        assert registry == ours


def test_segment_anything_named_file_loads_strictly(tmp_path):
    torch.manual_seed(0)
    sam = build_sam(TINY)
    randomize(sam, seed=5)
    state = sam.state_dict()
    save_file({**state, "pixel_mean": sam.pixel_mean.clone()}, tmp_path / "sa.safetensors")  # extra buffer is fine
    with torch.device("meta"):
        skeleton = build_sam(TINY)
    loaded = load_sam("custom", tmp_path / "sa.safetensors", "cpu", model=skeleton)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_bad_files_fail_with_one_line_weights_errors(tmp_path):
    sam = build_sam(TINY)
    good = tmp_path / "good.safetensors"
    save_file(sam.state_dict(), good)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    pickle = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), pickle)
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a checkpoint\n")
    for path, message in (
        (truncated, "not a valid .safetensors"),
        (pickle, "PyTorch pickle"),
        (text, "not a valid .safetensors"),
        (tmp_path / "missing.safetensors", "not found"),
    ):
        with pytest.raises(WeightsError, match=message) as info:
            load_sam("custom", path, "cpu", model=build_sam(TINY))
        assert "\n" not in str(info.value)

    # The tiny file given as vit_b: names and shapes checked before anything is loaded.
    with pytest.raises(WeightsError, match="does not match vit_b") as info:
        load_sam("vit_b", good, "cpu")
    assert "\n" not in str(info.value)

    # A vit_l-shaped encoder given as vit_b is recognised as such.
    vit_l = {k: torch.zeros(v.shape) for k, v in _meta_state("vit_b").items() if k.startswith("prompt_encoder.")}
    vit_l["image_encoder.patch_embed.proj.weight"] = torch.zeros(1024, 3, 16, 16)
    for block in range(24):
        vit_l[f"image_encoder.blocks.{block}.norm1.weight"] = torch.zeros(1024)
    wrong = tmp_path / "vit_l_like.safetensors"
    save_file(vit_l, wrong)
    with pytest.raises(WeightsError, match="looks like a vit_l checkpoint"):
        load_sam("vit_b", wrong, "cpu")
    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):  # settings name the setting; this is the registry
        load_sam("vit_x", good, "cpu")


def _meta_state(name: str) -> dict[str, torch.Tensor]:
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        return sam_model_registry[name](checkpoint=None).state_dict()


def test_reduced_encoder_input_matches_a_natively_smaller_encoder():
    """Running at half size = a model built for half size with resampled tables.

    segment-anything's get_rel_pos interpolates the global blocks' relative-position tables (linear)
    when the token grid differs; the windowed blocks keep their tables.
    """
    torch.manual_seed(0)
    big = build_sam(TINY)
    randomize(big, seed=6)
    small = build_sam(dataclasses.replace(TINY, image_size=64))
    state = dict(big.state_dict())
    resize_sam_input(big, 64)
    state["image_encoder.pos_embed"] = big.image_encoder.pos_embed.detach().clone()
    for index in TINY.global_attn_indexes:
        for axis in "hw":
            key = f"image_encoder.blocks.{index}.attn.rel_pos_{axis}"
            table = state[key]
            state[key] = torch.nn.functional.interpolate(table.T[None], size=2 * 4 - 1, mode="linear")[0].T
    small.load_state_dict(state)
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        close(big.image_encoder(pixels), small.image_encoder(pixels), tol=1e-5)
        assert torch.equal(big.prompt_encoder.get_dense_pe(), small.prompt_encoder.get_dense_pe())
    assert big.image_encoder.img_size == 64 and big.prompt_encoder.input_image_size == (64, 64)
    # Resizing back restores the native table exactly (always resampled from the original).
    resize_sam_input(big, TINY.image_size)
    assert big.image_encoder.pos_embed.shape[1] == TINY.image_size // TINY.patch_size


def synthetic_image(height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.zeros((height, width, 3), np.float32)
    image[:, : width // 2] = 0.8
    image[10:30, 40:60] = (0.2, 0.5, 0.9)
    return np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)


def tiny_sam_file(tmp_path: Path, seed: int) -> Path:
    """A random-weight TINY SAM saved as safetensors."""
    torch.manual_seed(0)
    sam = build_sam(TINY)
    randomize(sam, seed=seed)
    path = tmp_path / "tiny.safetensors"
    save_file(sam.state_dict(), path)
    return path


def tiny_producer(path: Path, max_regions: int = 8, **kwargs) -> SamPriorProducer:
    # Random weights predict poor masks: keep all of them (no IoU / stability / NMS filtering).
    return SamPriorProducer(
        "tiny",
        path,
        max_regions=max_regions,
        points_per_side=4,
        encoder_size=64,
        arch=TINY,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
        **kwargs,
    )


def test_prior_cache_evicts_least_recently_used_entries(tmp_path):
    import os

    rng = np.random.default_rng(0)
    priors = [
        RegionPrior(
            labels=rng.integers(0, 4, (64, 64)).astype(np.int32),
            scores=np.ones(3, np.float32),
            boundary=rng.random((64, 64)).astype(np.float32),
            source="fallback",
        )
        for _ in range(6)
    ]
    keys = [f"{i:02d}" + "0" * 62 for i in range(6)]
    probe = PriorCache(tmp_path / "probe")
    probe.put(keys[0], priors[0])
    entry_size = probe.path(keys[0]).stat().st_size
    cache = PriorCache(tmp_path / "priors", max_bytes=int(3.5 * entry_size))  # room for three
    for i, (key, prior) in enumerate(zip(keys[:3], priors, strict=False)):
        cache.put(key, prior)
        os.utime(cache.path(key), ns=(i * 10**9, i * 10**9))  # a clear age order: 0 oldest
    assert cache.get(keys[0]) is not None  # a hit makes entry 0 the most recently used
    cache.put(keys[3], priors[3])
    kept = {key for key in keys if cache.path(key).exists()}
    assert kept == {keys[0], keys[2], keys[3]}  # entry 1, least recently used, went first


def test_prior_cache_limit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWLIGHT_PRIOR_CACHE_MB", "2")
    assert PriorCache(tmp_path).max_bytes == 2 * 2**20
    monkeypatch.setenv("LOWLIGHT_PRIOR_CACHE_MB", "lots")
    assert PriorCache(tmp_path).max_bytes == 1024 * 2**20


def test_producer_returns_a_cached_region_prior(tmp_path):
    cache = PriorCache(tmp_path / "priors")
    producer = tiny_producer(tiny_sam_file(tmp_path, seed=8), max_regions=5, cache=cache)
    image = synthetic_image()
    prior = producer(image)
    assert isinstance(prior, RegionPrior)
    assert prior.labels.shape == image.shape[:2] and prior.labels.dtype == np.int32
    assert prior.boundary.shape == image.shape[:2]
    assert 1 <= prior.num_regions <= 5 and producer.last_masks > 5
    assert set(np.unique(prior.labels)) <= set(range(prior.num_regions + 1))
    assert prior.scores.shape == (prior.num_regions,) and np.all((prior.scores >= 0) & (prior.scores <= 1))
    assert prior.source == "sam:tiny" and not producer.last_cached
    assert producer.last_regions == prior.num_regions and producer.last_seconds > 0

    calls = []
    producer._compute = lambda rgb: calls.append(rgb) or pytest.fail("SAM ran again")  # type: ignore[method-assign]
    again = producer(image.copy())
    assert calls == [] and producer.last_cached and cache.hits == 1
    for field in ("labels", "scores", "boundary"):
        assert np.array_equal(getattr(again, field), getattr(prior, field))
    assert again.source == prior.source

    # Another working size or producer setting is another key; a corrupt entry is a miss.
    assert PriorCache.key(image, producer.identity, (48, 64)) != PriorCache.key(image, producer.identity, (24, 32))
    assert PriorCache.key(image, producer.identity, (48, 64)) != PriorCache.key(image, "fallback", (48, 64))
    key = PriorCache.key(image, producer.identity, (48, 64))
    stored = cache.path(key).read_bytes()
    flipped = bytearray(stored)
    flipped[len(stored) // 3] ^= 0xFF  # inside the compressed labels: zlib or zip CRC error
    for damaged in (b"garbage", stored[: len(stored) // 2], bytes(flipped)):
        cache.path(key).write_bytes(damaged)
        assert cache.get(key) is None


def test_paint_masks_keeps_small_masks_on_top():
    big = np.ones((4, 4), bool)
    small = np.zeros((4, 4), bool)
    small[1:3, 1:3] = True
    masks = [
        {"segmentation": small, "area": 4, "predicted_iou": 0.9},
        {"segmentation": big, "area": 16, "predicted_iou": 1.3},
    ]
    labels, scores = paint_masks(masks, 4, 4)
    assert labels[0, 0] == 1 and labels[1, 1] == 2
    assert scores.tolist() == pytest.approx([0.0, 1.0, 0.9])
    prior = RegionPrior.from_labels(labels, "sam:x", 8, scores=scores)
    assert prior.labels[0, 0] == 1 and prior.scores.tolist() == pytest.approx([1.0, 0.9])


def test_locate_sam_checkpoint(tmp_path, monkeypatch):
    fetched = []
    cached: dict[str, Path] = {}
    from lowlight_cli.checkpoints import hub as checkpoint_hub

    monkeypatch.setattr(checkpoint_hub, "find_cached", lambda name: cached.get(name))
    monkeypatch.setattr(
        checkpoint_hub, "fetch_checkpoint", lambda name, **kw: fetched.append(name) or tmp_path / f"{name}.safetensors"
    )

    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):
        locate_sam_checkpoint("vit_q", None, download=False)
    with pytest.raises(WeightsError, match="^sam_checkpoint .* not found"):
        locate_sam_checkpoint("vit_b", tmp_path / "nope.safetensors", download=True)
    explicit = tmp_path / "mine.safetensors"
    explicit.write_bytes(b"x")
    assert locate_sam_checkpoint("vit_b", explicit, download=False) == explicit
    assert locate_sam_checkpoint("vit_b", None, download=False) is None and fetched == []
    assert locate_sam_checkpoint("vit_l", None, download=True) == tmp_path / "sam-vit-l.safetensors"
    assert fetched == ["sam-vit-l"]
    cached["sam-vit-h"] = tmp_path / "h.safetensors"
    assert locate_sam_checkpoint("vit_h", None, download=True) == tmp_path / "h.safetensors"
    assert fetched == ["sam-vit-l"]


def test_sam_downloads_from_the_loopback_hub_and_guides_the_enhancer(tmp_path, monkeypatch):
    """`--prior sam` end to end: registry → loopback Hub download → sha256 → SAM masks → denoiser."""
    import dataclasses
    import hashlib

    from lowlight_cli.checkpoints import hub as checkpoint_hub
    from lowlight_cli.pipeline import build
    from tests.conftest import tiny_model
    from tests.hub_server import FakeHub

    payload = tiny_sam_file(tmp_path, seed=3).read_bytes()
    entry = dataclasses.replace(
        checkpoint_hub.REGISTRY["sam-vit-b"],
        repo_id="test/sam-tiny",
        revision="a" * 40,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    monkeypatch.setitem(checkpoint_hub.REGISTRY, "sam-vit-b", entry)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with FakeHub() as hub:
        hub.add("test/sam-tiny", "a" * 40, "model.safetensors", payload)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert locate_sam_checkpoint("vit_b", None, download=False) is None  # auto never downloads
        path = locate_sam_checkpoint("vit_b", None, download=True)
    assert path.read_bytes() == payload and checkpoint_hub.find_cached("sam-vit-b") == path

    producer = tiny_producer(path, cache=PriorCache(tmp_path / "priors"))
    base = build(denoiser=tiny_model(), device="cpu", prior="none", steps=2, work_size=64)
    enhancer = dataclasses.replace(base, prior=producer)  # a prior producer handed in
    result = enhancer.enhance(synthetic_image(60, 80) * 0.1)
    assert result.prior.source == "sam:tiny" and result.prior.num_regions >= 1
    assert result.rgb.shape == (60, 80, 3)


def test_sam_makes_room_for_the_denoiser_only_when_memory_is_short(tmp_path, monkeypatch):
    from dataclasses import replace

    import lowlight_cli.pipeline as pipeline
    from lowlight_cli.pipeline import build
    from tests.conftest import tiny_model

    producer = tiny_producer(tiny_sam_file(tmp_path, seed=5), cache=None)
    enhancer = replace(build(denoiser=tiny_model(), device="cpu", prior="none", steps=1, work_size=64), prior=producer)
    image = synthetic_image(60, 80) * 0.1

    first = enhancer.enhance(image)
    assert producer._sam is not None  # plenty of memory: SAM stays loaded for the next photo

    monkeypatch.setattr(pipeline, "free_bytes", lambda device: 0)
    second = enhancer.enhance(image)
    assert producer._sam is None  # dropped before sampling, reloaded from its checkpoint on demand
    third = enhancer.enhance(image)
    assert producer._sam is None
    for result in (second, third):
        np.testing.assert_array_equal(result.prior.labels, first.prior.labels)
        np.testing.assert_allclose(result.rgb, first.rgb, atol=1e-6)

    # A SAM handed in as a model has no checkpoint to come back from: it stays.
    held = SamPriorProducer.from_model(
        build_sam(TINY), "tiny", max_regions=8, points_per_side=4, encoder_size=64, arch=TINY, cache=None
    )
    replace(enhancer, prior=held).enhance(image)
    assert held._sam is not None and not held.release()
