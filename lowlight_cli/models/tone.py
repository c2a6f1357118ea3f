"""The global tone branch: one exposure, white balance, tone curve and saturation per photo.

Exposure, black point, contrast and white balance are judgements about the
whole frame, and a U-Net trained on crops never sees one. This branch looks
at a thumbnail of the whole (dark) photo and predicts a handful of global
parameters; applying them to the photo at any resolution gives the "base"
the denoiser refines. Because the parameters are global, they are learned
from whole frames (cheap: thumbnails) and then hold for every crop, tile and
working size alike (all but `--highlights local`'s compression, which looks at
the image it develops: inference develops whole working copies only).

The curve acts in linear light, the way a camera develops a raw file:
exposure gain and per-channel white-balance gains multiply linear RGB, then a
learned monotone curve maps log2 luminance to display (sRGB) luminance, which
is how highlights are compressed instead of clipped and blacks stay black.
A user's exposure bias (`ev`) is added to the predicted exposure before the
curve, so shadows and highlights move together through the same shoulder.

Exposure and white balance are learned apart from the rendering. How bright
a scene "should" be is often undecidable from the dark photo (LOL's targets
for equally dark inputs range from mean 0.25 to 0.63); a curve trained
end-to-end against such targets hedges by flattening towards mid grey, which
is the lifted-black, low-contrast haze of a regression to the mean. So in
training the curve and saturation develop each photo at its *target's* own
exposure and white balance (`target_gains`), and the exposure and white-balance
heads are regressed to those gains in log space (`gain_loss`). A wrong
exposure then shows as a photo a little too bright or too dark, with its
blacks, contrast and colour intact, and `--exposure` corrects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowlight_cli.imaging.colour import REC601, REC709, luma
from lowlight_cli.models.local_exposure import compression

THUMBNAIL = 64  # side of the (square, aspect-squashed) thumbnail the estimator sees
KNOTS = torch.linspace(-10.0, 3.0, 27)  # log2 of exposed linear luminance; 0.18 (mid grey) is -2.47
KEY = 0.18  # the auto-exposure the prediction is relative to: log-average luminance → mid grey


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def thumbnail(low: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) → (B,3,64,64) by area averaging, which also averages noise away."""
    return F.adaptive_avg_pool2d(low, THUMBNAIL)


def log_average(linear: torch.Tensor) -> torch.Tensor:
    """Log-average (geometric mean) luminance per image, (B,): Reinhard's 'key' of the scene."""
    return torch.exp(torch.log(luma(linear, REC709).clamp_min(1e-5)).mean(dim=(1, 2, 3)))


def default_curve() -> torch.Tensor:
    """Knot values of the curve the estimator starts from: a filmic (x/(1+x)) shoulder, sRGB-encoded."""
    x = 2.0**KNOTS * 2.0
    return linear_to_srgb(x / (1.0 + x))


@dataclass
class ToneParams:
    """Per-image tone parameters of a batch."""

    log_exposure: torch.Tensor  # (B,) natural-log gain on linear light
    log_wb: torch.Tensor  # (B,3) luminance-neutral white-balance gains
    curve: torch.Tensor  # (B,K) display luminance at each knot, increasing
    saturation: torch.Tensor  # (B,) chroma scale around the developed luminance
    highlights: torch.Tensor  # (B,) local exposure strength in [0, 1] (`local_exposure`): the roll-off's to set
    black: torch.Tensor  # (B,3) linear black level per channel, taken off before the gains (0: none)
    held: torch.Tensor  # (B,) share of the photo `hold_exposed` keeps as it is (0: developed as judged)
    keep_chroma: bool = False  # too bright a colour is darkened at its own chromaticity (`fit_in_gamut`), not
    # paled towards white (`fit_to_white`, what models before the look head were trained on)


BLACK_QUANTILE = 0.005  # the thumbnail's per-channel quantile that bounds the black level the look may take off
PEDESTAL_FROM, PEDESTAL_FULL = 0.15, 0.35  # darkest level / mean of a channel where `pedestal_share` starts, is 1
PEDESTAL_MOST = 0.5  # of a channel's mean: the most the rule takes off (v10's head took as much off a flat frame)


