"""The global tone branch: how it develops a photo, the exposure bias, and how it is trained on whole frames."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight_cli.imaging.colour import REC601, REC709, luma
from lowlight_cli.models.condition import develop
from lowlight_cli.models.local_exposure import compression
from lowlight_cli.models.tone import (
    CLIP_LEVEL,
    GAMUT_TOP,
    LIT_LEVEL,
    LIT_RISE,
    ToneEstimator,
    ToneParams,
    apply_tone,
    apply_tone_array,
    default_curve,
    fit_in_gamut,
    fit_to_white,
    gain_loss,
    hold_exposed,
    identity_curve,
    is_night,
    is_part_lit,
    linear_to_srgb,
    local_factor,
    mix,
    roll_off_highlights,
    srgb_to_linear,
    target_gains,
    thumbnail,
    with_gains,
)
from tests.conftest import dark_array, tiny_model

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "lowlight-samples" / "DICM_06.jpg"


def photo() -> torch.Tensor:
    return torch.from_numpy(dark_array(48, 64).astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_srgb_round_trip_and_a_fresh_estimator_starts_from_the_default_curve():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    params = ToneEstimator()(photo())
    assert torch.allclose(params.curve[0], default_curve(), atol=1e-4)
    assert torch.allclose(params.log_wb, torch.zeros(1, 3), atol=1e-6) and torch.allclose(
        params.saturation, torch.ones(1)
    )


def test_black_stays_black_and_the_curve_is_monotone_in_brightness():
    tone = ToneEstimator()
    low = photo()
    params = tone(low)
    assert apply_tone(torch.zeros(1, 3, 4, 4), params).abs().max() < 1e-6
    ramp = torch.linspace(0, 1, 256).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    developed = apply_tone(ramp, params)[0, 0, 0]
    assert bool((developed[1:] >= developed[:-1] - 1e-6).all())
    assert developed[-1] <= 1.0 and developed[-1] > 0.9  # highlights compressed below white, not clipped early


def test_a_bright_colour_fades_towards_white_keeping_its_luminance_instead_of_clipping_a_channel():
    # Linear RGB: a warm lamp whose red would pass white, and a dim red that fits.
    colours = torch.tensor([[1.6, 0.7, 0.3], [0.4, 0.1, 0.05]]).T.reshape(1, 3, 1, 2)
    lum = luma(colours, REC709)
    fitted = fit_to_white(colours, lum)
    assert torch.allclose(luma(fitted, REC709), lum, atol=1e-6)  # brightness, and so detail, kept
    lamp, dim = fitted[0, :, 0, 0], fitted[0, :, 0, 1]
    assert float(lamp.max()) == pytest.approx(GAMUT_TOP, abs=1e-6)
    assert float(lamp[0]) > float(lamp[1]) > float(lamp[2])  # still warm, only paler
    assert torch.allclose(dim, colours[0, :, 0, 1], atol=1e-7)  # a colour inside the display is left alone
    # Two lamps of different brightness (both under GAMUT_TOP in luminance) stay different, where clipping
    # the red channel made them one red.
    pair = torch.tensor([[1.2, 0.5, 0.2], [1.5, 0.65, 0.25]]).T.reshape(1, 3, 1, 2)
    fitted = fit_to_white(pair, luma(pair, REC709))
    assert float(luma(fitted, REC709)[0, 0, 0, 1] - luma(fitted, REC709)[0, 0, 0, 0]) > 0.15
    assert float(fitted.amax()) <= GAMUT_TOP + 1e-6
    # Luminance itself over the gamut's top: grey at that luminance, for the roll-off to compress.
    glare = torch.tensor([2.0, 0.9, 0.5]).reshape(1, 3, 1, 1)
    grey = fit_to_white(glare, luma(glare, REC709))
    assert torch.allclose(grey, luma(glare, REC709).expand(1, 3, 1, 1), atol=1e-6)


def test_a_crop_developed_from_the_whole_frame_equals_the_crop_of_the_whole_developed_frame():
    tone = ToneEstimator()
    low = photo()
    whole, _ = develop(low, tone, 0.42)
    crop, _ = develop(low[..., 8:40, 16:48], tone, 0.42, thumb=low)
    assert torch.allclose(crop, whole[..., 8:40, 16:48], atol=1e-6)
    alone, _ = develop(low[..., 8:40, 16:48], tone, 0.42)  # judged from the crop alone, the tone differs
    assert not torch.allclose(alone, crop, atol=1e-3)


def test_exposure_bias_brightens_monotonically_and_needs_a_tone_branch():
    tone = ToneEstimator().requires_grad_(False)
    low = photo()
    means = [float(develop(low, tone, 0.42, ev=ev)[0].mean()) for ev in (-2, -1, 0, 1, 2)]
    assert all(b > a + 0.01 for a, b in zip(means, means[1:], strict=False)), means
    with pytest.raises(ValueError, match="no tone branch"):
        develop(low, None, 0.42, ev=1.0)
    base, _ = develop(low, None, 0.42)  # the first release's auto-gamma, unchanged
    assert abs(float(base.mean()) - 0.42) < 0.1


@pytest.mark.skipif(not SAMPLE.exists(), reason="needs ../shared/data/lowlight-samples")
def test_enhancer_exposure_is_monotone_on_a_real_photo_and_zero_is_the_default(tmp_path):
    from lowlight_cli.io.images import load_image
    from lowlight_cli.pipeline import build

    model = tiny_model(tone_curve=True)
    rgb = load_image(SAMPLE).rgb[::4, ::4]
    outputs = {ev: build(denoiser=model, device="cpu", prior="none", exposure=ev).enhance(rgb).rgb for ev in (-1, 0, 1)}
    means = [float(outputs[ev].mean()) for ev in (-1, 0, 1)]
    assert means[0] + 0.02 < means[1] < means[2] - 0.02, means
    assert np.array_equal(outputs[0], build(denoiser=model, device="cpu", prior="none").enhance(rgb).rgb)
    from lowlight_cli.errors import UsageError

    with pytest.raises(UsageError, match="^exposure needs a model with a tone branch"):
        build(denoiser=tiny_model(), device="cpu", prior="none", exposure=1.0)
    with pytest.raises(UsageError, match="within ±3 EV"):
        build(denoiser=model, device="cpu", prior="none", exposure=5.0)


@pytest.mark.skipif(not SAMPLE.exists(), reason="needs ../shared/data/lowlight-samples")
def test_highlights_local_keeps_a_floodlit_facade_at_night_below_white_and_detailed():
    """DICM_26: a floodlit memorial on a black sky. `--highlights local` renders the regions the camera had lit
    darker and with more contrast than the curve's shoulder does, and leaves the dark rest of the frame alone.
    The shipped model: its exposure is what pushes the facade past white (a random one's is not)."""
    from lowlight_cli.io.images import load_image
    from lowlight_cli.pipeline import build

    rgb = load_image(SAMPLE.with_name("DICM_26.jpg")).rgb[::2, ::2]
    y = luma(rgb, REC601)
    lit, dark = y >= 0.5, y < 0.05
    out = {
        mode: luma(build(model="default", device="cpu", prior="none", highlights=mode).enhance(rgb).rgb, REC601)
        for mode in ("curve", "local")
    }
    assert out["curve"][lit].mean() > 0.93 and out["curve"][lit].std() < 0.01  # a pale, flat block
    assert out["local"][lit].mean() < out["curve"][lit].mean() - 0.05
    # v10's own judged local exposure already gives the curve some of the facade's contrast (v8: 4× apart)
    assert out["local"][lit].std() > 2 * out["curve"][lit].std()
    assert abs(out["local"][dark].mean() - out["curve"][dark].mean()) < 0.01


def lol_like_folder(root: Path, groups: int = 30) -> Path:
    for sub in ("low", "high"):
        (root / sub).mkdir(parents=True)
    lines = ["name,scene_group"]
    for g in range(groups):
        for k in range(2):
            name = f"{g * 2 + k}.png"
            Image.fromarray(dark_array(32, 40, seed=g)).save(root / "low" / name)
            Image.fromarray(np.clip(dark_array(32, 40, seed=g).astype(int) * 5, 0, 255).astype(np.uint8)).save(
                root / "high" / name
            )
            lines.append(f"{name},{g}")
    (root / "pairs.csv").write_text("\n".join(lines) + "\n")
    return root


def test_low_high_folders_split_by_scene_group_and_a_folder_without_groups_is_used_whole(tmp_path):
    from lowlight_cli.training.data import paired_rows

    root = lol_like_folder(tmp_path / "lol")
    train, val, everything = (paired_rows(root, split) for split in ("train", "val", "all"))
    assert len(train) + len(val) == len(everything) == 60 and val
    assert not {g for _, _, g in train} & {g for _, _, g in val}  # never split by row
    (root / "pairs.csv").unlink()  # a test set (LOL eval15): every pair in any split
    assert len(paired_rows(root, "val")) == len(paired_rows(root, "train")) == 60


def test_crops_carry_their_whole_photo_and_unchanged_photos_are_their_own_target(tmp_path):
    from lowlight_cli.training.data import THUMB, TrainingData

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.clip(dark_array(64, 80, seed=i).astype(int) * 6, 0, 255).astype(np.uint8)).save(
            photos / f"{i}.png"
        )
    data = TrainingData([photos], None, 0.42, crop=32, log=lambda m: None, unchanged_share=1.0, mild_share=0.0)
    rng = np.random.default_rng(0)
    sample = data.sample(rng, 8)
    assert sample["thumb"].shape == (3, THUMB, THUMB)
    assert torch.equal(sample["low"], sample["high"])  # nothing to brighten: the target is the input
    frame = data.frame(rng)
    assert torch.equal(frame["low"], frame["high"]) and frame["low"].shape == (3, THUMB, THUMB)
    data = TrainingData([photos], None, 0.42, crop=32, log=lambda m: None)
    frames = data.batch(np.random.default_rng(1), 16, 8, frames=True)
    assert float(frames["low"].mean()) < float(frames["high"].mean())  # most are darkened


