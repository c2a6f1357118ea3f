"""Reconstruction: the full photo's own base, the model's working-size change carried onto it, the detail's
colour noise thresholded and its grey part kept at least in half."""

import numpy as np
import pytest

from lowlight_cli.imaging.prepare import resize
from lowlight_cli.imaging.reconstruct import (
    GREY_KEPT,
    STRIP,
    band_rows,
    photo_noise,
    reconstruct,
    strips,
    upsample,
    upsample_rows,
)


def smooth_scene(height, width):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 17.0) * np.cos(y / 23.0)], axis=2)


def rows_of(planes: np.ndarray):
    """A full base held whole, handed out band by band as the reconstruction asks for it."""
    return lambda rows: planes[:, rows].copy()


def pair(full: np.ndarray, gain: float, work_shape=(100, 100)):
    """(full input, its base at `gain` as planes, working input, working base): a linear 'tone' for the tests."""
    work = resize(full, *work_shape)
    return full, np.ascontiguousarray(np.moveaxis(np.clip(full * gain, 0, 1), -1, 0)), work, np.clip(work * gain, 0, 1)


def test_the_model_s_change_at_working_size_is_carried_whole_onto_the_full_base():
    """A constant change of the working output is a constant change of the result (upsampling is linear)."""
    full, base, work, work_base = pair(0.05 + smooth_scene(300, 400) * 0.15, 3.0, (75, 100))  # nothing clips
    plain = reconstruct(full, rows_of(base), work, work_base, work_base)
    changed = reconstruct(full, rows_of(base), work, work_base, work_base + np.float32([0.05, -0.02, 0.01]))
    assert plain.shape == full.shape
    assert np.allclose(changed - plain, [0.05, -0.02, 0.01], atol=1e-5)


def test_a_smooth_photo_comes_back_as_its_full_base():
    full, base, work, work_base = pair(smooth_scene(300, 400) * 0.15, 3.0, (75, 100))
    out = reconstruct(full, rows_of(base), work, work_base, work_base)
    assert np.abs(out - np.moveaxis(base, 0, -1))[10:-10, 10:-10].mean() < 0.005


def test_colour_noise_is_not_amplified_by_the_gain():
    """Noise whose channels sum to zero at every pixel is all colour: the soft threshold takes most of it off."""
    rng = np.random.default_rng(0)
    clean = smooth_scene(400, 400) * 0.1
    noise = rng.normal(0, 0.01, clean.shape).astype(np.float32)
    noise -= noise.mean(axis=2, keepdims=True)
    full, base, work, work_base = pair(clean + noise, 4.0)
    out = reconstruct(full, rows_of(base), work, work_base, np.clip(resize(clean, 100, 100) * 4.0, 0, 1))
    naive_error = np.abs(np.moveaxis(base, 0, -1) - clean * 4.0).mean()
    assert np.abs(out - clean * 4.0).mean() < 0.5 * naive_error


