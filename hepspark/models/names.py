"""Short zoo model names as people write them (``vgg16``, ``resnet29b``) turned into the
engine-neutral :class:`~hepspark.models.cnn.CnnConfig`, for commands that take a list of
models (``hepspark bench scaling --task cnn --models basic_cnn,vgg16,resnet``).

A name is a family of :data:`~hepspark.models.cnn.FAMILIES`, optionally followed by the
depth (vgg, resnet), ``b`` for bottleneck blocks and ``_v2`` for a pre-activation ResNet;
nothing else is accepted, so a typo is refused instead of training a default model.

>>> parse_model_name("resnet29b_v2")
CnnConfig(family='resnet', filters=None, kernel_size=3, depth=29, version=2, bottleneck=True, width=1, modules=2, towers=4, dense_units=None, num_outputs=1)
>>> parse_model_name("vgg").depth is None  # the family's default depth (16)
True
"""
from __future__ import annotations

import re

from hepspark.models.cnn import FAMILIES, CnnConfig

_EXAMPLES = "e.g. basic_cnn, vgg16, vgg10, resnet, resnet29b, resnet50b_v2, inception, xception"
_DEPTH = re.compile(r"^(?P<depth>\d+)?(?P<bottleneck>b)?(?:_v(?P<version>[12]))?$")


def parse_model_name(name: str) -> CnnConfig:
    """The CnnConfig of zoo model ``name``; ValueError naming the name and the forms allowed."""
    text = name.strip().lower()
    # longest family first: 'basic_cnn_bn_pool' must not be read as 'basic_cnn' + '_bn_pool'
    family = next((f for f in sorted(FAMILIES, key=len, reverse=True) if text.startswith(f)),
                  None)
    rest = _DEPTH.match(text[len(family):]) if family else None
    if family is None or rest is None:
        raise ValueError(f"unknown model {name!r}: give a family of {', '.join(FAMILIES)}, "
                         f"with a depth for vgg/resnet ({_EXAMPLES})")
    depth, bottleneck, version = rest["depth"], rest["bottleneck"], rest["version"]
    if family != "resnet" and (bottleneck or version) or family not in ("vgg", "resnet") and depth:
        raise ValueError(f"model {name!r}: only vgg takes a depth, and only resnet a depth, "
                         f"'b' (bottleneck) and '_v2' ({_EXAMPLES})")
    extra = {"bottleneck": True} if bottleneck else {}
    if version:
        extra["version"] = int(version)
    try:
        return CnnConfig(family, depth=int(depth) if depth else None, **extra)
    except ValueError as exc:
        raise ValueError(f"model {name!r}: {exc}") from None
