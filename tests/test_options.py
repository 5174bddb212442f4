"""The allowed values of heads and spatial are defined once (gradeclip.options); the workflow's config schema must
list the same ones."""
from __future__ import annotations

from pathlib import Path

import yaml

from gradeclip import options

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _enums(node):
    """Every enum list anywhere below a schema node (a plain enum, or the items of a oneOf / array)."""
    if isinstance(node, dict):
        if "enum" in node:
            yield tuple(node["enum"])
        for value in node.values():
            yield from _enums(value)
    elif isinstance(node, list):
        for value in node:
            yield from _enums(value)


def test_config_schema_lists_the_methods_options():
    method = yaml.safe_load(SCHEMA.read_text())["properties"]["method"]["properties"]
    heads, spatial = list(_enums(method["heads"])), list(_enums(method["spatial"]))
    assert heads and all(e == options.HEADS for e in heads)
    assert spatial and all(e == options.SPATIAL for e in spatial)


def test_data_level_modules_import_without_torch():
    """The analyses import these without paying for torch (gradeclip/__init__.py's lazy names rely on it)."""
    import subprocess
    import sys

    code = ("import sys, gradeclip, gradeclip.io, gradeclip.clevr, gradeclip.toyworld, gradeclip.options; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