def test_the_tone_phase_trains_the_branch_on_frames_and_then_the_denoiser_uses_it(tmp_path):
    from lowlight_cli.models.checkpoint import load_checkpoint, read_provenance
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import TrainOptions, train
    from tests.conftest import TINY

    root = lol_like_folder(tmp_path / "lol", groups=6)
    data = TrainingData([root], None, 0.42, crop=32, log=lambda m: None)
    out = tmp_path / "m.safetensors"
    options = TrainOptions(
        data=[root],
        out=out,
        steps=2,
        batch_size=2,
        crop=32,
        tone_steps=30,
        tone_batch_size=8,
        tone_lr=3e-3,
        save_every=100,
        prior="none",
        config=ModelConfig(**{**TINY, "tone_curve": True, "use_prior": False}),
    )
    train(options, data, notify=lambda m: None)
    model = load_checkpoint(out)
    assert read_provenance(out)["steps"] == 32
    fresh = ToneEstimator()
    frames = data.batch(np.random.default_rng(3), 8, 8, frames=True)
    error = lambda tone: float((develop(frames["low"], tone, 0.42)[0] - frames["high"]).abs().mean())  # noqa: E731
    assert error(model.tone) < 0.8 * error(fresh), (error(model.tone), error(fresh))


def test_a_fine_tune_that_adds_a_tone_branch_does_not_ship_a_blend_with_the_old_denoiser(tmp_path):
    """Its EMA warms up from the phase start (a plain fine-tune's EMA keeps the init's weights instead)."""
    from lowlight_cli.models.checkpoint import load_checkpoint, save_checkpoint
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import TrainOptions, train
    from tests.conftest import TINY

    root = lol_like_folder(tmp_path / "lol", groups=4)
    data = TrainingData([root], None, 0.42, crop=32, log=lambda m: None)
    init = tmp_path / "first-release.safetensors"
    save_checkpoint(tiny_model(use_prior=False), init)
    moved = {}
    for tone in (False, True):
        out = tmp_path / f"tone{tone}.safetensors"
        options = TrainOptions(
            data=[root],
            out=out,
            steps=6,
            batch_size=2,
            crop=32,
            lr=1e-2,
            tone_steps=2 * tone,
            tone_batch_size=4,
            save_every=100,
            prior="none",
            init=init,
            config=ModelConfig(**{**TINY, "tone_curve": tone, "use_prior": False}),
        )
        train(options, data, notify=lambda m: None)
        before, after = load_checkpoint(init).state_dict(), load_checkpoint(out).state_dict()
        moved[tone] = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert moved[False] < 1e-3 < moved[True], moved


