# Shared values and input functions (orchestration only: every computation lives in gradeclip/ or analysis/).
import hashlib
import json
import sys
from pathlib import Path

from analysis import artifacts as AR
from gradeclip.datasets import CLEVR_SCENES, COCO_INSTANCES, KARPATHY_JSON, root_problems
from gradeclip.files import names_checkpoint_file
from gradeclip.jobs import load_jobs_tsv, shard_count
from gradeclip.options import HEADS

RESULTS = config["results"]
REPORTS = config["reports"]
TOY = config["dataset"] == "toyworld"
# the {heads} wildcard: one of gradeclip.options.HEADS, the values the method accepts
HEADS_PATTERN = "|".join(HEADS)
SPLIT = "eval"
DESIGN = f"{RESULTS}/design"

# Provenance for the report: a hash of the whole configuration.
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

# ----------------------------------------------------------------------------------------------- data (paper)
DATA = config.get("data") or {}
DATA_DIR = DATA.get("dir", "data/external")
# Dataset roots already on disk (a cluster's copies) replace the download and extraction of their archives.
ROOTS = {name: root for name, root in (DATA.get("roots") or {}).items() if root}
# Which root replaces which downloaded archive.
ROOT_OF_RESOURCE = {"coco_val2014": "coco", "coco_annotations2014": "coco", "karpathy_captions": "karpathy",
                    "clevr_v1": "clevr"}
EXTRACTED = f"{DATA_DIR}/extracted"
# The folders the study reads, from a root or from an extraction: COCO's root holds val2014/ (and annotations/),
# Karpathy's holds dataset_coco.json, CLEVR's is the CLEVR_v1.0 folder.
DATASET_PATHS = {
    "coco_root": ROOTS.get("coco", f"{EXTRACTED}/coco_val2014"),
    "instances_json": f"{ROOTS.get('coco', f'{EXTRACTED}/coco_annotations2014')}/{COCO_INSTANCES}",
    "karpathy_json": f"{ROOTS.get('karpathy', f'{EXTRACTED}/karpathy_captions')}/{KARPATHY_JSON}",
    "clevr_root": ROOTS.get("clevr", f"{EXTRACTED}/clevr_v1/CLEVR_v1.0"),
}
SAM = config.get("sam") or {}


def dataset_sources(wildcards):
    """What a dataset's layout check reads: a root's annotation files, or the extracted archives (which brings in
    the download and extract rules)."""
    if wildcards.dataset == "coco":
        return {"instances": DATASET_PATHS["instances_json"] if "coco" in ROOTS else
                [f"{EXTRACTED}/coco_val2014", f"{EXTRACTED}/coco_annotations2014"],
                "karpathy": DATASET_PATHS["karpathy_json"] if "karpathy" in ROOTS else f"{EXTRACTED}/karpathy_captions"}
    return {"scenes": f"{ROOTS['clevr']}/{CLEVR_SCENES}" if "clevr" in ROOTS else f"{EXTRACTED}/clevr_v1"}


def sam_checkpoint():
    """The SAM checkpoint file (config sam.checkpoint), or the done marker of the registered ViT-H download."""
    return SAM.get("checkpoint") or f"{DATA_DIR}/downloads/sam_vit_h.done"


# ----------------------------------------------------------------------------------------------- model
def model_checkpoint():
    """The checkpoint file the explanation rules depend on ([] for a hub tag such as 'openai')."""
    if TOY and config["toyworld"]["retrain"]:
        return f"{RESULTS}/model/gradeclip-toy-ViT.pt"
    pretrained = config["model"]["pretrained"]
    return pretrained if names_checkpoint_file(pretrained) else []


def model_params():
    """Model settings passed as params, so that changing any of them reruns the jobs that use the model."""
    return dict(config["model"], pretrained=model_checkpoint() or config["model"]["pretrained"])


# ----------------------------------------------------------------------------------------------- inputs, at once
def configured_input_problems():
    """One line per configured input that is not there (config key and path), checked before any job runs."""
    problems = []

    def need(key, path):
        if not Path(path).exists():
            problems.append(f"{key}: {path} does not exist")

    if not (TOY and config["toyworld"]["retrain"]) and names_checkpoint_file(config["model"]["pretrained"]):
        need("model.pretrained", config["model"]["pretrained"])
    if not TOY:
        for name, root in ROOTS.items():
            problems += root_problems(name, root, f"data.roots.{name}")
        for name, copy in (DATA.get("local_copies") or {}).items():
            if copy and ROOT_OF_RESOURCE.get(name) not in ROOTS and not (name == "sam_vit_h" and SAM.get("checkpoint")):
                need(f"data.local_copies.{name}", copy)
        if DATA.get("imagenet_labels"):
            need("data.imagenet_labels", DATA["imagenet_labels"])
        if SAM.get("checkpoint"):
            need("sam.checkpoint", SAM["checkpoint"])
        elif SAM.get("model_type", "vit_h") != "vit_h":
            problems.append(f"sam.checkpoint: not set, and only SAM vit_h has a registered download: set it to a "
                            f"{SAM['model_type']} checkpoint file")
    for key in ("concreteness_ratings", "frequency_corpus"):
        if config["study"].get(key):
            need(f"study.{key}", config["study"][key])
    return problems


_problems = configured_input_problems()
if _problems:  # one line per problem, naming the config key and the path; no job has run
    sys.exit("\n".join(f"config error: {p}" for p in _problems))


