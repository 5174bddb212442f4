from _common import explainer_from_params, setup_logging

from analysis.report import save_artifacts
from analysis.toy_sanity import by_colour_table, localisation_table
from gradeclip.toyworld.evaluate import SPLIT_SEEDS, localisation_metrics, write_json

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
explainer = explainer_from_params(snakemake)  # noqa: F821
metrics = localisation_metrics(explainer.clip, params.n_scenes, seed=SPLIT_SEEDS["test"][1],
                               spatial=params.method["spatial"], image_layers=params.method["image_layers"])
write_json(metrics, snakemake.output.metrics)  # noqa: F821
table = localisation_table(metrics, params.study_heads)
save_artifacts(params.reports, tables={"toy_sanity": table, "toy_sanity_by_colour": by_colour_table(metrics)},
               declared=snakemake.output)  # noqa: F821
log.info("toy sanity check, %d scenes:\n%s", params.n_scenes, table.to_string())