def test_target_gains_recover_the_exposure_and_white_balance_that_made_the_target():
    low = photo()
    neutral = linear_to_srgb(srgb_to_linear(low) * 3.0)
    log_exposure, log_wb = target_gains(low, neutral)
    assert float(log_exposure[0]) == pytest.approx(np.log(3.0), abs=0.02)
    assert float(log_wb.abs().max()) < 0.02
    cast = torch.tensor([1.6, 1.0, 0.7])
    log_exposure, log_wb = target_gains(low, linear_to_srgb(srgb_to_linear(low) * cast.view(1, 3, 1, 1)))
    weights = torch.tensor(REC709)
    expected = torch.log(cast) - (torch.log(cast) * weights).sum()
    assert torch.allclose(log_wb[0], expected, atol=0.03)
    assert abs(float((log_wb * weights).sum())) < 1e-5  # luminance-neutral, like the estimator's


def test_teacher_forced_develop_uses_the_targets_gains_and_the_gain_loss_measures_the_miss():
    tone, low = ToneEstimator(), photo()
    high = linear_to_srgb(srgb_to_linear(low) * 8.0)
    gains = target_gains(low, high)
    forced, _ = develop(low, tone, 0.42, target_thumb=high)
    assert torch.allclose(forced, apply_tone(low, with_gains(tone(low), gains)))
    assert not torch.allclose(forced, develop(low, tone, 0.42)[0])
    assert float(gain_loss(with_gains(tone(low), gains), gains)) == 0.0
    shifted = (gains[0] + 0.5, gains[1])
    assert float(gain_loss(with_gains(tone(low), shifted), gains)) == pytest.approx(0.5, abs=1e-5)