# ----------------------------------------------------------------------------------------------- design and shards
def design_inputs(wildcards):
    """Inputs of the study design: the toy-world scenes, or the checked COCO/CLEVR data, the triplet manifest and
    the SAM masks."""
    if TOY:
        return {"scenes": f"{RESULTS}/toyworld/scenes/TOY_{SPLIT}_scenes.json"}
    return {"coco_layout": f"{RESULTS}/data/coco_layout.json", "clevr_layout": f"{RESULTS}/data/clevr_layout.json",
            "triplets": f"{DESIGN}/coco_triplets.csv", "clevr_masks": f"{RESULTS}/clevr_masks"}


def design_shards(kind):
    """Shard ids of the design's image or text job list: its images, ``shards.images_per_shard`` to a shard (known
    once the study_design checkpoint has run)."""
    jobs = checkpoints.study_design.get().output[f"{kind}_jobs"]
    n = shard_count(load_jobs_tsv(jobs, kind), config["shards"]["images_per_shard"])
    return [f"{i:04d}" for i in range(n)]


# The head modes the study explains with (config method.heads: one mode or a list); each is a {heads} wildcard value.
HEADS = [config["method"]["heads"]] if isinstance(config["method"]["heads"], str) else list(config["method"]["heads"])


def _modes(wildcards):
    """The head mode of a per-mode rule's job, or every mode (for the targets that want all of them)."""
    return [wildcards.heads] if "heads" in wildcards.keys() else HEADS


def image_shard_files(wildcards):
    return expand(f"{RESULTS}/explanations/{{heads}}/images/shard_{{shard}}.npz", heads=_modes(wildcards),
                  shard=design_shards("image"))


def text_shard_files(wildcards):
    return expand(f"{RESULTS}/explanations/{{heads}}/texts/shard_{{shard}}.csv", heads=_modes(wildcards),
                  shard=design_shards("text"))


def attribute_shard_files(wildcards):
    return expand(f"{RESULTS}/analysis/{{heads}}/attributes/shard_{{shard}}.csv", heads=_modes(wildcards),
                  shard=design_shards("image"))


# Paper mode: the COCO triplet manifest, listed in the report.
PAPER_REPORT_INPUTS = {} if TOY else {"coco_triplets": f"{DESIGN}/coco_triplets.csv"}


def parent_dir(path, levels=1):
    """The folder ``levels`` above a file: for params derived from a rule's own inputs/outputs."""
    return str(Path(path).parents[levels - 1])


CORPUS_COUNTS = f"{RESULTS}/analysis/corpus_word_counts.csv"


def concreteness_sources(wildcards):
    """Optional inputs: the original Brysbaert ratings file, the word counts of a local corpus."""
    sources = {}
    if config["study"].get("concreteness_ratings"):
        sources["ratings"] = config["study"]["concreteness_ratings"]
    if config["study"].get("frequency_corpus"):
        sources["counts"] = CORPUS_COUNTS
    return sources


# ----------------------------------------------------------------------------------------------- results
# What each analysis step writes (analysis/artifacts.py): its tables and figures under <reports>/... and their
# captions (analysis/captions/<key>.rst, the same text in the HTML report and in `snakemake --report`).
MODE_REPORTS = f"{REPORTS}/{{heads}}"
STUDY_ARTIFACTS = {
    "attributes": AR.ATTRIBUTES,
    "addibility": AR.ADDIBILITY,
    "concreteness": AR.CONCRETENESS,
    "galleries": AR.galleries(config["study"]["gallery_size"]),
}
TOY_SANITY = TOY and config["toyworld"]["sanity_scenes"] > 0


def caption_file(key):
    """A result's caption file, for report(caption=...): the one the HTML report reads."""
    return str(AR.caption_path(key))


def artifact_outputs(folder, artifacts, category, subcategory=None):
    """The named outputs of a step writing ``artifacts`` under ``folder``: each table ``<key>`` (CSV) and each figure
    ``<key>`` ([PNG, SVG]), the CSV and the PNG marked for Snakemake's report with the key's caption, in ``category``
    (a name, or a name per key)."""

    def reported(path, key):
        name = category[key] if isinstance(category, dict) else category
        return report(str(path), caption=caption_file(key), category=name, subcategory=subcategory)

    outputs = {key: reported(AR.table_file(folder, key), key) for key in artifacts.tables}
    for key in artifacts.figures:
        png, *others = AR.figure_files(folder, key)
        outputs[key] = [reported(png, key), *map(str, others)]
    return outputs


def study_artifact_files(heads):
    """Every table and figure file the §V analysis rules write for one head mode (the report rule's inputs)."""
    folder = MODE_REPORTS.format(heads=heads)
    return [str(f) for artifacts in STUDY_ARTIFACTS.values() for f in AR.files(folder, artifacts)]


# ----------------------------------------------------------------------------------------------- faithfulness
def faithfulness_inputs(wildcards):
    """The model, and in paper mode the checked COCO layout (rule dataset_layout) and the ImageNet labels (asked
    for only when the faithfulness target is: a paper-mode run of the main study does not need ImageNet). Rule
    faithfulness_task's (workflow/rules/faithfulness.smk, which sets FAITHFULNESS_DATA)."""
    inputs = {"model": model_checkpoint()}
    if not TOY:
        if not (FAITHFULNESS_DATA["imagenet_root"] and FAITHFULNESS_DATA["imagenet_labels"]):
            raise ValueError("config error: faithfulness in paper mode needs ImageNet val: set data.roots.imagenet "
                             "(the extracted ILSVRC2012 val folder) and data.imagenet_labels (its '<file> <class "
                             "index>' labels file)")
        inputs.update(coco_layout=f"{RESULTS}/data/coco_layout.json", imagenet_labels=DATA["imagenet_labels"])
    return inputs
