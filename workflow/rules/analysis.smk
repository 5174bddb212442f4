# The section V analyses: per-shard tables, then one aggregation rule per study writing tables (CSV) and
# figures (PNG, SVG) to the reports folder, and a manifest of what it wrote for the report rule.
IMAGE_SHARDS = image_shard_files  # input functions (common.smk): the shards follow the design's job lists
TEXT_SHARDS = text_shard_files


rule attribute_metrics:
    """Section V-B, one shard: each attribute text's map against its object's mask (cosine, Pearson, OT, KL, JS,
    pointing game, energy share)."""
    conda:
        "../../environment.yml"
    input:
        maps=f"{RESULTS}/explanations/images/shard_{{shard}}.npz",
        attributes=DESIGN_FILES["attributes"],
        images=DESIGN_FILES["images"],
    output:
        f"{RESULTS}/analysis/attributes/shard_{{shard}}.csv",
    resources:
        mem_mb=3000,
    log:
        "logs/attribute_metrics/shard_{shard}.log",
    script:
        "../scripts/attribute_metrics.py"


rule attribute_summary:
    """Section V-B: Table IX, the location ablation (Appendix B), pointing game."""
    conda:
        "../../environment.yml"
    input:
        shards=attribute_shard_files,
        attributes=DESIGN_FILES["attributes"],
    output:
        table=report(f"{REPORTS}/tables/table_ix.csv", caption="../report/table_ix.rst", category="V-B attributes"),
        figure=report(f"{REPORTS}/figures/fig_attributes.png", caption="../report/fig_attributes.rst",
                      category="V-B attributes"),
        manifest=f"{RESULTS}/analysis/attributes.json",
    params:
        reports=lambda wc, output: parent_dir(output.table, 2),
    log:
        "logs/attribute_summary.log",
    script:
        "../scripts/attribute_summary.py"


rule addibility_summary:
    """Section V-A: Table VIII, paired t-tests against add, Fig. 14."""
    conda:
        "../../environment.yml"
    input:
        shards=IMAGE_SHARDS,
        addibility=DESIGN_FILES["addibility"],
    output:
        table=report(f"{REPORTS}/tables/table_viii.csv", caption="../report/table_viii.rst",
                     category="V-A addibility"),
        figure=report(f"{REPORTS}/figures/fig14.png", caption="../report/fig14.rst", category="V-A addibility"),
        manifest=f"{RESULTS}/analysis/addibility.json",
    params:
        reports=lambda wc, output: parent_dir(output.table, 2),
    resources:
        mem_mb=4000,
    log:
        "logs/addibility_summary.log",
    script:
        "../scripts/addibility_summary.py"


rule corpus_word_counts:
    """Word counts over a local plain-text corpus (e.g. an extracted OpenWebText copy), instead of wordfreq."""
    conda:
        "../../environment.yml"
    input:
        config["study"].get("frequency_corpus") or [],
    output:
        CORPUS_COUNTS,
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        "logs/corpus_word_counts.log",
    script:
        "../scripts/corpus_word_counts.py"


rule concreteness_summary:
    """Section V-C: word importance vs. Brysbaert concreteness and log frequency (Figs. 17, 18)."""
    conda:
        "../../environment.yml"
    input:
        unpack(concreteness_sources),
        shards=TEXT_SHARDS,
    output:
        table=report(f"{REPORTS}/tables/concreteness_regressions.csv", caption="../report/concreteness.rst",
                     category="V-C concreteness"),
        fig17=report(f"{REPORTS}/figures/fig17.png", caption="../report/fig17.rst", category="V-C concreteness"),
        fig18=report(f"{REPORTS}/figures/fig18.png", caption="../report/fig18.rst", category="V-C concreteness"),
        manifest=f"{RESULTS}/analysis/concreteness.json",
    params:
        reports=lambda wc, output: parent_dir(output.table, 2),
        top_n=config["study"]["concreteness_top_n"],
    log:
        "logs/concreteness_summary.log",
    script:
        "../scripts/concreteness_summary.py"


rule galleries:
    """Heat-map galleries in the style of the paper's Figs. 13 (words and phrases) and 15 (attributes, masks)."""
    conda:
        "../../environment.yml"
    input:
        shards=IMAGE_SHARDS,
        design=list(DESIGN_FILES.values()),
    output:
        fig13=report(f"{REPORTS}/figures/fig13.png", caption="../report/fig13.rst", category="V-A addibility"),
        fig15=report(f"{REPORTS}/figures/fig15.png", caption="../report/fig15.rst", category="V-B attributes"),
        manifest=f"{RESULTS}/analysis/galleries.json",
    params:
        reports=lambda wc, output: parent_dir(output.fig13, 2),
        n=config["study"]["gallery_size"],
        design_dir=lambda wc, input: parent_dir(input.design[0]),
    log:
        "logs/galleries.log",
    script:
        "../scripts/galleries.py"


rule toy_sanity:
    """Toy-world sanity check of the run's model and method: Grad-ECLIP maps on held-out toy scenes with 2-4 objects
    (the toy CLIP's test split) against the exact masks, next to raw attention, gradient and uniform baselines."""
    conda:
        "../../environment.yml"
    input:
        model=model_checkpoint(),
    output:
        table=report(f"{REPORTS}/tables/toy_sanity.csv", caption="../report/toy_sanity.rst", category="Run"),
        metrics=f"{RESULTS}/toyworld/sanity_metrics.json",
        manifest=f"{RESULTS}/analysis/toy_sanity.json",
    params:
        model=model_params(),
        method=config["method"],
        n_scenes=config["toyworld"]["sanity_scenes"] if TOY else 0,
        reports=lambda wc, output: parent_dir(output.table, 2),
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1 if ON_GPU else 0,
    log:
        "logs/toy_sanity.log",
    script:
        "../scripts/toy_sanity.py"