def pedestal_share(floor: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """The least share of each channel's darkest level (B,3) to take off as black, from its ratio to the mean.

    In a real scene the darkest 0.5 % of a channel is a shadow a few percent
    as bright as the channel's mean (LOL and SICE inputs: 2-8 % at the median,
    our training targets 2-5 %); a black level the camera left under the
    whole frame sits at a sixth to a third of it, and one exposure gain lifts
    it into haze. The look head reads pooled features and did not learn that
    (v10's black share stays near one half on every photo; handed the ratio
    with a learned slope, training on our data turned the slope negative,
    docs/EXPERIMENTS.md), so the ratio sets a floor under its share: none up
    to `PEDESTAL_FROM` (beyond LOL's upper quartile), the whole darkest level
    from `PEDESTAL_FULL`; `ToneEstimator` takes off no more than
    `PEDESTAL_MOST` of the mean by this rule, so a flat frame keeps its
    signal.
    """
    ratio = floor / mean.clamp_min(1e-8)
    return ((ratio - PEDESTAL_FROM) / (PEDESTAL_FULL - PEDESTAL_FROM)).clamp(0.0, 1.0)


class ToneEstimator(nn.Module):
    """A small CNN over a thumbnail and its luminance statistics → `ToneParams`.

    With `look` the branch also judges the black point and the local exposure
    (`look` head): unseen cameras leave an unequal per-channel pedestal under
    their blacks (irrgb40's red sits 4 levels up in a frame whose mean is 7)
    that one gain lifts into a pink haze, and a lit subject on a dark ground
    needs less gain than the ground. The black level is a share of each
    channel's darkest thumbnail level (so a photo without a pedestal keeps its
    blacks), at least `pedestal_share` of it (by that rule at most
    `PEDESTAL_MOST` of the mean); the local exposure is a strength for
    `local_exposure.compression`.
    """

    def __init__(self, width: int = 32, look: bool = False) -> None:
        super().__init__()
        layers, channels = [], 6
        for out in (width, width, 2 * width, 2 * width):  # 64 → 32 → 16 → 8 → 4
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.SiLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        stats = 7  # log key, log mean, five luminance quantiles
        self.head = nn.Sequential(
            nn.Linear(2 * channels + stats, 4 * width), nn.SiLU(), nn.Linear(4 * width, 1 + 3 + len(KNOTS) + 1)
        )
        # Start from the plain auto-exposure and the default curve: the zero-initialised last layer
        # outputs its bias, which encodes exposure 0, neutral white balance, the filmic curve, saturation 1.
        nn.init.zeros_(cast(nn.Linear, self.head[-1]).weight)
        increments = torch.diff(default_curve(), prepend=torch.zeros(1)).clamp_min(1e-4)
        with torch.no_grad():
            cast(nn.Linear, self.head[-1]).bias.zero_()
            cast(nn.Linear, self.head[-1]).bias[4 : 4 + len(KNOTS)] = torch.log(torch.expm1(increments))
        # The look head starts at half of the darkest level taken off as black (where its sigmoid learns
        # fastest) and little local exposure.
        self.look = nn.Linear(2 * channels + stats, 4) if look else None
        if self.look is not None:
            nn.init.zeros_(self.look.weight)
            with torch.no_grad():
                self.look.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -3.0]))

    def forward(self, thumb: torch.Tensor) -> ToneParams:
        """`thumb`: (B,3,h,w) sRGB in [0,1], any size (pooled to 64×64).

        The white balance is the mean of the judgements of the thumbnail and
        of its mirror image. The branch is trained on both orientations but
        is not mirror-invariant (its guesses for a photo and its mirror
        differ), and a light's colour does not depend on which way the frame
        faces: the mean is the better guess on every evaluation set (README,
        Quality). The exposure and the curve keep the photo's own orientation:
        averaged too, they trade LOL val for the other sets.
        """
        linear = srgb_to_linear(thumbnail(thumb.float()))
        lum = torch.log(luma(linear, REC709).clamp_min(1e-4)).flatten(1)
        quantiles = torch.quantile(lum, lum.new_tensor([0.01, 0.1, 0.5, 0.9, 0.99]), dim=1).T
        stats = (
            torch.cat(
                [
                    lum.mean(dim=1, keepdim=True),
                    torch.log(linear.mean(dim=(1, 2, 3)).clamp_min(1e-4))[:, None],
                    quantiles,
                ],
                dim=1,
            )
            / 5.0
        )  # the same for the mirror image
        pooled = self._pooled(torch.cat([linear, linear.flip(-1)]), torch.cat([stats, stats]))
        out, mirrored = self.head(pooled).chunk(2)
        log_wb = (out[:, 1:4] + mirrored[:, 1:4]) / 2
        log_wb = log_wb - (log_wb * log_wb.new_tensor(REC709)).sum(dim=1, keepdim=True)  # luminance-neutral
        black, highlights = torch.zeros_like(out[:, 1:4]), torch.zeros_like(out[:, 0])
        if self.look is not None:  # judged on the photo and its mirror alike, as the white balance
            look = torch.sigmoid(sum(self.look(pooled).chunk(2)) / 2)
            floor = torch.quantile(linear.flatten(2), BLACK_QUANTILE, dim=2)  # (B,3)
            mean = linear.mean(dim=(2, 3))
            # A pedestal is at most PEDESTAL_MOST of the mean: in a flat or foggy frame the darkest level is
            # nearly the mean, and taking all of it off would leave nothing for the exposure to lift but noise.
            pedestal = torch.minimum(pedestal_share(floor, mean) * floor, PEDESTAL_MOST * mean)
            black, highlights = torch.maximum(look[:, :3] * floor, pedestal), look[:, 3]
        return ToneParams(
            log_exposure=out[:, 0]
            + math.log(KEY)
            - torch.log(log_average((linear - black[:, :, None, None]).clamp_min(0.0))),
            log_wb=log_wb,
            curve=torch.cumsum(F.softplus(out[:, 4 : 4 + len(KNOTS)]), dim=1),
            saturation=torch.exp(0.5 * torch.tanh(out[:, -1])),
            highlights=highlights,  # the roll-off may ask for more
            black=black,
            held=torch.zeros_like(highlights),
            keep_chroma=self.look is not None,
        )

    def _pooled(self, linear: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """The heads' input: pooled trunk features of linear thumbnails and their luminance statistics."""
        h = self.features(torch.cat([linear.sqrt(), torch.log(linear.clamp_min(1e-4)) / 5.0], dim=1))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)), stats], dim=1)


