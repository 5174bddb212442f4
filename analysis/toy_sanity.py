"""The toy world's sanity check for the report: how often each map peaks on the object a text names, and how much of
its mass the named object holds, on held-out toy scenes where every object's pixels are known.

The numbers come from ``gradeclip.toyworld.evaluate.localisation_metrics`` (the toy CLIP's model card uses the same
function); here they only become one table, so the report shows the run's own model and method options next to
text-independent and gradient baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from gradeclip.options import HEADS

#: (key in the localisation metrics, label in the table), Grad-ECLIP first; the others do not depend on ``heads``.
BASELINES = (("raw_attention", "raw class-token attention"), ("input_gradient", "input gradient"),
             ("gradient_x_input", "gradient x input"), ("uniform", "uniform map"))
OUTCOMES = (("named", "argmax_on_named_object"), ("other_object", "argmax_on_other_object"),
            ("background", "argmax_on_background"), ("constant", "constant_map"))


def _row(label: str, summary: Mapping, n_scenes: int) -> dict:
    row = {"map": label, "n_scenes": n_scenes}
    for metric in ("pointing", "energy_share"):
        stat = summary[metric]
        row[metric] = stat["value"]
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = stat["ci95"]
    outcomes = summary.get("pointing_outcomes")  # a uniform map has none: its argmax is any pixel
    for key, column in OUTCOMES:
        row[column] = outcomes[key] if outcomes else float("nan")
    return row


def localisation_table(localisation: Mapping, study_heads: str | Sequence[str]) -> pd.DataFrame:
    """One row per map: Grad-ECLIP for each ``heads`` mode in ``localisation`` (the modes the study ran with,
    ``study_heads``, marked), then the baselines; pointing game and energy share with their 95% intervals, and
    where the argmax lands."""
    modes = [h for h in HEADS if localisation.get(h)]
    if not modes:
        raise ValueError("localisation metrics hold neither a 'single' nor a 'multi' block")
    n = localisation["n_scenes"]
    study = {study_heads} if isinstance(study_heads, str) else set(study_heads)
    rows = [_row(f'Grad-ECLIP, heads="{h}"' + (" (this run)" if h in study else ""),
                 localisation[h]["grad_eclip"], n) for h in modes]
    rows += [_row(label, localisation[modes[0]][key], n) for key, label in BASELINES if key in localisation[modes[0]]]
    return pd.DataFrame(rows)


def by_colour_table(localisation: Mapping) -> pd.DataFrame:
    """The toy sanity check per colour of the named object, both head modes side by side: pointing game (Wilson
    interval) and energy share, from ``gradeclip.toyworld.evaluate.localisation_metrics``' ``color_*`` groups."""
    modes = [h for h in HEADS if localisation.get(h)]
    colours = sorted({k[len("color_"):] for h in modes for k in localisation[h]["grad_eclip_by_named_object"]
                      if k.startswith("color_")})
    rows = []
    for colour in colours:
        row = {"colour": colour}
        for h in modes:
            stat = localisation[h]["grad_eclip_by_named_object"].get(f"color_{colour}")
            if stat is None:
                continue
            row["n"] = stat["n"]
            row[f"{h}_pointing"] = stat["pointing"]["value"]
            row[f"{h}_pointing_ci_low"], row[f"{h}_pointing_ci_high"] = stat["pointing"]["ci95"]
            row[f"{h}_energy_share"] = stat["energy_share"]["value"]
        rows.append(row)
    out = pd.DataFrame(rows)
    lead = ["colour", "n"]
    return out[lead + [c for c in out.columns if c not in lead]] if len(out) else out
