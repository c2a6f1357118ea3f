"""From the working-resolution result back to the full-resolution photo.

The model's output at working resolution defines a *local colour transform*:
around every pixel, output ≈ A·input + b (a 3×3 matrix and an offset, fitted
by a colour guided filter, He et al.). Those coefficients are smooth, so they
can be upsampled bilinearly and applied to the full-resolution input, which
carries the fine detail the model never saw. Cost is a few passes over the
pixels, independent of the diffusion model: this is what makes a 24 MP
photo cost about the same model time as a 0.1 MP one.

Applying a 10× gain to full-resolution input also amplifies its sensor
noise. The colour of the high-frequency part of the input (full-res minus the
upsampled working copy) is therefore soft-thresholded at a multiple of its
estimated noise level before the transform, and its grey part is kept: the
texture stays, with a film-like grain where the photo is noisy, and the
coloured speckles go.

The fit runs at working size in numpy. The per-pixel part (upsampling the
coefficients, thresholding, applying the transform) runs one plane at a time
through OpenCV's resize on the CPU, and in torch strips on a CUDA GPU
(`device`), where it would otherwise be most of a 12 MP photo's time.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lowlight_cli.imaging.filters import box


def fit_colour_transform(
    guide: np.ndarray, target: np.ndarray, radius: int = 2, eps: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel A (H×W×3×3) and b (H×W×3) with target ≈ A·guide + b in each (2r+1)² window."""
    guide = guide.astype(np.float32)
    target = target.astype(np.float32)
    height, width = guide.shape[:2]
    mean_i = box(guide, radius)
    mean_p = box(target, radius)
    # Covariances via E[xy] − E[x]E[y], all channels at once.
    ii = np.einsum("hwi,hwj->hwij", guide, guide).reshape(height, width, 9)
    ip = np.einsum("hwi,hwj->hwij", guide, target).reshape(height, width, 9)
    var_i = box(ii, radius).reshape(height, width, 3, 3) - np.einsum("hwi,hwj->hwij", mean_i, mean_i)
    cov_ip = box(ip, radius).reshape(height, width, 3, 3) - np.einsum("hwi,hwj->hwij", mean_i, mean_p)
    var_i += eps * np.eye(3, dtype=np.float32)
    # A^T = var_i^{-1} cov_ip, i.e. A[c] = solve(var_i, cov_ip[:, c]).
    a = np.linalg.solve(var_i, cov_ip).transpose(0, 1, 3, 2)
    b = mean_p - np.einsum("hwij,hwj->hwi", a, mean_i)
    a = box(a.reshape(height, width, 9), radius).reshape(height, width, 3, 3)
    b = box(b, radius)
    return a, b


EPS_AT_MID_GREY = 1e-3  # the fit's regulariser for a photo whose mean level is 0.5
MIN_EPS = 1e-6  # about the variance 8-bit quantisation alone gives: keeps a black frame's fit solvable


def relative_eps(guide: np.ndarray) -> float:
    """The fit's regulariser, scaled with the square of the photo's level.

    eps competes with the guide's local variance, which in a dark photo is a
    hundred times smaller than in a bright one: a fixed eps flattened A to zero
    there, and the result became a box blur of the working output (SICE val
    through the working copy: 0.747 SSIM with a fixed eps, 0.785 with this one).
    """
    level = float(np.mean(guide)) / 0.5
    return max(EPS_AT_MID_GREY * level * level, MIN_EPS)


FLAT_SIGMA = 1e-4  # under 1/40 of an 8-bit level: a synthetic flat area (letterbox, clipped sky), not noise