def test_grey_texture_under_the_noise_level_keeps_at_least_its_floor_share_at_the_gain():
    """A one-level grey texture on a noisy photo is under any noise threshold and is still carried through,
    at least `GREY_KEPT` of it at the base's gain (the Wiener shrink never goes below that share)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:400, 0:400].astype(np.float32)
    texture = np.where((y + x) % 4 < 2, 1 / 255, -1 / 255).astype(np.float32)[..., None]  # finer than work pixels
    noise = rng.normal(0, 0.01, (400, 400, 3)).astype(np.float32)
    noise -= noise.mean(axis=2, keepdims=True)  # colour only: the grey detail added is exactly the texture
    photo = 0.1 + 0.05 * np.stack([np.sin(x / 7), np.sin(y / 9), np.sin((x + y) / 11)], axis=2) + noise

    def result(full):
        full, base, work, work_base = pair(full, 4.0)
        return reconstruct(full, rows_of(base), work, work_base, work_base)

    added = (result(photo + texture) - result(photo))[8:-8, 8:-8].mean(axis=2)
    pattern = texture[8:-8, 8:-8, 0]
    assert np.corrcoef(added.ravel(), pattern.ravel())[0, 1] > 0.95
    assert np.abs(added).mean() >= GREY_KEPT * 4.0 / 255 - 1e-4


def test_a_black_top_does_not_set_the_noise_level_for_the_whole_photo():
    """A letterbox or black sky filling the first strip must not switch the noise threshold off."""
    rng = np.random.default_rng(0)
    clean = smooth_scene(1200, 96) * 0.1
    noisy = clean + rng.normal(0, 0.01, clean.shape).astype(np.float32)
    noisy[:560] = 0.0
    detail = noisy - upsample(resize(noisy, 300, 24), 1200, 96)
    assert 0.005 < photo_noise([detail[r] for r in band_rows(1200)]) < 0.015
    lower = noisy[600:] - upsample(resize(noisy[600:], 150, 24), 600, 96)
    assert photo_noise([lower[r] for r in band_rows(600)]) == pytest.approx(0.01, rel=0.25)


def test_upsampling_is_pixel_centre_aligned_with_edges_replicated():
    """Each output pixel samples the working grid at its own centre: a 2× ramp's outputs sit a quarter
    of a working pixel either side of each input, and the outermost ones repeat the edge."""
    ramp = np.array([[0.0, 1.0, 2.0]], np.float32).repeat(2, axis=0)
    up = upsample(ramp, 4, 6)
    assert np.allclose(up[0], [0.0, 0.25, 0.75, 1.25, 1.75, 2.0])
    assert np.allclose(up, up[:1])


@pytest.mark.parametrize(
    ("source", "target"), [((7, 5), (30, 21)), ((75, 100), (300, 400)), ((286, 384), (2990, 4014))]
)
def test_upsampled_rows_are_the_rows_of_the_whole_upsampling(source, target):
    """A strip upsampled on its own is that strip of the whole upsampling (to float32 rounding), at the edges
    too, for colour images and planes alike."""
    rng = np.random.default_rng(2)
    image = rng.random(source + (3,), dtype=np.float32)
    whole = upsample(image, *target)
    for rows in (
        slice(0, 1),
        slice(0, 64),
        slice(target[0] // 2 - 3, target[0] // 2 + 61),
        slice(target[0] - 5, target[0]),
    ):
        rows = slice(rows.start, min(rows.stop, target[0]))
        assert np.abs(upsample_rows(image, *target, rows) - whole[rows]).max() < 1e-6
        assert np.abs(upsample_rows(image[..., 1], *target, rows) - whole[rows, :, 1]).max() < 1e-6


def test_strips_on_threads_give_the_one_thread_result():
    """Every strip is made from the input alone, so the number of threads cannot change a pixel."""
    rng = np.random.default_rng(3)
    full, base, work, work_base = pair(
        smooth_scene(700, 90) * 0.2 + rng.normal(0, 0.01, (700, 90, 3)).astype(np.float32), 3.0
    )
    one = reconstruct(full, rows_of(base), work, work_base, work_base + 0.01, workers=1)
    assert np.array_equal(reconstruct(full, rows_of(base), work, work_base, work_base + 0.01, workers=3), one)


@pytest.mark.parametrize("height", [1, 63, 64, 500, 513, 2990])
def test_strips_cover_the_photo_once_with_each_noise_band_among_them(height):
    bands = band_rows(height)
    cover = strips(height, bands)
    assert [r.start for r in cover] == [0] + [r.stop for r in cover[:-1]] and cover[-1].stop == height
    assert all(0 < r.stop - r.start <= STRIP for r in cover)
    if height > 512:
        assert all(band in cover for band in bands)


@pytest.mark.parametrize("height", [40, 65, 300, 513, 700])
def test_every_row_is_developed_once(height):
    """The noise bands' strips are developed for the measurement and reused: no row is developed twice."""
    full, base, work, work_base = pair(smooth_scene(height, 30) * 0.2, 3.0, (max(1, height // 4), 8))
    asked: list[int] = []

    def rows(band: slice) -> np.ndarray:
        asked.extend(range(band.start, band.stop))
        return base[:, band].copy()

    reconstruct(full, rows, work, work_base, work_base, workers=2)
    assert sorted(asked) == list(range(height))