def test_highlights_the_camera_already_exposed_are_compressed_not_blown():
    """A lit facade on a black night sky: the estimator's gain would blow it; the roll-off keeps it below white
    and leaves the curve under the knee (shadows and mid-tones) as it was."""
    low = torch.full((1, 3, 64, 64), 0.02)
    low[:, :, 20:44, 12:52] = torch.linspace(0.45, 0.85, 40)  # a bright subject, 23% of the frame
    params = ToneEstimator()(low)
    params = with_gains(params, (torch.tensor([math.log(40.0)]), torch.zeros(1, 3)))  # a night-sky auto-exposure
    params = replace(params, curve=(params.curve / 0.9).clamp(max=1.0))  # fitted to targets that clip
    blown = lambda p: float((apply_tone(low, p).amax(dim=1) >= CLIP_LEVEL).float().mean())  # noqa: E731
    assert blown(params) > 0.2
    rolled = roll_off_highlights(params, low)
    assert blown(rolled) <= 0.01
    knee = params.curve[0] < 0.75
    assert torch.equal(rolled.curve[0][knee], params.curve[0][knee])
    assert bool((torch.diff(rolled.curve[0]) >= 0).all())  # still monotone
    assert torch.equal(rolled.log_exposure, params.log_exposure)


def test_a_photo_that_does_not_clip_keeps_its_curve():
    low = torch.linspace(0.01, 0.3, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    params = ToneEstimator()(low)
    assert torch.equal(roll_off_highlights(params, low).curve, params.curve)


def test_the_roll_off_guards_inference_only(monkeypatch):
    """Training scores the curve it learns: with --no-teacher-gains neither phase develops through the roll-off,
    which inference (the default) does."""
    import lowlight_cli.models.condition as condition
    from lowlight_cli.training.trainer import TrainOptions, tone_loss

    calls = []
    monkeypatch.setattr(condition, "roll_off_highlights", lambda params, *_: calls.append(1) or params)
    tone, low = ToneEstimator(), torch.full((2, 3, 32, 32), 0.05)
    tone_loss(tone, {"low": low, "high": low * 8}, TrainOptions(data=[], out=Path("x"), teacher_gains=False))
    assert calls == []
    condition.develop(low, tone, 0.45)
    assert calls == [1]


def facade_at_night() -> tuple[torch.Tensor, ToneParams]:
    """A lit facade with columns (a bright subject, 23% of the frame) on a black night sky, and a judgement
    whose night-sky auto-exposure pushes the facade stops past white."""
    low = torch.full((1, 3, 64, 64), 0.02)
    low[:, :, 20:44, 12:52] = 0.7
    low[:, :, 24:44, 14:52:6] = 0.45  # the shade between columns: detail inside the lit region
    params = with_gains(ToneEstimator()(low), (torch.tensor([math.log(40.0)]), torch.zeros(1, 3)))
    return low, params


def test_local_exposure_lowers_a_lit_region_whole_and_keeps_its_detail_and_the_dark_ground():
    low, params = facade_at_night()
    lum = luma(srgb_to_linear(low) * 40.0, REC709)
    assert torch.equal(compression(lum, torch.zeros(1)), torch.ones_like(lum))
    factor = compression(lum, torch.ones(1))
    assert float(factor[0, 0, 32, 30]) < 0.1  # the facade comes down by more than three stops
    sky = factor[0, 0, 14:20]  # the black sky just above the facade (row 20), within the filter's reach
    assert float(sky.min()) == 1.0  # untouched: no dark halo
    compressed = torch.log2(lum * factor)[0, 0, 30]
    column, shade = float(compressed[17]), float(compressed[20])  # a column and the shade beside it
    before = float(torch.log2(lum[0, 0, 30, 17] / lum[0, 0, 30, 20]))
    assert column - shade > 0.8 * before  # the detail keeps most of its contrast (a curve's shoulder would not)


def test_auto_highlights_are_local_for_a_night_scene_and_the_curve_otherwise():
    """`--highlights auto` (the roll-off's `local=None`): the facade on a black sky is a night scene and
    gets local exposure; the same facade on a ground at 0.05 is not, and keeps the curve's roll-off."""
    low, params = facade_at_night()
    night, day = torch.where(low == 0.02, 0.004, low), low.clamp_min(0.05)  # a sky 1 of 255 levels; lit ground
    assert is_night(night).tolist() == [True] and is_night(day).tolist() == [False]
    for low, local in ((night, True), (day, False)):
        auto, chosen = roll_off_highlights(params, low, local=None), roll_off_highlights(params, low, local=local)
        assert torch.equal(auto.curve, chosen.curve) and torch.equal(auto.highlights, chosen.highlights)
    assert float(roll_off_highlights(params, night, local=None).highlights[0]) > 0.0


def test_locally_a_part_lit_photo_keeps_its_lit_regions_level_and_a_night_scene_s_subject_is_lifted():
    """The camera metered for a part-lit photo's sky: local exposure holds its lit regions within `LIT_RISE`
    stops of their level. A night scene's lit subject, left dark by a meter fooled by the black ground,
    is lifted further, as far as the clip test allows. A small lit window is not a part-lit photo."""
    low, params = facade_at_night()
    dim = 0.55 / 0.7  # the facade at display luma 0.55, lit, with room to rise under white
    night, part_lit = torch.where(low == 0.02, 0.004, low) * dim, low.clamp_min(0.05) * dim
    window = torch.full_like(low, 0.05)
    window[:, :, 28:36, 20:44] = 0.7  # 5 % of the frame
    assert is_night(torch.cat([night, part_lit, window])).tolist() == [True, False, False]
    assert is_part_lit(torch.cat([night, part_lit, window])).tolist() == [True, True, False]

    def rise(low: torch.Tensor, keep_level: bool = True) -> float:
        with torch.no_grad():
            rolled = roll_off_highlights(params, low, local=True, keep_level=keep_level)
            before = luma(low, REC601)
            lit = before >= LIT_LEVEL
            return float(torch.log2(luma(apply_tone(low, rolled), REC601)[lit].mean() / before[lit].mean()))

    assert rise(part_lit) <= LIT_RISE
    assert rise(part_lit, keep_level=False) > LIT_RISE  # `auto`'s local (video: a shot that began at night)
    assert rise(night) > LIT_RISE


def test_only_the_users_local_holds_a_part_lit_photo_s_level():
    """The pipeline hands the roll-off `keep_level` for `--highlights local` only: under `auto`, a video shot
    that began as a night scene (its `local` chosen once) develops a later, part-lit frame as before."""
    from lowlight_cli.imaging.prepare import to_tensor
    from lowlight_cli.pipeline import build

    low = np.full((64, 96, 3), 0.05, np.float32)
    low[:24] = 0.6  # a lit sky over a dark ground: 38 % of the frame
    auto = build(model="default", device="cpu", prior="none")
    users = auto.with_settings(highlights="local")
    assert auto.look is not None
    with torch.no_grad():
        judged = auto.look(to_tensor(low))
        for enhancer, keep_level in ((auto, False), (users, True)):
            expected = hold_exposed(roll_off_highlights(judged, to_tensor(low), True, keep_level), to_tensor(low))
            got = enhancer.judge(low, local=True)
            assert got is not None and torch.equal(got.curve, expected.curve)
            assert torch.equal(got.highlights, expected.highlights)


def test_local_highlights_keep_a_lit_facade_s_detail_that_the_curve_alone_flattens():
    low, params = facade_at_night()
    curve_only = roll_off_highlights(params, low)
    assert float(curve_only.highlights[0]) == 0.0
    rolled = roll_off_highlights(params, low, local=True)
    assert 0.0 < float(rolled.highlights[0]) <= 1.0
    assert torch.equal(rolled.curve, params.curve)  # local exposure was enough: the curve is as judged
    contrast = lambda p: float(  # noqa: E731
        (lambda lum: lum[30, 17] / lum[30, 20])(  # column against shade
            luma(srgb_to_linear(apply_tone(low, p)), REC709)[0, 0]
        )
    )
    assert contrast(rolled) > 1.1
    assert contrast(curve_only) < 1.01  # the curve alone leaves the columns flat
    assert float((apply_tone(low, rolled).amax(dim=1) >= CLIP_LEVEL).float().mean()) <= 0.01


def test_video_mixes_the_local_exposure_strength_and_a_judgement_without_one_counts_as_zero():
    low, params = facade_at_night()
    rolled = roll_off_highlights(params, low, local=True)
    mixed = mix(params, rolled, 0.75)  # the shot so far had none; this frame needs some
    assert float(mixed.highlights[0]) == pytest.approx(0.25 * float(rolled.highlights[0]))
    assert float(mix(rolled, rolled, 0.5).highlights[0]) == pytest.approx(float(rolled.highlights[0]))


def test_the_white_balance_is_the_same_for_a_photo_and_its_mirror_image():
    torch.manual_seed(0)
    tone = ToneEstimator()
    for layer in tone.features:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.weight, std=0.5)  # a trunk that sees where things are
    torch.nn.init.normal_(tone.head[-1].weight, std=0.1)  # a judgement that depends on the picture
    low = photo()
    with torch.no_grad():
        params, mirrored = tone(low), tone(low.flip(-1))
        pair = tone(torch.cat([low, low.flip(-2)]))
        other = tone(low.flip(-2))
    assert params.log_wb.abs().max() > 1e-3
    assert torch.allclose(params.log_wb, mirrored.log_wb, atol=1e-6)
    assert (params.log_exposure - mirrored.log_exposure).abs().item() > 1e-2  # exposure keeps the orientation
    # In a batch each photo keeps its own judgement (the mirror pass is batched with the originals).
    assert torch.allclose(pair.log_wb[0], params.log_wb[0], atol=1e-6)
    assert torch.allclose(pair.log_wb[1], other.log_wb[0], atol=1e-6)
    assert torch.allclose(pair.log_exposure, torch.cat([params.log_exposure, other.log_exposure]), atol=1e-6)
    assert not torch.allclose(pair.log_wb[0], pair.log_wb[1], atol=1e-4)


