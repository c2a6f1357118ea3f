"""The names of what the registries hold, torch-free: the region priors and the SAM sizes, each written once here.

The registries themselves sit higher in the flow and may import torch:
`priors.factory.PRODUCERS` maps each prior kind to the function that builds
its producer, `priors.sam_convert.SAM_ARCHS` builds each size's network, and
`checkpoints.hub.REGISTRY` pins each size's weights under `SamSize.checkpoint`.
The settings offer these names as their choices, so a kind or a size is
added here and in its registry, and nowhere else (tests/test_priors.py checks
that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

# auto: SAM when its weights are already on disk, else the built-in prior; sam: SAM, downloaded when missing;
# fallback: the built-in segmentation; none: no region prior.
PRIOR_KINDS = ("auto", "sam", "fallback", "none")


@dataclass(frozen=True)
class SamSize:
    """One released Segment Anything size: its name (`sam_model`) and the ViT encoder that sets it apart.

    The rest of the network is the same in every size (`priors.sam_convert.SamArch`'s defaults)."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]

    @property
    def checkpoint(self) -> str:
        """The name of its weights in the checkpoint registry: vit_b → sam-vit-b."""
        return "sam-" + self.name.replace("_", "-")


SAM_SIZES: dict[str, SamSize] = {
    size.name: size
    for size in (
        SamSize("vit_b", embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
        SamSize("vit_l", embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
        SamSize("vit_h", embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    )
}
SAM_MODEL_TYPES = tuple(SAM_SIZES)  # the choices of `sam_model`
DEFAULT_SAM_MODEL = SAM_MODEL_TYPES[0]  # the smallest


def sam_size(name: str) -> SamSize:
    """The SAM size called `name`; `ValueError` for a name the registry does not hold."""
    try:
        return SAM_SIZES[name]
    except KeyError:
        raise ValueError(f"unknown SAM size {name!r}: one of {', '.join(SAM_SIZES)}") from None
