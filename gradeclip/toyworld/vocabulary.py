"""CLEVR's attribute vocabulary, copied from CLEVR's ``data/properties.json``.

Keeping CLEVR's names and RGB values means toy scenes and real CLEVR scenes can
be captioned, filtered and scored by the same code.
"""

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")

# CLEVR's colours (0-255 RGB), in properties.json order.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
COLORS: tuple[str, ...] = tuple(COLOR_RGB)

MATERIALS: tuple[str, ...] = ("rubber", "metal")

SIZES: tuple[str, ...] = ("small", "large")

# CLEVR's object radius in world units per size ("sizes" in properties.json).
SIZE_RADIUS: dict[str, float] = {"small": 0.35, "large": 0.7}

# Attribute categories in the word order of CLEVR descriptions ("large red metal cube").
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "size": SIZES,
    "color": COLORS,
    "material": MATERIALS,
    "shape": SHAPES,
}
ATTRIBUTE_CATEGORIES: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
