"""Region priors: SAM masks or the built-in segmentation, as a `RegionPrior`."""

from lowlight_cli.priors.region_prior import RegionPrior

__all__ = ["RegionPrior"]