def target_gains(
    low: torch.Tensor, high: torch.Tensor, black: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exposure and white balance that bring `low` to its target `high` (sRGB, any sizes): (B,), (B,3).

    Exposure matches log-average luminance (the key the prediction is relative
    to); white balance matches the channel means in linear light, made
    luminance-neutral as the estimator's is; both after the black level
    `black` (B,3), when given, is taken off `low`.
    """
    low_lin, high_lin = srgb_to_linear(thumbnail(low.float())), srgb_to_linear(thumbnail(high.float()))
    if black is not None:
        low_lin = (low_lin - black[:, :, None, None]).clamp_min(0.0)
    log_exposure = torch.log(log_average(high_lin)) - torch.log(log_average(low_lin))
    ratio = torch.log(high_lin.mean(dim=(2, 3)).clamp_min(1e-4)) - torch.log(low_lin.mean(dim=(2, 3)).clamp_min(1e-4))
    log_wb = ratio - (ratio * ratio.new_tensor(REC709)).sum(dim=1, keepdim=True)
    return log_exposure, log_wb


def with_gains(params: ToneParams, gains: tuple[torch.Tensor, torch.Tensor]) -> ToneParams:
    """`params` with its exposure and white balance replaced (training develops at the target's gains)."""
    return replace(params, log_exposure=gains[0], log_wb=gains[1])


def mix(past: ToneParams, current: ToneParams, weight: float) -> ToneParams:
    """`weight` of `past` and the rest of `current`, parameter by parameter (video: one judgement per shot
    that follows the light, not a fresh one per frame). Exposure and white balance mix in log space; the mix
    of two increasing curves is increasing."""
    blend = lambda a, b: weight * a + (1.0 - weight) * b  # noqa: E731
    return ToneParams(
        blend(past.log_exposure, current.log_exposure),
        blend(past.log_wb, current.log_wb),
        blend(past.curve, current.curve),
        blend(past.saturation, current.saturation),
        blend(past.highlights, current.highlights),
        blend(past.black, current.black),
        blend(past.held, current.held),
        current.keep_chroma,
    )


def gain_loss(params: ToneParams, gains: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """L1 in natural-log units between the predicted and the target's exposure and white balance.

    L1 aims at the median of what the thumbnail leaves undecided, not a mean pulled by outliers.
    """
    return ((params.log_exposure - gains[0]).abs() + (params.log_wb - gains[1]).abs().sum(dim=1)).mean()


CLIP_LEVEL = 0.97  # a channel at or above this (sRGB) reads as blown: the denoiser's residual (detail, a
# level or two of noise) would carry it over 254, and a large area this close to white looks white anyway
NEAR_WHITE = 240 / 255  # every channel at or above this reads as white too, for `--highlights local`
KNEE = 0.75  # display luminance above which the roll-off may reshape the curve
MAX_NEW_CLIPPED = 0.01  # share of the thumbnail, under CLIP_LEVEL in the input, that may be blown
LOCAL_STRENGTHS = (0.25, 0.5, 0.75, 1.0)  # local exposure candidates of the roll-off (`local`), mildest first
GAMUT_TOP = 0.9  # linear level (sRGB 0.955) a channel may reach before its colour gives way to white: below
# CLIP_LEVEL, so a paled colour is not counted as blown, with room for the denoiser's detail


def _run_to(curve: torch.Tensor, knee: int, reach: float, top: float) -> torch.Tensor:
    """`curve` (K,) with a straight run above knot `knee`, reaching `top` at knot position `reach`."""
    index = torch.arange(len(curve), device=curve.device, dtype=curve.dtype)
    run = curve[knee] + (top - curve[knee]) * ((index - knee) / max(reach - knee, 1e-3)).clamp(0.0, 1.0)
    return torch.where(index >= knee, torch.minimum(curve, run), curve)


NIGHT_MEDIAN = 0.01  # a thumbnail whose median luma is under this (2.5 of 255) is a night scene (`is_night`)


def is_night(thumb: torch.Tensor) -> torch.Tensor:
    """(B,) whether each photo is a night scene: most of its 64-px thumbnail near black (median luma under
    `NIGHT_MEDIAN`), so what is lit in it is a subject on a black ground.

    There a single exposure brightens the lit subject as far as the black ground asks: DICM_26's floodlit
    memorial came out a pale block (its edges 0.38 of a plain gamma's). SICE's scenes, where the lit
    part is a bright sky the targets keep bright, have median luma 0.02-0.08 (4 of its 346 inputs under
    0.01), LOL's rooms 0.03-0.05.
    """
    small = thumbnail(thumb.float())
    return luma(small, REC601).flatten(1).median(dim=1).values < NIGHT_MEDIAN


LIT_LEVEL = 0.5  # display (sRGB) luma at or over which the camera already exposed a region (`benchmarks/samples.py`)
PART_LIT_SHARE = 0.1  # share of the thumbnail at `LIT_LEVEL` over which a photo is part lit (`is_part_lit`)
LIT_RISE = 0.5  # stops a part-lit photo's lit regions may rise in mean display luma (`roll_off_highlights`)


def is_part_lit(thumb: torch.Tensor) -> torch.Tensor:
    """(B,) whether each photo is part lit: more than `PART_LIT_SHARE` of its 64-px thumbnail at display
    luma `LIT_LEVEL` or over already, a sky or a sunlit wall the camera metered for over a dark ground.

    One exposure that lifts the ground lifts that sky as far, and the shoulder pales it to white (MEF's
    ChineseGarden: a blue sky, input (133, 147, 166), came out (231, 236, 241)). With `--highlights local`
    such a photo's lit regions rise half a stop at most (`roll_off_highlights`). Not under `auto`: SICE's targets,
    single exposures, let those skies go bright (one photo of the casts + noise set, 11 % lit, loses 6.5 dB
    held so: docs/EXPERIMENTS.md).
    """
    small = thumbnail(thumb.float())
    return (luma(small, REC601) >= LIT_LEVEL).flatten(1).float().mean(dim=1) > PART_LIT_SHARE


def _rise(display: torch.Tensor, developed: torch.Tensor, where: torch.Tensor) -> float:
    """Stops by which the mean display luma over `where` (1,h,w) rises from `display` (1,h,w, the input's
    luma) to `developed` (1,3,h,w, sRGB)."""
    return float(torch.log2(luma(developed, REC601)[0][where].mean() / display[where].mean()))


def roll_off_highlights(
    params: ToneParams, thumb: torch.Tensor, local: bool | None = False, keep_level: bool = False
) -> ToneParams:
    """Compress each photo's highlights, not blow them: reshape the curve above `KNEE` as far as needed,
    or, when `local`, first bring the lit regions down locally (`local_exposure`); `local` None decides
    per photo: local for a night scene (`is_night`). `keep_level` (`--highlights local`) also holds a
    part-lit photo's lit regions near their level (below).

    A bright subject on a black ground (a lit building at night, a window in
    a dark room) pulls the exposure far up, and the learned curve, fitted to
    targets that often clip, would flatten it to white. Candidates replace the
    curve above the knee by a straight run (in log luminance) ending ever later
    and, last, lower; the first under which at most `MAX_NEW_CLIPPED` of the
    developed thumbnail newly clips (any channel) is kept. That keeps the
    facade under white but spends the whole shoulder on it: a pale block.
    With `local`, local exposure of rising strength comes first, which lowers
    the lit region as a whole and keeps its detail (the curve is reshaped
    only if full strength is not enough). Shadows, mid-tones and the exposure
    are unchanged either way; the 64-px thumbnail's area averaging lets a
    small lamp clip, as it should, but not a facade.

    With `keep_level`, a part-lit photo that is not a night scene
    (`is_part_lit`), developed locally, also keeps its lit regions near their
    level: a candidate that raises their mean display luma by more than
    `LIT_RISE` stops is passed over for the next (if none passes, the last,
    the strongest, is kept). The camera metered for that sky or sunlit wall;
    held under white alone, a blue sky came out (224, 229, 235), just under
    the near-white count and as pale. A night scene's lit subject is not held
    so: the meter, fooled by the black ground, left it dark too (DICM_13's
    astronauts). It is the user's `local`, not `auto`'s: video decides
    `local` once per shot from its first frame, and a later frame of the shot
    that leaves the night must not switch to it.
    """
    small = thumbnail(thumb.float())
    night = is_night(small)
    locally = night.tolist() if local is None else [local] * len(small)
    held_level = (is_part_lit(small) & ~night).tolist() if keep_level else [False] * len(small)
    display = luma(small, REC601)
    free = small.amax(dim=1) < CLIP_LEVEL  # (B,h,w): not clipped in the input
    white = small.amin(dim=1) >= NEAR_WHITE
    last = len(KNOTS) - 1.0
    curves, strengths = [], []
    for i, curve in enumerate(params.curve):
        lit = locally[i]
        if lit:  # nor white in it
            free[i] &= ~white[i]
        one = replace(
            params,
            log_exposure=params.log_exposure[i : i + 1],
            log_wb=params.log_wb[i : i + 1],
            curve=curve[None],
            saturation=params.saturation[i : i + 1],
            black=params.black[i : i + 1],
            held=params.held[i : i + 1],
        )
        judged = float(params.highlights[i])  # the model's own local exposure: the roll-off only adds to it
        above = torch.nonzero(curve >= KNEE)
        knee = int(above[0]) if len(above) else len(curve) - 1
        reshaped = [_run_to(curve, knee, knee + (last - knee) * f, CLIP_LEVEL - 0.005) for f in (0.25, 0.5, 0.75, 1.0)]
        reshaped += [_run_to(curve, knee, last, top) for top in (0.95, 0.9, 0.85)]
        with_reshape = LOCAL_STRENGTHS[-1] if lit else judged  # a reshaped curve comes after full local strength
        candidates = (
            [(curve, judged)]
            + [(curve, s) for s in LOCAL_STRENGTHS if lit and s > judged]
            + [(c, with_reshape) for c in reshaped]
        )
        metered = display[i] >= LIT_LEVEL if lit and held_level[i] else None  # (1,h,w): the lit regions
        for candidate, strength in candidates:
            developed = apply_tone(
                small[i : i + 1], replace(one, curve=candidate[None], highlights=curve.new_tensor([strength]))
            )
            blown = developed.amax(dim=1) >= CLIP_LEVEL
            if lit:  # a lit region is to keep its detail, not sit just under the clip level at 240-247
                blown |= developed.amin(dim=1) >= NEAR_WHITE
            kept = metered is None or not _rise(display[i], developed.detach(), metered) > LIT_RISE  # NaN: kept
            if kept and float((blown & free[i : i + 1]).float().mean()) <= MAX_NEW_CLIPPED:
                break
        curves.append(candidate)
        strengths.append(strength)
    return replace(params, curve=torch.stack(curves), highlights=params.curve.new_tensor(strengths))


HOLD_FULL, HOLD_NONE = 0.3, 0.6  # stops (log2) the judgement moves a photo's mean display (sRGB) luma: held whole
# below, not at all above


def gamut_top(params: ToneParams) -> torch.Tensor:
    """(B,) the linear level a channel may reach before its colour gives way: `GAMUT_TOP`, up to 1 as far as
    the photo is held (`hold_exposed`)."""
    return GAMUT_TOP + (1.0 - GAMUT_TOP) * params.held


def identity_curve() -> torch.Tensor:
    """Knot values under which `apply_tone` gives back its input's luminance: sRGB of each knot, white from 1."""
    return linear_to_srgb((2.0**KNOTS).clamp(max=1.0))


def hold_exposed(params: ToneParams, thumb: torch.Tensor) -> ToneParams:
    """Hold a photo the judgement barely brightens or darkens at its own development: blend each photo's
    parameters towards the identity (no gain, white balance, black level or local exposure, the
    `identity_curve`, saturation 1, a gamut top of 1: `gamut_top`) by how little they move its mean level,
    in stops of the thumbnail's mean display (sRGB) luma (about 2.2 times as many in linear light).

    A photo that is already well exposed has no exposure to correct, and what the
    judgement still does to it is the look of our training targets: on the 23
    Kodak photos it moved the mean by up to 0.24 stop (14 levels) and bent the
    curve and colour, 24.5 dB against the input at worst; on unpaired-dev it
    paled skies and white walls that were right. Dark photos are never held:
    every pair of our sets and irrgb40 is moved 0.8 stop or more. Between
    `HOLD_FULL` and `HOLD_NONE` stops the blend ramps, so a photo near the line
    is not switched between two looks. The gamut's top goes to 1 with the rest:
    at `GAMUT_TOP` a sunset's yellow clouds (250, 254, 229) came back paled
    to (251, 245, 243), 7.6 % of DICM/05 newly white. The share is kept in
    `held`: the pipeline hands that much of the input itself back.
    """
    small = thumbnail(thumb.float())
    with torch.no_grad():
        before = luma(small, REC601).mean(dim=(1, 2, 3)).clamp_min(1e-4)
        after = luma(apply_tone(small, params), REC601).mean(dim=(1, 2, 3)).clamp_min(1e-4)
    stops = (after / before).log2().abs()
    hold = ((HOLD_NONE - stops) / (HOLD_NONE - HOLD_FULL)).clamp(0.0, 1.0)
    hold = torch.where(before > 1e-4, hold, 0.0)  # a black frame (a fade's start) has no level to hold

    def towards(value: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        share = hold.view(-1, *([1] * (value.dim() - 1)))
        return value + (identity.expand_as(value) - value) * share

    zero = params.log_exposure.new_zeros(())
    return replace(
        params,
        log_exposure=towards(params.log_exposure, zero),
        log_wb=towards(params.log_wb, zero),
        curve=towards(params.curve, identity_curve().to(params.curve)),
        saturation=towards(params.saturation, zero + 1.0),
        highlights=towards(params.highlights, zero),
        black=towards(params.black, zero),
        held=towards(params.held, zero + 1.0),
    )


def exposed(low: torch.Tensor, params: ToneParams, ev: float | torch.Tensor = 0.0) -> torch.Tensor:
    """(B,3,H,W) sRGB `low` in linear light, black level off, exposure (plus `ev` stops) and white balance on."""
    gain = params.log_exposure + torch.as_tensor(ev, dtype=torch.float32, device=low.device) * math.log(2.0)
    linear = srgb_to_linear(low.float())
    if bool((params.black > 0).any()):
        linear = (linear - params.black[:, :, None, None]).clamp_min(0.0)
    return linear * torch.exp(gain.view(-1, 1, 1, 1) + params.log_wb[:, :, None, None])


def local_factor(low: torch.Tensor, params: ToneParams, ev: float | torch.Tensor = 0.0) -> torch.Tensor | None:
    """The local exposure factor (B,1,H,W) `apply_tone` gives `low`, or None where `params` ask for none.

    It is smooth (an edge-aware base layer fitted at `local_exposure.FIT_SIZE`), so a working copy's
    factor, upsampled, stands for the full-resolution photo's (`develop_full`).
    """
    if not bool((params.highlights > 0).any()):
        return None
    return compression(luma(exposed(low, params, ev), REC709).clamp_min(1e-6), params.highlights)


def apply_tone(
    low: torch.Tensor, params: ToneParams, ev: float | torch.Tensor = 0.0, factor: torch.Tensor | None = None
) -> torch.Tensor:
    """Develop (B,3,H,W) sRGB `low` with per-image `params`; `ev` stops of extra exposure.

    Chroma ratios are kept through the curve (as the auto-gamma base did), then
    scaled by the predicted saturation around the new luminance. `factor`, when
    given, is the local exposure factor made elsewhere (`local_factor`): a strip
    of a photo cannot see the whole photo's base layer.
    """
    linear = exposed(low, params, ev)
    lum = luma(linear, REC709).clamp_min(1e-6)
    if factor is None and bool((params.highlights > 0).any()):
        factor = compression(lum, params.highlights)
    if factor is not None:
        linear, lum = linear * factor, lum * factor
    knots = KNOTS.to(low.device)
    step = float(knots[1] - knots[0])
    position = ((torch.log2(lum) - float(knots[0])) / step).clamp(0.0, len(knots) - 1.0)
    index = position.floor().clamp(max=len(knots) - 2).long()
    frac = position - index
    curve = params.curve
    batch = curve.shape[0]
    flat = index.view(batch, -1)
    lo = torch.gather(curve, 1, flat).view_as(lum)
    hi = torch.gather(curve, 1, flat + 1).view_as(lum)
    display = lo + (hi - lo) * frac
    # Below the first knot the curve runs linearly to black, so zero stays zero.
    below = lum < 2.0 ** float(knots[0])
    display = torch.where(below, curve[:, :1, None, None] * lum / 2.0 ** float(knots[0]), display)
    out_lum = srgb_to_linear(display.clamp(0.0, 1.0))
    developed = linear * (out_lum / lum)
    developed = out_lum + params.saturation.view(-1, 1, 1, 1) * (developed - out_lum)
    top = gamut_top(params).view(-1, 1, 1, 1)
    return linear_to_srgb(fit_in_gamut(developed, top) if params.keep_chroma else fit_to_white(developed, out_lum, top))


def apply_tone_array(
    rgb: np.ndarray, params: ToneParams, ev: float = 0.0, factor: np.ndarray | None = None
) -> np.ndarray:
    """`apply_tone` for one H×W×3 float32 sRGB array and the first photo of `params`, in numpy.

    The same arithmetic (a test holds the two within 3e-5, two 16-bit levels), for the full-resolution base
    (`condition.develop_full`): on a 2-core CPU, in-place passes over row strips develop a 12 MP photo
    three times as fast as torch's temporaries did, and OpenCV's vectorised `pow`/`log` (within 3e-6
    of numpy's) with the curve's evenly spaced knots read by index instead of `np.interp`'s search
    three times as fast again. `factor` (H×W) is the local exposure factor, made elsewhere (`local_factor`).
    """
    linear = _srgb_to_linear_array(rgb)
    black = params.black[0].detach().numpy()
    if (black > 0).any():
        linear -= black
        np.maximum(linear, 0.0, out=linear)
    gain = float(params.log_exposure[0].detach()) + ev * math.log(2.0)
    linear *= np.exp(gain + params.log_wb[0].detach().numpy()).astype(np.float32)
    lum = np.maximum(linear @ np.array(REC709, np.float32), 1e-6)
    if factor is not None:
        linear *= factor[..., None]
        lum *= factor
    out_lum = _srgb_to_linear_array(_curve_array(lum, params.curve[0].detach().numpy()))[..., None]
    linear *= out_lum / lum[..., None]
    linear -= out_lum
    linear *= float(params.saturation[0].detach())
    linear += out_lum
    top = np.float32(gamut_top(params)[0].detach())
    if params.keep_chroma:  # fit_in_gamut: half darkened at its chromaticity, then fit_to_white
        linear *= np.sqrt(top / np.maximum(_channel_max(linear), top))
        out_lum = (linear @ np.array(REC709, np.float32))[..., None]
    room = np.maximum(top - out_lum, 0.0) / np.maximum(_channel_max(linear) - out_lum, 1e-6)
    linear -= out_lum
    linear *= np.clip(room, 0.0, 1.0)
    linear += out_lum
    return _linear_to_srgb_array(linear)


def _curve_array(lum: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """The tone curve (display level at each of `KNOTS`, evenly spaced in log2) at linear luminances `lum`:
    `np.interp` on log2, clamped above the last knot, linear to black below the first (as `apply_tone`)."""
    first, step = float(KNOTS[0]), float(KNOTS[1] - KNOTS[0])
    position = cv2.log(lum)
    position *= np.float32(1.0 / (math.log(2.0) * step))
    position -= np.float32(first / step)
    below = position < 0.0
    np.clip(position, 0.0, len(curve) - 1, out=position)
    index = np.minimum(position.astype(np.int32), len(curve) - 2)
    position -= index  # the fraction of the way to the next knot
    slope = np.diff(curve).astype(np.float32)
    display = np.take(slope, index, mode="clip")  # clip: a NaN position (a broken judgement) stays NaN and is
    display *= position  # reported as such by the caller, instead of an index error
    display += np.take(curve.astype(np.float32), index, mode="clip")
    np.copyto(display, lum * np.float32(curve[0] / 2.0**first), where=below)
    return display


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    """The brightest channel of an H×W×3 array, H×W×1 (an elementwise maximum: far faster than a reduction
    over an axis of three)."""
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])[..., None]


def _srgb_to_linear_array(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    curved = x + np.float32(0.055)
    curved *= np.float32(1 / 1.055)
    curved = cv2.pow(curved, 2.4)
    np.copyto(curved, x * np.float32(1 / 12.92), where=x <= 0.04045)
    return curved


def _linear_to_srgb_array(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    curved = cv2.pow(np.maximum(x, np.float32(0.0031308)), 1 / 2.4)
    curved *= np.float32(1.055)
    curved -= np.float32(0.055)
    np.copyto(curved, x * np.float32(12.92), where=x <= 0.0031308)
    return curved


def fit_in_gamut(linear: torch.Tensor, top: float | torch.Tensor = GAMUT_TOP) -> torch.Tensor:
    """Bring a colour whose brightest channel would pass `top` (`GAMUT_TOP` unless held) into the gamut half
    by darkening it at its own chromaticity (all three channels scaled together) and half by paling it
    (`fit_to_white`), in log terms: the square root of the needed scale each.

    Paling alone turned bright colours white: a candle flame pinkish white, a colour checker grey, 17 % of a
    floodlit frame at every channel >= 240. Darkening alone kept every hue but cost 0.25 dB on SICE val,
    whose camera-rendered targets pale their bright colours too (22.67 -> 22.42); half of each keeps most
    of the colour at 22.64 (README, Quality).
    """
    peak = linear.amax(dim=1, keepdim=True)
    # reciprocal × top, as torch computes a number over a tensor: at `GAMUT_TOP` bit for bit what it was
    darkened = linear * (torch.maximum(peak, torch.as_tensor(top, dtype=peak.dtype)).reciprocal() * top).sqrt()
    return fit_to_white(darkened, luma(darkened, REC709), top)


def fit_to_white(linear: torch.Tensor, lum: torch.Tensor, top: float | torch.Tensor = GAMUT_TOP) -> torch.Tensor:
    """Desaturate, towards its own luminance, a colour whose brightest channel would pass `top`.

    Clipping that channel instead flattens a bright coloured surface (a warm lamp, floodlit stone, a candle)
    into one tone, and the highlight roll-off then has to dim the whole shoulder to keep it under white.
    Luminance, and so the highlight's detail, is kept; only its chroma fades, as film's does. A colour whose
    luminance is itself over `top` becomes grey at that luminance: too bright for any colour, it is
    the roll-off's to compress. Colours inside the gamut (`room` ≥ 1) are left as they are.
    """
    peak = linear.amax(dim=1, keepdim=True)
    room = ((top - lum).clamp_min(0.0) / (peak - lum).clamp_min(1e-6)).clamp(0.0, 1.0)
    return lum + room * (linear - lum)
