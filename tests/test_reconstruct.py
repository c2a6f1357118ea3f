"""Guided reconstruction: faithful to the working result, no noise amplification."""

import numpy as np
import pytest

from lowlight_cli.imaging.prepare import resize
from lowlight_cli.imaging.reconstruct import fit_colour_transform, photo_noise, reconstruct, upsample


def smooth_scene(height, width):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 17.0) * np.cos(y / 23.0)], axis=2)


def test_colour_transform_fits_a_global_matrix_exactly():
    guide = smooth_scene(40, 60) * 0.2
    matrix = np.array([[2.0, 0.1, 0.0], [0.0, 1.5, 0.2], [0.1, 0.0, 3.0]], np.float32)
    target = guide @ matrix.T + 0.05
    a, b = fit_colour_transform(guide, target, eps=1e-6)
    recon = np.einsum("hwij,hwj->hwi", a, guide) + b
    assert np.abs(recon - target)[4:-4, 4:-4].max() < 1e-2


def test_reconstruction_matches_a_gain_and_keeps_size():
    clean = smooth_scene(300, 400) * 0.15
    work = resize(clean, 75, 100)
    out = reconstruct(clean, work, np.clip(work * 3.0, 0, 1))
    assert out.shape == clean.shape
    assert abs(out.mean() - 3.0 * clean.mean()) < 0.01
    assert np.abs(out - np.clip(clean * 3.0, 0, 1))[10:-10, 10:-10].mean() < 0.01


def test_a_dark_photos_working_edges_survive_a_large_gain():
    """Blocks four working pixels wide at 0.02 and 0.05: local variance far under a fixed eps of 1e-3,
    which flattened the fitted gain and blurred them (mean error 0.07 against 0.001 now)."""
    y, x = np.mgrid[0:320, 0:320]
    dark = np.where(((y // 16) + (x // 16)) % 2 == 0, 0.02, 0.05).astype(np.float32)
    photo = np.repeat(dark[..., None], 3, axis=2)
    work = resize(photo, 80, 80)
    out = reconstruct(photo, work, np.clip(work * 8.0, 0, 1))
    assert np.abs(out - photo * 8.0)[16:-16, 16:-16].mean() < 0.02


def test_colour_noise_is_not_amplified_by_the_gain():
    """Noise whose channels sum to zero at every pixel is all colour: the threshold takes it off."""
    rng = np.random.default_rng(0)
    clean = smooth_scene(400, 400) * 0.1
    noise = rng.normal(0, 0.01, clean.shape).astype(np.float32)
    noise -= noise.mean(axis=2, keepdims=True)
    noisy = clean + noise
    work = resize(noisy, 100, 100)
    out = reconstruct(noisy, work, np.clip(resize(clean, 100, 100) * 4.0, 0, 1))
    naive_error = np.abs(np.clip(noisy * 4.0, 0, 1) - clean * 4.0).mean()
    error = np.abs(out - clean * 4.0).mean()
    assert error < 0.5 * naive_error


def test_grey_texture_under_the_noise_level_is_kept_at_the_gain():
    """A one-level grey texture on a noisy photo is under any noise threshold, and is still carried
    through, amplified by the fitted gain (about 4 here): the grey part of the detail is never
    thresholded (a soft threshold at 2 sigma of this noise took all of it off)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:400, 0:400].astype(np.float32)
    texture = np.where((y + x) % 4 < 2, 1 / 255, -1 / 255).astype(np.float32)[..., None]  # finer than work pixels
    noise = rng.normal(0, 0.01, (400, 400, 3)).astype(np.float32)
    noise -= noise.mean(axis=2, keepdims=True)  # colour only: the grey detail added is exactly the texture
    photo = 0.1 + 0.05 * np.stack([np.sin(x / 7), np.sin(y / 9), np.sin((x + y) / 11)], axis=2) + noise
    work = resize(photo, 100, 100)
    added = reconstruct(photo + texture, work, work * 4.0) - reconstruct(photo, work, work * 4.0)
    inner, pattern = added[8:-8, 8:-8].mean(axis=2), texture[8:-8, 8:-8, 0]
    assert np.corrcoef(inner.ravel(), pattern.ravel())[0, 1] > 0.95
    assert np.abs(inner).mean() > 2.0 / 255


def test_same_size_returns_the_working_output():
    image = smooth_scene(30, 30)
    assert np.allclose(reconstruct(image, image, image * 0.5), image * 0.5)


def test_a_black_top_does_not_set_the_noise_level_for_the_whole_photo():
    """A letterbox or black sky filling the first strip must not switch the noise threshold off."""
    rng = np.random.default_rng(0)
    clean = smooth_scene(1200, 96) * 0.1
    noisy = clean + rng.normal(0, 0.01, clean.shape).astype(np.float32)
    noisy[:560] = 0.0
    low = upsample(resize(noisy, 300, 24), 1200, 96)
    assert 0.005 < photo_noise(noisy, low) < 0.015
    assert photo_noise(noisy[600:], upsample(resize(noisy[600:], 150, 24), 600, 96)) == pytest.approx(0.01, rel=0.25)


def test_the_gpu_strip_loop_computes_what_the_cpu_one_does(monkeypatch):
    """The torch path (computed on the CPU here) matches the host path, edges and strip borders included."""
    import torch

    import lowlight_cli.imaging.reconstruct as module

    rng = np.random.default_rng(3)
    full = np.clip(smooth_scene(203, 317) * 0.2 + rng.normal(0, 0.01, (203, 317, 3)), 0, 1).astype(np.float32)
    work = resize(full, 51, 80)
    work_out = np.clip(work * 2.5 + rng.normal(0, 0.02, work.shape), 0, 1).astype(np.float32)
    expected = reconstruct(full, work, work_out)  # the host path, which has no strips
    on_device = module.apply_on_device
    calls = []

    def on_cpu(full_input, a, b, work_input, threshold, device, rows_per_chunk):
        calls.append(device.type)
        return on_device(full_input, a, b, work_input, threshold, torch.device("cpu"), 50)  # strips end mid-photo

    monkeypatch.setattr(module, "apply_on_device", on_cpu)
    got = reconstruct(full, work, work_out, rows_per_chunk=64, device=torch.device("cuda"))
    assert calls == ["cuda"], "a CUDA device must take the torch path"
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-5
    reconstruct(full, work, work_out, device=torch.device("mps"))
    assert calls == ["cuda"], "MPS stays on numpy: older torch lacks grid_sample's border padding there"

    def exhausted(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(module, "apply_on_device", exhausted)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    fallback = reconstruct(full, work, work_out, device=torch.device("cuda"))
    assert np.array_equal(fallback, expected), "a GPU short of memory falls back to the host loop"


def test_upsampling_is_pixel_centre_aligned_with_edges_replicated():
    """Each output pixel samples the working grid at its own centre: a 2× ramp's outputs sit a quarter
    of a working pixel either side of each input, and the outermost ones repeat the edge."""
    ramp = np.array([[0.0, 1.0, 2.0]], np.float32).repeat(2, axis=0)
    up = upsample(ramp, 4, 6)
    assert np.allclose(up[0], [0.0, 0.25, 0.75, 1.25, 1.75, 2.0])
    assert np.allclose(up, up[:1])