def estimate_noise(detail: np.ndarray) -> float:
    """Robust noise sigma of a zero-mean detail layer (median absolute deviation)."""
    sample = detail[:: max(1, detail.shape[0] // 512), :: max(1, detail.shape[1] // 512)]
    return float(np.median(np.abs(sample)) / 0.6745) + 1e-6


def upsample(image: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear upsampling to height×width, pixel-centre aligned, edges replicated; into `out` if given.

    OpenCV's resize is separable and vectorised: at 12 MP it upsamples a
    plane several times faster than a remap through per-pixel coordinates.
    Writing into one reused buffer matters as much: every fresh 48 MB plane
    costs its page faults again.
    """
    result = cv2.resize(image, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    if out is not None and result is not out:  # OpenCV allocates anew when dtype or shape differ from `out`
        out[...] = result
        return out
    return result


def photo_noise(full_input: np.ndarray, low: np.ndarray, band: int = 64, bands: int = 8) -> float:
    """Noise sigma of the photo's detail layer: full input minus `low`, its working copy upsampled to full size.

    Measured in `bands` row bands spread over the height, and the median taken
    over the bands that show any noise at all, so a black or clipped top
    (letterbox, night sky) does not switch the threshold off for the whole
    photo. A photo of at most `band * bands` rows is measured whole.
    """
    height = full_input.shape[0]
    if height <= band * bands:
        band, tops = height, [0]
    else:
        tops = np.linspace(0, height - band, bands).round().astype(int).tolist()
    sigmas = [estimate_noise(full_input[top : top + band].astype(np.float32) - low[top : top + band]) for top in tops]
    noisy = [sigma for sigma in sigmas if sigma > FLAT_SIGMA]
    return float(np.median(noisy or sigmas))


def reconstruct(
    full_input: np.ndarray,
    work_input: np.ndarray,
    work_output: np.ndarray,
    noise_threshold: float = 2.0,
    device: torch.device | None = None,
    rows_per_chunk: int = 2048,
) -> np.ndarray:
    """Full-resolution result from the full input and the working-resolution (input, output) pair.

    On the CPU the coefficients are upsampled one plane at a time and applied
    as they come, so besides the photo and the result only the guide (after
    the upsampled working copy it is made from) and two planes are held. On
    a CUDA `device` the work runs there in strips of `rows_per_chunk` rows,
    and in host memory if the GPU runs short.
    """
    height, width = full_input.shape[:2]
    if (height, width) == work_input.shape[:2]:
        return np.clip(work_output, 0.0, 1.0).astype(np.float32)
    work_input = work_input.astype(np.float32)
    a, b = fit_colour_transform(work_input, work_output, eps=relative_eps(work_input))
    low = upsample(work_input, height, width, out=np.empty((height, width, 3), np.float32))
    threshold = noise_threshold * photo_noise(full_input, low)
    if device is not None and device.type == "cuda":  # MPS lacks border padding in older torch
        try:
            return apply_on_device(full_input, a, b, work_input, threshold, device, rows_per_chunk)
        except torch.OutOfMemoryError:  # the host path below gives the same pixels in host memory
            torch.cuda.empty_cache()
    guide = thresholded_guide(full_input, low, threshold)
    del low
    out = np.empty((height, width, 3), np.float32)
    channel, term = np.empty((height, width), np.float32), np.empty((height, width), np.float32)
    for i in range(3):
        upsample(np.ascontiguousarray(b[..., i]), height, width, out=channel)
        for j in range(3):
            upsample(np.ascontiguousarray(a[..., i, j]), height, width, out=term)
            term *= guide[j]
            channel += term
        out[..., i] = np.clip(channel, 0.0, 1.0, out=channel)
    return out


def thresholded_guide(full_input: np.ndarray, low: np.ndarray, threshold: float) -> np.ndarray:
    """(3,H,W) planes: the full input with the colour of its detail over `low` soft-thresholded at `threshold`.

    The detail (full − low) splits into a grey part, the same in every
    channel (its mean), and a colour part. The grey part is kept whole: in a
    dark photo the texture the camera recorded is a level or two, of the
    order of the noise, and thresholding it smeared every large photo (the
    90 unpaired-dev photos' 40 larger than 640 px: NIQE 7.0 with the grey
    part thresholded at 2σ, 4.9 kept, docs/EXPERIMENTS.md). The colour part is
    where noise is ugliest, coloured speckles, and texture has least to
    lose: it keeps only what stands above the threshold. low + grey +
    soft(colour) = full − clip(colour, ±threshold).
    """
    guide = np.empty((3, *full_input.shape[:2]), np.float32)
    for j in range(3):
        np.subtract(full_input[..., j], low[..., j], out=guide[j])
    grey = guide.mean(axis=0)
    for j in range(3):
        colour = guide[j]
        colour -= grey
        np.clip(colour, -threshold, threshold, out=colour)
        np.subtract(full_input[..., j], colour, out=guide[j])
    return guide


def apply_on_device(
    full_input: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    work_input: np.ndarray,
    threshold: float,
    device: torch.device,
    rows_per_chunk: int,
) -> np.ndarray:
    """The host path of `reconstruct` in torch strips on `device`, for the same result.

    `grid_sample` with border padding and align_corners=False samples the
    coefficients at the same pixel-centre positions as `upsample`, with the
    same edge replication.
    """
    height, width = full_input.shape[:2]
    work_h, work_w = work_input.shape[:2]
    coeffs = np.concatenate([a.reshape(work_h, work_w, 9), b, work_input], axis=2).astype(np.float32)
    grid_coeffs = torch.from_numpy(coeffs).to(device).permute(2, 0, 1)[None]
    # Pixel centres in grid_sample's normalised coordinates, which are the same for both grids.
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (2 / width) - 1
    out = np.empty((height, width, 3), np.float32)
    for top in range(0, height, rows_per_chunk):
        bottom = min(height, top + rows_per_chunk)
        ys = (torch.arange(top, bottom, device=device, dtype=torch.float32) + 0.5) * (2 / height) - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
        strip = F.grid_sample(grid_coeffs, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        a_s = strip[:9].reshape(3, 3, bottom - top, width)
        b_s, low = strip[9:12], strip[12:15]
        full = torch.from_numpy(np.ascontiguousarray(full_input[top:bottom], dtype=np.float32)).to(device)
        full = full.permute(2, 0, 1)
        colour = full - low
        colour = colour - colour.mean(dim=0, keepdim=True)
        guide = full - colour.clamp(-threshold, threshold)
        result = torch.einsum("ijhw,jhw->ihw", a_s, guide) + b_s
        out[top:bottom] = result.clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
    return out
