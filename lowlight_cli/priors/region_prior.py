"""`RegionPrior`: the one data type every prior producer returns.

A label map is the lowest common denominator of SAM's masks and classical
segmentations: the denoiser's prior encoder pools features per label, so any
producer that can paint regions can guide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RegionPrior:
    """Regions of one image at working resolution.

    labels:   int32 H×W, 0 = no region, 1..K = regions ordered by area (largest first)
    scores:   float32 (K,), producer confidence per region (1.0 for the fallback)
    boundary: float32 H×W in [0, 1], 1 on region borders
    source:   which producer made it ("sam:vit_b", "fallback", "none")
    """

    labels: np.ndarray
    scores: np.ndarray
    boundary: np.ndarray
    source: str

    @property
    def num_regions(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, height: int, width: int) -> RegionPrior:
        """No prior at all (`--prior none`): the encoder sees one blank map and no tokens."""
        return cls(
            labels=np.zeros((height, width), np.int32),
            scores=np.zeros((0,), np.float32),
            boundary=np.zeros((height, width), np.float32),
            source="none",
        )

    @classmethod
    def from_labels(
        cls, labels: np.ndarray, source: str, max_regions: int, scores: np.ndarray | None = None
    ) -> RegionPrior:
        """Relabel any integer map (0 = no region) to 1..K by descending area, keeping at most `max_regions`.

        Regions past the cap become 0 ("no region"): the encoder then treats
        those pixels as unguided rather than inventing a token for them.
        `scores`, if given, is indexed by the original label values.
        """
        labels = np.asarray(labels)
        values, inverse, counts = np.unique(labels.ravel(), return_inverse=True, return_counts=True)
        valid = values > 0
        order = [i for i in np.argsort(-counts, kind="stable") if valid[i]][:max_regions]
        remap = np.zeros(len(values), np.int32)
        remap[order] = np.arange(1, len(order) + 1, dtype=np.int32)
        new = remap[inverse].reshape(labels.shape).astype(np.int32)
        if scores is None:
            new_scores = np.ones(len(order), np.float32)
        else:
            new_scores = np.asarray([scores[values[i]] for i in order], np.float32)
        return cls(labels=new, scores=new_scores, boundary=boundary_map(new), source=source)

    def resized(self, height: int, width: int) -> RegionPrior:
        """Nearest-neighbour resize (labels must never be interpolated)."""
        import cv2

        labels = cv2.resize(self.labels, (width, height), interpolation=cv2.INTER_NEAREST)
        return RegionPrior(labels, self.scores, boundary_map(labels), self.source)


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """1 where a pixel's 4-neighbour has another label: the structural prior."""
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return edge.astype(np.float32)
