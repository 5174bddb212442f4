"""Every registered explanation method on the toy world's localisation scenes, as one table: the toy CLIP's model
card and the README quote it (``gradeclip toyworld compare``).

Each method is scored by ``evaluate.benchmark_explanations`` on the same scenes as the model card's Grad-ECLIP
numbers (pointing game and energy share with 95% intervals, where the argmax lands, a uniform map's expected
scores). Methods whose result depends on the head mode (raw attention and Grad-CAM: the model's heads, or the
single-head recomputation of the last block that the Grad-ECLIP repository uses) get one row per mode. The slow
methods (RISE, M2IB: hundreds of forward passes per scene) are scored on the first scenes of the same list
(``DEFAULT_SCENES``); each row states its n.
"""
from __future__ import annotations

import time
from typing import Optional

from gradeclip import baselines
from gradeclip.models import LoadedClip
from gradeclip.toyworld.evaluate import DEFINITIONS, _model_record, benchmark_explanations

# (registry name, head mode: "single" / "multi" / "-" when the method has none, label), in the table's order
ROWS = (
    ("grad-eclip", "single", "Grad-ECLIP (paper)"),
    ("raw-attention-single", "single", "raw attention, single-head recomputation (Grad-ECLIP repository)"),
    ("grad-cam-single", "single", "Grad-CAM of the single-head recomputation (Grad-ECLIP repository)"),
    ("grad-eclip-multi", "multi", "Grad-ECLIP"),
    ("raw-attention", "multi", "raw attention, the model's heads averaged"),
    ("grad-cam", "multi", "Grad-CAM"),
    ("rollout", "-", "attention rollout"),
    ("game", "-", "GAME (Chefer et al. 2021)"),
    ("maskclip", "-", "MaskCLIP"),
    ("clip-surgery", "-", "CLIP Surgery"),
    ("m2ib", "-", "M2IB"),
    ("rise", "-", "RISE"),
    ("legrad", "-", "LeGrad"),
    ("input-gradient", "-", "input gradient"),
    ("gradient-x-input", "-", "gradient x input"),
    ("attention-eclip", "-", "Attention-ECLIP (Cui & Fan 2026)"),
)
# Maps that each method's code returns min-max normalised (the benchmark scores every map as returned; a shift
# changes the energy share, not the pointing game)
MINMAX = {"maskclip", "clip-surgery", "m2ib", "rise", "legrad"}
# What the toy table runs RISE with: 2000 masks (the default) x 1000 scenes would be 2 million forward passes.
# Fewer masks make the maps noisier (the model card: pointing on 32 scenes at 100 and 500 masks).
DEFAULT_OPTIONS = {"rise": {"n_masks": 500}}
# How many of the scenes the slow methods are scored on (the first ones of the list; all of them if fewer): RISE
# with 500 masks costs 500 forward passes per scene, M2IB 100 forward and backward passes through the blocks above
# its bottleneck; on this project's shared 2-core machine about 5 s and 1.4 s per scene.
DEFAULT_SCENES = {"rise": 200, "m2ib": 200}
# Registered names that the table leaves out by default (they cannot run; the table says why)
UNAVAILABLE = ("attention-eclip",)


def compare_methods(clip: LoadedClip, n_scenes: int = 1000, split: str = "test", batch_size: int = 32,
                    methods: Optional[list[str]] = None, options: Optional[dict[str, dict]] = None,
                    scenes: Optional[dict[str, int]] = None) -> dict:
    """Score each of ``methods`` (default: every row of ``ROWS`` but the unavailable ones) on the first
    ``n_scenes`` localisation scenes of ``split``, a method named in ``scenes`` (default ``DEFAULT_SCENES``) on its
    first ``scenes[name]`` of them; a method that raises (an unsupported architecture, say) is recorded with its
    error and the others go on."""
    methods = list(methods or [name for name, _, _ in ROWS if name not in UNAVAILABLE])
    unknown = [name for name in methods if name not in baselines.METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; expected one of {', '.join(baselines.METHODS)}")
    options = {**DEFAULT_OPTIONS, **(options or {})}
    scenes = {**DEFAULT_SCENES, **(scenes or {})}
    results = {}
    for name in methods:
        method_options = options.get(name, {})
        start = time.perf_counter()
        try:
            baselines.check_method(name, clip, method_options)
            result = benchmark_explanations(baselines.get_method(name, **method_options), clip,
                                            n_scenes=min(n_scenes, scenes.get(name, n_scenes)), split=split,
                                            batch_size=batch_size, name=name)
        except ValueError as err:
            results[name] = {"options": method_options, "error": str(err)}
            continue
        result.pop("definitions")
        results[name] = {"options": method_options, "seconds": round(time.perf_counter() - start, 1), **result}
    first = next((r for r in results.values() if "error" not in r), {})
    return {"model": _model_record(clip), "split": split, "n_scenes": n_scenes, "seed": first.get("seed"),
            "methods": results,
            "definitions": {**{k: DEFINITIONS[k] for k in ("pointing", "energy_share", "pointing_outcomes", "uniform",
                                                           "ci95")},
                            "seconds": "wall time of the method on its scenes in this run, scoring included",
                            "map": "raw: the method's values; min-max: normalised per map by the method's code"}}


def _cell(stat: dict) -> str:
    return f"{stat['value']:.3f} [{stat['ci95'][0]:.3f}, {stat['ci95'][1]:.3f}]"


def markdown_table(comparison: dict) -> str:
    """The comparison as a markdown table: one row per method (per head mode where that applies), the uniform map's
    expected scores last."""
    lines = [f"Held-out scenes ({comparison['split']} split, seed {comparison['seed']}): each method on the first n of "
             f"the same {comparison['n_scenes']}; value [95% CI]:", "",
             "| heads | method | `--method` | map | n | pointing game | energy share | argmax on another object |",
             "|---|---|---|---|---|---|---|---|"]
    methods = comparison["methods"]
    uniform = None
    for name, heads, label in ROWS:
        if name not in methods:
            continue
        entry = methods[name]
        if name == "rise":
            label = f"{label} ({entry['options'].get('n_masks', baselines.method_options('rise')['n_masks'])} masks)"
        if "error" in entry:
            lines.append(f"| {heads} | {label} | `{name}` | - | - | not run: {entry['error']} | | |")
            continue
        summary = entry["map"]
        if entry["n_scenes"] == comparison["n_scenes"]:
            uniform = entry["uniform"]
        lines.append(f"| {heads} | {label} | `{name}` | {'min-max' if name in MINMAX else 'raw'} | "
                     f"{entry['n_scored']} | {_cell(summary['pointing'])} | {_cell(summary['energy_share'])} | "
                     f"{summary['pointing_outcomes']['other_object']:.3f} |")
    if "attention-eclip" not in methods:
        lines.append("| - | Attention-ECLIP (Cui & Fan 2026) | `attention-eclip` | - | - | not available: its "
                     "definition could not be found (`gradeclip.baselines.ATTENTION_ECLIP_MISSING`) | | |")
    if uniform:
        lines.append(f"| - | uniform map (expected value) | - | - | {comparison['n_scenes']} | "
                     f"{_cell(uniform['pointing'])} | {_cell(uniform['energy_share'])} | - |")
    return "\n".join(lines) + "\n"