def test_look_only_training_moves_the_look_head_and_nothing_else(tmp_path):
    """`--tone-parts look` fine-tunes the black point and local exposure on a finished branch: its exposure,
    white balance and curve heads come out bit-identical, the look head (new to the init) does not."""
    from lowlight_cli.models.checkpoint import load_checkpoint, save_checkpoint
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import TrainOptions, train
    from tests.conftest import TINY

    root = lol_like_folder(tmp_path / "lol", groups=4)
    data = TrainingData([root], None, 0.42, crop=32, log=lambda m: None)
    init = tmp_path / "branch.safetensors"
    save_checkpoint(tiny_model(tone_curve=True, use_prior=False), init)
    out = tmp_path / "look.safetensors"
    options = TrainOptions(
        data=[root],
        out=out,
        steps=1,
        stop_at=6,
        batch_size=2,
        crop=32,
        tone_steps=6,
        tone_batch_size=4,
        tone_lr=1e-2,
        save_every=100,
        prior="none",
        init=init,
        tone_parts="look",
        config=ModelConfig(**{**TINY, "tone_curve": True, "tone_look": True, "use_prior": False}),
    )
    train(options, data, notify=lambda m: None)
    before, after = load_checkpoint(init).state_dict(), load_checkpoint(out).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # everything the init had, the tone branch too
    fresh = ToneEstimator(look=True).look
    assert not torch.equal(after["tone.look.bias"], fresh.bias.to(after["tone.look.bias"].dtype))


