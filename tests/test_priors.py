"""Region priors: the built-in producer and label-map normalisation."""

from dataclasses import fields
from pathlib import Path

import numpy as np

from lowlight_cli.imaging.prepare import shrink
from lowlight_cli.io.images import load_image
from lowlight_cli.models.condition import brighten_array
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.priors.fallback import fallback_prior
from lowlight_cli.priors.region_prior import RegionPrior, boundary_map


def test_fallback_prior_regions_follow_the_image():
    image = np.zeros((64, 96, 3), np.float32)
    image[:, 48:] = [0.8, 0.2, 0.1]
    image[20:40, 10:30] = [0.1, 0.3, 0.9]
    prior = fallback_prior(image, max_regions=16)
    assert prior.labels.shape == (64, 96) and prior.labels.dtype == np.int32
    assert 2 <= prior.num_regions <= 16
    assert prior.labels[5, 5] != prior.labels[5, 90]
    assert prior.boundary[:, 47:49].any()


def test_fallback_prior_coarseness_merges_regions():
    """The coarser segmentation `benchmarks/ensembles.py` compares: fewer, larger regions, yet still several."""
    photo = load_image(Path(__file__).parents[1] / "examples" / "kodim15_dark_cool.jpg").rgb
    base = brighten_array(shrink(photo, 384), ModelConfig().target_brightness)
    fine, coarse = fallback_prior(base), fallback_prior(base, coarseness=2.0)
    assert 1 < coarse.num_regions < 0.7 * fine.num_regions


def test_from_labels_orders_by_area_and_caps():
    labels = np.array([[5, 5, 5, 7], [5, 9, 9, 7], [0, 0, 0, 0]])
    prior = RegionPrior.from_labels(labels, "test", max_regions=2, scores=np.arange(10, dtype=np.float32))
    assert prior.num_regions == 2
    assert (prior.labels[labels == 5] == 1).all()  # largest region first
    assert set(np.unique(prior.labels)) == {0, 1, 2}
    assert prior.scores.tolist() == [5.0, 9.0] or prior.scores.tolist() == [5.0, 7.0]


def test_empty_prior_and_boundary():
    prior = RegionPrior.empty(4, 5)
    assert prior.num_regions == 0 and not prior.labels.any()
    assert boundary_map(np.array([[1, 1, 2]])).tolist() == [[0.0, 1.0, 1.0]]


def test_coarse_prior_map_keeps_region_colour_without_sharp_borders():
    """`prior_map_scale` trades the segmenter's pixel-sharp borders for block-scale region colour."""
    import torch

    from lowlight_cli.models.prior_encoder import PriorEncoder

    base = torch.zeros(1, 3, 32, 48)
    base[:, 0, :, 21:] = 1.0  # a red region right of column 21, not on a block border
    labels = torch.ones(1, 32, 48, dtype=torch.long)
    labels[:, :, 21:] = 2
    boundary = torch.zeros(1, 1, 32, 48)
    scores = torch.ones(1, 4)
    sharp, _, _ = PriorEncoder(4, 8)(base, labels, scores, boundary)
    coarse, _, _ = PriorEncoder(4, 8, map_scale=8)(base, labels, scores, boundary)
    assert sharp.shape == coarse.shape == (1, 5, 32, 48)
    red_sharp, red_coarse = sharp[0, 0, 0], coarse[0, 0, 0]
    assert (red_sharp[1:] - red_sharp[:-1]).abs().max() == 1.0
    assert (red_coarse[1:] - red_coarse[:-1]).abs().max() < 0.3
    assert red_coarse[:8].max() < 0.05 and red_coarse[-8:].min() > 0.95  # far from the border: the region's colour


def test_the_registries_hold_the_names_the_settings_offer():
    """A prior kind or a SAM size is named once (settings.names); each registry holds exactly those names."""
    import pytest

    from lowlight_cli.priors.factory import PRODUCERS, make_prior_fn
    from lowlight_cli.priors.sam_convert import SAM_ARCHS
    from lowlight_cli.settings import EnhanceSettings, TrainSettings
    from lowlight_cli.settings.names import PRIOR_KINDS, SAM_MODEL_TYPES

    assert tuple(PRODUCERS) == PRIOR_KINDS and tuple(SAM_ARCHS) == SAM_MODEL_TYPES
    for settings in (EnhanceSettings, TrainSettings):
        choices = {item.name: item.metadata["choices"] for item in fields(settings)}
        assert (choices["prior"], choices["sam_model"]) == (PRIOR_KINDS, SAM_MODEL_TYPES)
    assert make_prior_fn("none", 8) is None
    assert make_prior_fn("fallback", 8)(np.zeros((32, 32, 3), np.float32)).labels.shape == (32, 32)
    with pytest.raises(ValueError, match="auto, sam, fallback, none"):
        make_prior_fn("mystery", 8)
