"""Helpers shared by the workflow scripts: logging to the rule's log file, and building the explainer from the
rule's params. Scripts stay thin: they read Snakemake's inputs, call one package function, write the outputs."""
from __future__ import annotations

import logging
import sys
import warnings


def setup_logging(snakemake) -> logging.Logger:
    log_file = snakemake.log[0] if snakemake.log else None
    handlers = [logging.FileHandler(log_file, mode="w")] if log_file else [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers,
                        force=True)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return logging.getLogger(snakemake.rule)


def explainer_from_params(snakemake):
    import torch

    from gradeclip import GradECLIP

    torch.set_num_threads(max(1, snakemake.threads))
    torch.manual_seed(0)
    model, method = snakemake.params.model, snakemake.params.method
    return GradECLIP.from_pretrained(model["name"], model["pretrained"], device=model["device"],
                                     precision=model["precision"], image_layers=method["image_layers"],
                                     text_layers=method["text_layers"], heads=method["heads"],
                                     spatial=method["spatial"], keep_aspect=method["keep_aspect"])


def write_manifest(path, written: dict) -> None:
    """What an analysis rule wrote ({key: [files]}), for the report rule; written last, atomically."""
    import json

    from gradeclip.files import atomic_write_text

    atomic_write_text(path, json.dumps({k: [str(p) for p in v] for k, v in written.items()}, indent=1))
