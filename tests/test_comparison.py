"""`gradeclip toyworld compare`: every registered method on the toy scenes as one table, and the shipped table
(data/toy_clip/baselines.json, quoted by the model card and the README) agreeing with the model card's own metrics."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gradeclip import baselines
from gradeclip.models import load_clip
from gradeclip.toyworld import comparison
from gradeclip.toyworld.cli import add_toyworld_commands
from gradeclip.toyworld.evaluate import benchmark_explanations, localisation_metrics
from gradeclip.toyworld.train import MODEL_NAME

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
TOY_DIR = ROOT / "data" / "toy_clip"
CHECKPOINT = TOY_DIR / "gradeclip-toy-ViT.pt"


def shipped() -> dict:
    return json.loads((TOY_DIR / "baselines.json").read_text())


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gradeclip")
    add_toyworld_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["toyworld", "compare", *argv])
    return args.func(args)


def test_compare_scores_each_method_as_the_benchmark_and_goes_on_after_a_failure(tmp_path, capsys):
    """hand-computed: the Grad-ECLIP rows equal the model card's localisation metrics on the same scenes; a method
    that cannot run is recorded with its error, the others are scored, and the exit code says so."""
    out = tmp_path / "c.json"
    assert run("--checkpoint", str(CHECKPOINT), "--out", str(out), "--n-scenes", "12", "--methods",
               "grad-eclip,grad-eclip-multi,attention-eclip,raw-attention,input-gradient", "--method-scenes",
               "input-gradient=5") == 1
    result = json.loads(out.read_text())
    clip = load_clip(MODEL_NAME, str(CHECKPOINT))
    card = localisation_metrics(clip, 12, seed=result["seed"])
    for name, heads in (("grad-eclip", "single"), ("grad-eclip-multi", "multi")):
        assert result["methods"][name]["map"]["pointing"] == card[heads]["grad_eclip"]["pointing"]
    assert result["methods"]["raw-attention"]["map"]["pointing"] == card["single"]["raw_attention"]["pointing"]
    assert "definition could not be found" in result["methods"]["attention-eclip"]["error"]
    # --method-scenes: the first 5 of the same scenes, as the benchmark scores 5 scenes
    five = benchmark_explanations(baselines.get_method("input-gradient"), clip, n_scenes=5)
    assert result["methods"]["input-gradient"]["n_scenes"] == 5
    assert result["methods"]["input-gradient"]["map"] == five["map"]
    captured = capsys.readouterr()
    assert "4 of 5 methods scored" in captured.out and "attention-eclip not run" in captured.err
    table = comparison.markdown_table(result)
    assert "| single | Grad-ECLIP (paper) | `grad-eclip` | raw | 12 |" in table
    assert "| - | input gradient | `input-gradient` | raw | 5 |" in table
    assert "| - | Attention-ECLIP (Cui & Fan 2026) | `attention-eclip` | - | - | not run:" in table


@pytest.mark.parametrize("argv, message", [
    (("--method-option", "n_masks=3"), "expected METHOD:KEY=VALUE"),
    (("--method-scenes", "rise:3"), "expected METHOD=N"),
    (("--method-scenes", "rise=0"), "expected METHOD=N"),
    (("--methods", "grad-eclip,gradcam"), "unknown method 'gradcam'"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, message):
    """hand-computed: each refused before any scene is scored, exit status 2, nothing written."""
    assert run("--checkpoint", str(CHECKPOINT), "--out", str(tmp_path / "x.json"), *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_shipped_table_is_on_the_model_cards_scenes():
    """The shipped comparison and metrics.json (`toyworld evaluate`) score the same scenes: Grad-ECLIP's and the raw
    attention's numbers agree, so neither was regenerated without the other."""
    loc = json.loads((TOY_DIR / "metrics.json").read_text())["localisation"]
    table = shipped()
    assert table["n_scenes"] == loc["n_scenes"] and table["seed"] == loc["seed"]
    for name, heads, key in (("grad-eclip", "single", "grad_eclip"), ("grad-eclip-multi", "multi", "grad_eclip"),
                             ("raw-attention", "single", "raw_attention"), ("input-gradient", "single",
                                                                             "input_gradient")):
        entry = table["methods"][name]["map"]
        assert entry["pointing"] == loc[heads][key]["pointing"], name
        assert entry["energy_share"]["value"] == pytest.approx(loc[heads][key]["energy_share"]["value"], abs=1e-6)
    assert set(table["methods"]) == {name for name, _, _ in comparison.ROWS} - set(comparison.UNAVAILABLE)
    assert table["methods"]["rise"]["options"] == comparison.DEFAULT_OPTIONS["rise"]
    for name, n in comparison.DEFAULT_SCENES.items():
        assert table["methods"][name]["n_scenes"] == n, name
    assert not any("error" in entry for entry in table["methods"].values())


@pytest.mark.parametrize("document", ["data/toy_clip/MODEL_CARD.md", "README.md"])
def test_documents_quote_the_shipped_table(document):
    """The card and the README hold the table that `gradeclip toyworld compare --table-from
    data/toy_clip/baselines.json` prints, verbatim."""
    assert comparison.markdown_table(shipped()) in (ROOT / document).read_text()


def test_table_from_prints_the_shipped_table(capsys):
    assert run("--table-from", str(TOY_DIR / "baselines.json")) == 0
    assert capsys.readouterr().out == comparison.markdown_table(shipped())
