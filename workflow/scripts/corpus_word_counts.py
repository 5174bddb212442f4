from pathlib import Path

from _common import setup_logging

from analysis.concreteness import corpus_word_counts
from gradeclip.files import atomic_write_text

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
corpus = Path(snakemake.input[0])  # noqa: F821
files = sorted(corpus.rglob("*.txt")) if corpus.is_dir() else [corpus]
if not files:
    raise ValueError(f"{corpus}: no .txt files in the frequency corpus (study.frequency_corpus)")
counts = corpus_word_counts(files)
atomic_write_text(snakemake.output[0], counts.reset_index().to_csv(index=False))  # noqa: F821
log.info("%d files, %d words, %d distinct", len(files), int(counts.sum()), len(counts))
