"""The method's options as values, defined once: the CLIs' choices, the config schema's enums (checked by a test)
and ``method.py`` all take them from here. No torch here: building a CLI parser must not import it."""
from __future__ import annotations

from typing import Literal, get_args

# heads="single": the explained attention recomputed with one head over all channels (the paper's eq. 7);
# "multi": the model's own heads (section IV-C3).
HeadMode = Literal["single", "multi"]
# The spatial weight of eq. 19/20: the loosened min-max cos(q, k) (the paper's default), the softmax attention row
# (eq. 19 as written), or none (lambda = 1, "w/o lambda").
SpatialWeight = Literal["loosened", "softmax", "none"]

HEADS: tuple[str, ...] = get_args(HeadMode)
SPATIAL: tuple[str, ...] = get_args(SpatialWeight)
