"""The report's toy-world sanity table: one row per map, read from the localisation metrics that the toy CLIP's
model card uses too."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analysis.toy_sanity import localisation_table

METRICS = Path(__file__).resolve().parents[1] / "data" / "toy_clip" / "metrics.json"


def summary(pointing, energy, outcomes=True):
    out = {"pointing": {"value": pointing, "ci95": [pointing - 0.1, pointing + 0.1]},
           "energy_share": {"value": energy, "ci95": [energy - 0.05, energy + 0.05]}}
    if outcomes:
        out["pointing_outcomes"] = {"named": pointing, "other_object": 0.5 * (1 - pointing),
                                    "background": 0.5 * (1 - pointing), "constant": 0.0}
    return out


def block(grad):
    return {"grad_eclip": summary(*grad), "raw_attention": summary(0.3, 0.35), "input_gradient": summary(0.2, 0.38),
            "gradient_x_input": summary(0.4, 0.41), "uniform": summary(0.04, 0.347, outcomes=False)}


def test_rows_values_and_the_marked_mode():
    table = localisation_table({"n_scenes": 50, "single": block((0.6, 0.65)), "multi": block((0.8, 0.77))}, "multi")
    assert list(table["map"]) == ['Grad-ECLIP, heads="single"', 'Grad-ECLIP, heads="multi" (this run)',
                                  "raw class-token attention", "input gradient", "gradient x input", "uniform map"]
    assert list(table["pointing"]) == [0.6, 0.8, 0.3, 0.2, 0.4, 0.04]
    assert list(table["energy_share"]) == [0.65, 0.77, 0.35, 0.38, 0.41, 0.347]
    assert table["pointing_ci_low"][1] == pytest.approx(0.7) and table["energy_share_ci_high"][1] == pytest.approx(0.82)
    assert (table["n_scenes"] == 50).all()
    assert table["argmax_on_other_object"][0] == pytest.approx(0.2)
    assert math.isnan(table["argmax_on_named_object"].iloc[-1])  # a uniform map has no argmax


def test_one_mode_only_and_no_mode():
    table = localisation_table({"n_scenes": 5, "multi": block((0.8, 0.77))}, "single")
    assert list(table["map"])[0] == 'Grad-ECLIP, heads="multi"' and len(table) == 5
    with pytest.raises(ValueError, match="neither"):
        localisation_table({"n_scenes": 5}, "single")


def test_shipped_metrics_give_the_cards_numbers():
    localisation = json.loads(METRICS.read_text())["localisation"]
    table = localisation_table(localisation, "single").set_index("map")
    assert table.loc['Grad-ECLIP, heads="single" (this run)', "pointing"] == \
        localisation["single"]["grad_eclip"]["pointing"]["value"]
    assert table.loc["gradient x input", "energy_share"] == \
        localisation["single"]["gradient_x_input"]["energy_share"]["value"]
    outcomes = table.drop(index="uniform map")[["argmax_on_named_object", "argmax_on_other_object",
                                                "argmax_on_background", "constant_map"]]
    assert outcomes.sum(axis=1).round(9).eq(1).all()
    assert (table["argmax_on_named_object"].dropna() == table["pointing"].drop(index="uniform map")).all()


def test_both_modes_marked_and_the_per_colour_table_from_the_shipped_metrics():
    from analysis.toy_sanity import by_colour_table

    localisation = json.loads(METRICS.read_text())["localisation"]
    marked = localisation_table(localisation, ["single", "multi"])
    assert list(marked["map"])[:2] == ['Grad-ECLIP, heads="single" (this run)', 'Grad-ECLIP, heads="multi" (this run)']
    colours = by_colour_table(localisation).set_index("colour")
    for colour in ("red", "blue"):
        group = localisation["single"]["grad_eclip_by_named_object"][f"color_{colour}"]
        assert colours.loc[colour, "n"] == group["n"]
        assert colours.loc[colour, "single_pointing"] == group["pointing"]["value"]
        assert colours.loc[colour, "multi_pointing"] == \
            localisation["multi"]["grad_eclip_by_named_object"][f"color_{colour}"]["pointing"]["value"]
    assert colours["n"].sum() == localisation["n_scenes"]
    # the model card's finding, visible per colour: single-head maps miss the red objects far more often
    assert colours.loc["red", "single_pointing"] < colours.loc["red", "multi_pointing"]