def test_the_black_point_is_taken_off_before_the_gains_and_bounded_by_the_darkest_level():
    """A pedestal under the whole frame (an unseen camera's red 4 levels up) is what the black level takes
    off: the developed darkest pixels come down, never below zero, and a photo without one keeps its blacks."""
    tone = ToneEstimator(look=True)
    with torch.no_grad():
        tone.look.bias.copy_(torch.tensor([10.0, 10.0, 10.0, -10.0]))  # the whole darkest level, no local exposure
    low = photo()
    lifted = linear_to_srgb(srgb_to_linear(low) + torch.tensor([0.0012, 0.0, 0.0]).view(1, 3, 1, 1))
    params = tone(lifted)
    floor = torch.quantile(srgb_to_linear(thumbnail(lifted)).flatten(2), 0.005, dim=2)
    assert torch.all(params.black <= floor + 1e-7) and float(params.black[0, 0]) > 0.001
    developed, plain = apply_tone(lifted, params), apply_tone(lifted, replace(params, black=torch.zeros(1, 3)))
    assert float(developed[:, 0].amin()) < float(plain[:, 0].amin()) and float(developed.amin()) >= 0.0
    assert torch.equal(ToneEstimator()(low).black, torch.zeros(1, 3))  # no look head: no black point


def test_a_floor_near_the_mean_is_taken_off_whatever_the_head_says_and_a_shadow_is_left_to_it():
    """`pedestal_share` is a floor under the look head's black share: a channel whose darkest level sits at
    `PEDESTAL_FULL` of its mean or more loses all of it, one under `PEDESTAL_FROM` keeps the head's share."""
    from lowlight_cli.models.tone import PEDESTAL_FROM, PEDESTAL_FULL, PEDESTAL_MOST, pedestal_share

    mean = torch.full((1, 3), 0.004)
    floor = mean * torch.tensor([[PEDESTAL_FULL, (PEDESTAL_FROM + PEDESTAL_FULL) / 2, PEDESTAL_FROM / 2]])
    assert torch.allclose(pedestal_share(floor, mean), torch.tensor([[1.0, 0.5, 0.0]]), atol=1e-6)
    tone = ToneEstimator(look=True)
    with torch.no_grad():
        tone.look.bias.copy_(torch.tensor([-10.0, -10.0, -10.0, -10.0]))  # the head takes nothing off
    low = photo()
    lifted = linear_to_srgb(srgb_to_linear(low) + torch.tensor([0.02, 0.0, 0.0]).view(1, 3, 1, 1))
    thumb = srgb_to_linear(thumbnail(lifted))
    floor = torch.quantile(thumb.flatten(2), 0.005, dim=2)
    share = pedestal_share(floor, thumb.mean(dim=(2, 3)))
    assert float(share[0, 0]) == 1.0 and float(share[0, 1]) == 0.0  # red carries a pedestal, green does not
    pedestal = torch.minimum(floor[0, 0], PEDESTAL_MOST * thumb[0, 0].mean())
    assert (
        torch.allclose(tone(lifted).black[0, 0], pedestal)
        and float(tone(lifted).black[0, 1]) < 1e-4 * float(floor[0, 1]) + 1e-9
    )


