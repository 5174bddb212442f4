# The section V analyses, once per head mode ({heads}: config method.heads, one mode or a list): per-shard tables,
# then one aggregation rule per study writing tables (CSV) and figures (PNG, SVG) to <reports>/<heads>/: every one a
# declared output, named by its key (analysis/artifacts.py; common.smk's artifact_outputs), captioned from
# analysis/captions/. The shard lists are input functions (common.smk): the shards follow the design's job lists, per
# head mode.


wildcard_constraints:
    heads=HEADS_PATTERN,


rule attribute_metrics:
    """Section V-B, one shard: each attribute text's map against its object's mask (cosine, Pearson, OT, KL at three
    eps, JS, pointing game, energy share), and the same for its chance levels (uniform map, wrong-object map)."""
    conda:
        "../../environment.yml"
    input:
        maps=f"{RESULTS}/explanations/{{heads}}/images/shard_{{shard}}.npz",
        attributes=DESIGN_FILES["attributes"],
        images=DESIGN_FILES["images"],
    output:
        f"{RESULTS}/analysis/{{heads}}/attributes/shard_{{shard}}.csv",
    resources:
        mem_mb=3000,
    log:
        "logs/attribute_metrics/{heads}/shard_{shard}.log",
    script:
        "../scripts/attribute_metrics.py"


rule attribute_summary:
    """Section V-B: Table IX with chance levels and the mixed-model ranking, the location ablation (Appendix B) with
    its equivalence test, KL's eps sensitivity, pointing game, colour breakdown."""
    conda:
        "../../environment.yml"
    input:
        shards=attribute_shard_files,
        attributes=DESIGN_FILES["attributes"],
    output:
        **artifact_outputs(MODE_REPORTS, STUDY_ARTIFACTS["attributes"], "V-B attributes", "{heads}"),
    params:
        reports=lambda wc, output: parent_dir(output[0], 2),
    log:
        "logs/attribute_summary/{heads}.log",
    script:
        "../scripts/attribute_summary.py"


rule addibility_summary:
    """Section V-A: Table VIII and its tests over images, Fig. 14 (ratios and differences) and its claims."""
    conda:
        "../../environment.yml"
    input:
        shards=image_shard_files,
        addibility=DESIGN_FILES["addibility"],
    output:
        **artifact_outputs(MODE_REPORTS, STUDY_ARTIFACTS["addibility"], "V-A addibility", "{heads}"),
    params:
        reports=lambda wc, output: parent_dir(output[0], 2),
    resources:
        mem_mb=4000,
    log:
        "logs/addibility_summary/{heads}.log",
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
        shards=text_shard_files,
    output:
        **artifact_outputs(MODE_REPORTS, STUDY_ARTIFACTS["concreteness"], "V-C concreteness", "{heads}"),
    params:
        reports=lambda wc, output: parent_dir(output[0], 2),
        top_n=config["study"]["concreteness_top_n"],
    log:
        "logs/concreteness_summary/{heads}.log",
    script:
        "../scripts/concreteness_summary.py"


rule gallery_words:
    """Word importances of the texts the galleries show (their text heat maps), each against its own image."""
    conda:
        "../../environment.yml"
    input:
        design=list(DESIGN_FILES.values()),
        model=model_checkpoint(),
    output:
        f"{RESULTS}/galleries/{{heads}}/words.csv",
    params:
        model=model_params(),
        method=lambda wc: dict(config["method"], heads=wc.heads),
        n=config["study"]["gallery_size"],
        design_dir=lambda wc, input: parent_dir(input.design[0]),
    resources:
        mem_mb=3000,
        gpu=1 if ON_GPU else 0,
    log:
        "logs/gallery_words/{heads}.log",
    script:
        "../scripts/gallery_words.py"


GALLERY_CATEGORIES = {"fig13": "V-A addibility", "fig15": "V-B attributes", "fig16": "V-B attributes"}


rule galleries:
    """Heat-map galleries after the paper's Figs. 13 (words and phrases), 15 (attributes of one image) and 16 (masks
    next to maps), with text heat maps."""
    conda:
        "../../environment.yml"
    input:
        shards=image_shard_files,
        design=list(DESIGN_FILES.values()),
        words=f"{RESULTS}/galleries/{{heads}}/words.csv",
    output:
        **artifact_outputs(MODE_REPORTS, STUDY_ARTIFACTS["galleries"], GALLERY_CATEGORIES, "{heads}"),
    params:
        reports=lambda wc, output: parent_dir(output[0], 2),
        n=config["study"]["gallery_size"],
        design_dir=lambda wc, input: parent_dir(input.design[0]),
    log:
        "logs/galleries/{heads}.log",
    script:
        "../scripts/galleries.py"


rule toy_sanity:
    """Toy-world sanity check of the run's model and method: Grad-ECLIP maps (both head modes) on held-out toy scenes
    with 2-4 objects (the toy CLIP's test split) against the exact masks, next to raw attention, gradient and uniform
    baselines; and per colour of the named object."""
    conda:
        "../../environment.yml"
    input:
        model=model_checkpoint(),
    output:
        **artifact_outputs(REPORTS, AR.TOY_SANITY, "Run"),
        metrics=f"{RESULTS}/toyworld/sanity_metrics.json",
    params:
        model=model_params(),
        method=dict(config["method"], heads=HEADS[0]),
        study_heads=HEADS,
        n_scenes=config["toyworld"]["sanity_scenes"] if TOY else 0,
        reports=lambda wc, output: parent_dir(output[0], 2),
    resources:
        mem_mb=4000,
        gpu=1 if ON_GPU else 0,
    log:
        "logs/toy_sanity.log",
    script:
        "../scripts/toy_sanity.py"
