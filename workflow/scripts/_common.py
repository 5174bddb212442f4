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
    return GradECLIP.from_config(snakemake.params.model, snakemake.params.method)