def test_a_flat_frame_keeps_most_of_its_signal():
    """In a flat frame the darkest level is the mean: the pedestal rule takes off at most `PEDESTAL_MOST`
    of it, so the exposure has a frame to lift, not a remainder of noise (all of it went before)."""
    from lowlight_cli.models.tone import PEDESTAL_MOST

    tone = ToneEstimator(look=True)
    with torch.no_grad():
        tone.look.bias.copy_(torch.tensor([-10.0, -10.0, -10.0, -10.0]))  # the head takes nothing off
    flat = torch.full((1, 3, 64, 64), 0.1)
    params = tone(flat)
    mean = srgb_to_linear(flat).mean(dim=(2, 3))
    assert torch.allclose(params.black, PEDESTAL_MOST * mean, rtol=1e-4)  # v11 as first shipped: all of it


def test_a_too_bright_colour_keeps_more_of_its_colour_than_paling_gives():
    orange = torch.tensor([2.0, 0.6, 0.1]).view(1, 3, 1, 1)  # linear, far over the top
    lum = luma(orange, REC709)
    paled, fitted = fit_to_white(orange, lum), fit_in_gamut(orange)
    assert float(fitted.amax()) <= GAMUT_TOP + 1e-6
    chroma = lambda x: float((x.amax(dim=1) - x.amin(dim=1)).squeeze())  # noqa: E731
    assert chroma(fitted) > chroma(paled)
    inside = torch.tensor([0.5, 0.3, 0.1]).view(1, 3, 1, 1)
    assert torch.allclose(fit_in_gamut(inside), inside)


@pytest.mark.parametrize("keep_chroma", [True, False])
def test_the_array_development_is_apply_tone_s_arithmetic_in_numpy(keep_chroma):
    """`apply_tone_array` (the full-resolution base, strip by strip) gives `apply_tone`'s pixels: with a
    black level, white balance, saturation, a local exposure factor made apart, and colours out of gamut."""
    rng = np.random.default_rng(7)
    rgb = (rng.random((40, 56, 3)) ** 3).astype(np.float32)
    rgb[:8, :8] = [0.9, 0.2, 0.05]  # a saturated colour the gain pushes out of gamut
    low = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    params = replace(
        with_gains(ToneEstimator()(low), (torch.tensor([math.log(6.0)]), torch.tensor([[0.1, -0.05, 0.2]]))),
        saturation=torch.tensor([1.2]),
        black=torch.tensor([[0.002, 0.0, 0.001]]),
        highlights=torch.tensor([0.6]),
        keep_chroma=keep_chroma,
    )
    with torch.no_grad():
        factor = local_factor(low, params, 0.5)
        expected = apply_tone(low, params, 0.5)[0].permute(1, 2, 0).numpy()
    assert factor is not None and float(factor.min()) < 0.99  # the factor is at work here
    got = apply_tone_array(rgb, params, 0.5, factor[0, 0].numpy())
    # float32 rounding, in other orders and through OpenCV's pow and log, is multiplied by the sRGB curve's
    # slope of 12.92 near black: two 16-bit levels (3e-5) bound it, far under an 8-bit level (4e-3)
    assert np.abs(got - expected).max() < 3e-5


def _judgement(log_exposure: float, saturation: float = 1.3) -> ToneParams:
    """A judgement with the default look's curve, colour and black level, and the given exposure."""
    return ToneParams(
        log_exposure=torch.tensor([log_exposure]),
        log_wb=torch.tensor([[0.1, -0.05, 0.08]]),
        curve=default_curve()[None],
        saturation=torch.tensor([saturation]),
        highlights=torch.tensor([0.3]),
        black=torch.tensor([[0.002, 0.0, 0.001]]),
        held=torch.zeros(1),
        keep_chroma=True,
    )


def test_identity_development_gives_the_photo_back():
    """Under the identity parameters (held wholly: a gamut top of 1) a photo comes back as it went in, up to
    the curve's knots, its bright colours too (at 255 itself the knots' interpolation may overshoot a little and pale a
    saturated colour)."""
    rng = np.random.default_rng(3)
    rgb = torch.from_numpy((rng.random((1, 3, 32, 32)) * 0.99).astype(np.float32))
    zero = torch.zeros(1)
    identity = ToneParams(
        zero, torch.zeros(1, 3), identity_curve()[None], zero + 1, zero, torch.zeros(1, 3), zero + 1, True
    )
    assert float((apply_tone(rgb, identity) - rgb).abs().max()) < 1 / 255


