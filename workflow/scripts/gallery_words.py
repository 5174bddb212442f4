from _common import explainer_from_params, setup_logging

from analysis.design import StudyDesign
from analysis.gallery import gallery_plan, gallery_text_jobs
from gradeclip.batch import explain_text_jobs
from gradeclip.jobs import TextJob

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
design = StudyDesign.read(params.design_dir)
jobs = gallery_text_jobs(design.addibility, design.attributes, design.images,
                         gallery_plan(design.addibility, design.attributes, params.n))
n = explain_text_jobs(explainer_from_params(snakemake), [TextJob(*r) for r in jobs.itertuples(index=False)],  # noqa: F821
                      snakemake.output[0])  # noqa: F821
log.info("word importances of %d gallery texts", n)
