"""The toy CLIP's model card and the README quote the shipped checkpoint's measured numbers: they must be the numbers
in data/toy_clip/metrics.json (written by `gradeclip toyworld evaluate`) and the card must name the shipped file.
Regenerating the metrics or retraining the checkpoint without updating the text fails here."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY_DIR = ROOT / "data" / "toy_clip"
CARD = (TOY_DIR / "MODEL_CARD.md").read_text()
METRICS = json.loads((TOY_DIR / "metrics.json").read_text())
LOC = METRICS["localisation"]

# the card's names for the maps of metrics.json's localisation block
CARD_MAP_NAMES = {"Grad-ECLIP": "grad_eclip", "raw class-token attention (last block, head mean)": "raw_attention",
                  "input gradient (Simonyan et al. 2014)": "input_gradient",
                  "gradient x input (Shrikumar et al. 2016)": "gradient_x_input", "uniform (expected value)": "uniform"}


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every markdown table row of ``text`` whose first cell is ``first_cell``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == first_cell:
                rows.append(cells)
    return rows


def value_with_ci(stat: dict) -> str:
    return f"{stat['value']:.3f} [{stat['ci95'][0]:.3f}, {stat['ci95'][1]:.3f}]"


def test_table_rows_reads_cells():
    text = "intro\n| a | b |\n|---|---|\n| x | 1 [2, 3] |\n| y | 4 |\n| x | 5 |\n"
    assert table_rows(text, "x") == [["x", "1 [2, 3]"], ["x", "5"]]
    assert table_rows(text, "z") == []


def test_card_names_the_shipped_checkpoint_by_its_sha256():
    digest = hashlib.sha256((TOY_DIR / "gradeclip-toy-ViT.pt").read_bytes()).hexdigest()
    assert table_rows(CARD, "sha256") == [["sha256", f"`{digest}`"]]


@pytest.mark.parametrize("category", ["color", "shape", "size"])
def test_card_zero_shot_table_is_metrics_json(category):
    stat = METRICS["zero_shot"][category]
    (row,) = table_rows(CARD, category)
    assert row[2] == f"{stat['chance']:.3f}"
    assert row[3] == value_with_ci(stat["accuracy"])


@pytest.mark.parametrize("heads", ["single", "multi"])
def test_card_localisation_table_is_metrics_json(heads):
    rows = {row[1]: row[2:] for row in table_rows(CARD, heads) if len(row) == 4}
    for card_name, key in CARD_MAP_NAMES.items():
        stats = LOC[heads][key]
        assert rows[card_name] == [value_with_ci(stats["pointing"]), value_with_ci(stats["energy_share"])], card_name
    margin = LOC[heads]["margin_over_raw_attention"]
    assert rows["Grad-ECLIP - raw attention"] == [f"{margin['pointing']:+.3f}", f"{margin['energy_share']:+.3f}"]


def test_card_argmax_table_is_metrics_json():
    """The "Where the argmax lands" table: one row per map, the text-independent ones (heads "-") from the single
    block, where they are the same as in the multi block."""
    names = {"Grad-ECLIP": "grad_eclip", "raw class-token attention": "raw_attention",
             "input gradient": "input_gradient", "gradient x input": "gradient_x_input"}
    rows = [row for first in ("single", "multi", "-") for row in table_rows(CARD, first) if len(row) == 6]
    assert [row[:2] for row in rows] == [["single", "Grad-ECLIP"], ["multi", "Grad-ECLIP"]] + [
        ["-", name] for name in list(names)[1:]]
    for heads, name, *cells in rows:
        outcomes = LOC["single" if heads == "-" else heads][names[name]]["pointing_outcomes"]
        assert outcomes == LOC["multi"][names[name]]["pointing_outcomes"] or heads != "-"
        assert cells == [f"{outcomes[k]:.3f}" if outcomes[k] else "0"
                         for k in ("named", "other_object", "background", "constant")], name


def test_card_target_table_and_status_follow_targets_met():
    met, targets = METRICS["targets_met"], METRICS["targets"]
    word = {True: "yes", False: "**no**"}
    for category, card_word in (("color", "colour"), ("shape", "shape"), ("size", "size")):
        (row,) = table_rows(CARD, f"zero-shot {card_word} >= {targets['zero_shot'][category]:g}")
        accuracy = METRICS["zero_shot"][category]["accuracy"]["value"]
        assert row[1].startswith(f"{word[met[f'zero_shot_{category}']]} ({accuracy:.3f}"), row
    for metric, card_name in (("pointing", "pointing"), ("energy_share", "energy share")):
        (row,) = table_rows(CARD, f"{card_name} >= {targets[metric]:g} (single / multi)")
        values = " / ".join(f"{LOC[heads]['grad_eclip'][metric]['value']:.3f}" for heads in ("single", "multi"))
        assert row[1] == f"{word[met[f'single_{metric}']]} / {word[met[f'multi_{metric}']]} ({values})", row
    assert f"It meets {sum(met.values())} of {len(met)} on the test scenes" in CARD


def test_readme_localisation_table_is_metrics_json():
    readme = (ROOT / "README.md").read_text()
    for label, stats in (('Grad-ECLIP, heads="single" (paper)', LOC["single"]["grad_eclip"]),
                         ('Grad-ECLIP, heads="multi"', LOC["multi"]["grad_eclip"]),
                         ("raw class-token attention", LOC["single"]["raw_attention"]),
                         ("input gradient", LOC["single"]["input_gradient"]),
                         ("gradient x input", LOC["single"]["gradient_x_input"]),
                         ("uniform map", LOC["single"]["uniform"])):
        assert table_rows(readme, label) == [[label, f"{stats['pointing']['value']:.3f}",
                                              f"{stats['energy_share']['value']:.3f}"]], label


def test_every_file_the_card_points_to_exists():
    for name in set(re.findall(r"`([A-Za-z_]+\.md)`", CARD)):
        assert (TOY_DIR / name).is_file(), name