def test_a_photo_the_judgement_barely_moves_is_held_as_it_is():
    """A well-exposed photo whose judgement moves its mean by under `HOLD_FULL` stops gets the identity."""
    rng = np.random.default_rng(4)
    rgb = torch.from_numpy((0.2 + 0.6 * rng.random((1, 3, 48, 48))).astype(np.float32))
    rgb[:, :, :8, :8] = torch.tensor([250.0, 254.0, 229.0]).view(1, 3, 1, 1) / 255  # a sunset's yellow cloud
    judged = _judgement(0.0)
    held = hold_exposed(judged, rgb)
    assert float(held.held) == pytest.approx(1.0)
    assert float((apply_tone(rgb, judged) - rgb).abs().max()) > 10 / 255  # the look alone changes it
    assert float((apply_tone(rgb, held) - rgb).abs().max()) < 1 / 255


def test_a_dark_photo_keeps_its_judgement():
    """A dark photo the judgement brightens by stops is not held at all: its parameters pass unchanged."""
    rng = np.random.default_rng(5)
    rgb = torch.from_numpy((0.05 * rng.random((1, 3, 48, 48))).astype(np.float32))
    judged = _judgement(math.log(8.0))
    held = hold_exposed(judged, rgb)
    for name in ("log_exposure", "log_wb", "curve", "saturation", "highlights", "black"):
        assert torch.equal(getattr(held, name), getattr(judged, name)), name


def test_a_black_frame_is_not_held_and_a_batch_is_held_photo_by_photo():
    """A frame with no level (a fade from black) keeps its judgement; in a batch each photo is held as alone."""
    black = torch.zeros(1, 3, 48, 48)
    judged = _judgement(math.log(8.0))
    assert torch.equal(hold_exposed(judged, black).log_exposure, judged.log_exposure)
    rng = np.random.default_rng(6)
    exposed = torch.from_numpy((0.2 + 0.6 * rng.random((1, 3, 48, 48))).astype(np.float32))
    dark = torch.from_numpy((0.05 * rng.random((1, 3, 48, 48))).astype(np.float32))
    look = _judgement(0.0)
    fields = ("log_exposure", "log_wb", "curve", "saturation", "highlights", "black")
    both = replace(look, **{name: torch.cat([getattr(look, name), getattr(judged, name)]) for name in fields})
    held = hold_exposed(both, torch.cat([exposed, dark]))
    alone = [hold_exposed(look, exposed), hold_exposed(judged, dark)]
    for i, one in enumerate(alone):
        assert torch.allclose(held.curve[i], one.curve[0]) and torch.allclose(held.log_exposure[i], one.log_exposure[0])


def test_a_broken_judgement_develops_to_nan_not_an_index_error():
    """NaN parameters (a damaged checkpoint) give NaN pixels, which the photo step reports as such."""
    rgb = np.full((4, 4, 3), 0.2, np.float32)
    broken = replace(_judgement(float("nan")), keep_chroma=False)
    assert np.isnan(apply_tone_array(rgb, broken)).all()


def test_a_well_exposed_photo_comes_back_as_it_went_in_unless_another_exposure_is_asked():
    """Kodak 1, well exposed: the shipped model's judgement barely moves it, so it is held wholly and the
    pipeline hands back its own pixels (no denoising of what needed no development); `--exposure` still
    develops it."""
    from lowlight_cli.io.images import load_image
    from lowlight_cli.pipeline import build

    rgb = load_image(SAMPLE.parents[1] / "normal" / "kodak24_kodim01.jpg").rgb
    enhancer = build(model="default", device="cpu", prior="none")
    assert enhancer.develop_copy(enhancer.shrink(rgb)).held == 1.0
    assert np.abs(enhancer.enhance(rgb).rgb - rgb).max() < 1e-6
    brighter = enhancer.with_settings(exposure=1.0).enhance(rgb).rgb
    assert luma(brighter, REC601).mean() > luma(rgb, REC601).mean() + 0.05


def test_the_roll_off_judges_each_photo_of_a_batch_by_its_own_parameters():
    """Photo 0's roll-off does not depend on how much of photo 1 is held (each photo's gamut top is its own)."""
    rng = np.random.default_rng(1)
    photos = torch.from_numpy(rng.random((2, 3, 96, 96)).astype(np.float32)) ** 0.5
    zero = torch.zeros(2)

    def judged(held: list[float]) -> ToneParams:
        curve = default_curve()[None].repeat(2, 1)
        wb = torch.tensor([[0.2, 0.0, -0.2]] * 2)
        return ToneParams(zero + 1.2, wb, curve, zero + 1.4, zero, torch.zeros(2, 3), torch.tensor(held), True)

    alone = roll_off_highlights(judged([0.0, 0.0]), photos)
    beside_a_held_one = roll_off_highlights(judged([0.0, 1.0]), photos)
    assert torch.equal(alone.curve[0], beside_a_held_one.curve[0])
