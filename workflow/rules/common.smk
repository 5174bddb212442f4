# Shared values and input functions (orchestration only: every computation lives in gradeclip/ or analysis/).
import hashlib
import json
import math
from pathlib import Path

RESULTS = config["results"]
REPORTS = config["reports"]
TOY = config["dataset"] == "toyworld"
SPLIT = "eval"


def n_study_images():
    if TOY:
        return config["toyworld"]["n_scenes"]
    return config["coco"]["n_images"] + config["clevr"]["n_images"]


N_SHARDS = max(1, math.ceil(n_study_images() / config["shards"]["images_per_shard"]))
SHARDS = [f"{i:04d}" for i in range(N_SHARDS)]

# Provenance for the report: a hash of the whole configuration.
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def model_checkpoint():
    """The checkpoint file the explanation rules depend on ([] for a hub tag such as 'openai')."""
    if TOY and config["toyworld"]["retrain"]:
        return f"{RESULTS}/model/gradeclip-toy-ViT.pt"
    pretrained = config["model"]["pretrained"]
    return pretrained if pretrained and Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors") else []


def model_params():
    """Model settings passed as params, so that changing any of them reruns the jobs that use the model."""
    return dict(config["model"], pretrained=model_checkpoint() or config["model"]["pretrained"])


def design_inputs(wildcards):
    """Inputs of the study design: the toy-world scenes, or the extracted COCO/CLEVR data and SAM masks."""
    if TOY:
        return {"scenes": f"{RESULTS}/toyworld/scenes/TOY_{SPLIT}_scenes.json"}
    data_dir = config["data"]["dir"]
    return {"coco_images": f"{data_dir}/extracted/coco_val2014",
            "coco_annotations": f"{data_dir}/extracted/coco_annotations2014",
            "karpathy": f"{data_dir}/extracted/karpathy_captions",
            "clevr": f"{data_dir}/extracted/clevr_v1",
            "clevr_masks": f"{RESULTS}/clevr_masks"}


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
