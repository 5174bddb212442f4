"""Job lists: the files the study design writes and the explanation rules read, and how they are cut into shards.

Two TSV files with a header (written by ``analysis.design``, read back here by ``load_jobs_tsv``):

    image_jobs.tsv   image_id, path, texts     every text one image is explained against, joined by TEXT_SEPARATOR
    text_jobs.tsv    caption_id, image_id, path, text     one caption a row, explained against its image

No torch here: the workflow reads job lists while it plans (shard counts).
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TEXT_SEPARATOR = " || "
IMAGE_JOB_COLUMNS = ("image_id", "path", "texts")
TEXT_JOB_COLUMNS = ("caption_id", "image_id", "path", "text")


@dataclass(frozen=True)
class ImageJob:
    image_id: str
    path: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class TextJob:
    caption_id: str
    image_id: str
    path: str
    text: str


def unwritable_text(text: str, joined: bool) -> bool:
    """Whether ``text`` cannot travel through a job list: empty, a tab or newline (a TSV field), or, for the texts
    joined in one field (``joined``), the separator's ``||``."""
    return not text.strip() or bool(re.search(r"[\t\r\n]", text)) or (joined and TEXT_SEPARATOR.strip() in text)


def join_texts(texts: Iterable[str]) -> str:
    """The ``texts`` field of an image job; raises ValueError naming the texts that could not be split back."""
    texts = list(texts)
    bad = [t for t in texts if unwritable_text(t, joined=True)]
    if bad:
        raise ValueError(f"texts that cannot be written to a job list: {bad[:5]}")
    return TEXT_SEPARATOR.join(texts)


def split_texts(field: str) -> tuple[str, ...]:
    """The texts of an image job's ``texts`` field (inverse of :func:`join_texts`)."""
    return tuple(field.split(TEXT_SEPARATOR))


def load_jobs_tsv(path: str | os.PathLike, kind: str) -> list:
    """Read a job list written by the study design: ``kind`` "image" gives ImageJobs, "text" TextJobs."""
    if kind not in ("image", "text"):
        raise ValueError(f"kind must be 'image' or 'text', got {kind!r}")
    jobs = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if kind == "image":
                jobs.append(ImageJob(row["image_id"], row["path"], split_texts(row["texts"])))
            else:
                jobs.append(TextJob(row["caption_id"], row["image_id"], row["path"], row["text"]))
    return jobs


def _image_ids(jobs: Sequence) -> list[str]:
    return list(dict.fromkeys(job.image_id for job in jobs))


def shard_count(jobs: Sequence, images_per_shard: int) -> int:
    """How many shards a job list makes: its images (not its jobs) ``images_per_shard`` to a shard; one (empty)
    shard for an empty list, so that every step downstream still has its file."""
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be at least 1, got {images_per_shard}")
    return max(1, -(-len(_image_ids(jobs)) // images_per_shard))


def jobs_in_shard(jobs: Sequence, index: int, images_per_shard: int) -> list:
    """The jobs of shard ``index`` (0 .. :func:`shard_count` - 1): shards cut the *images* of the job list (in order
    of first appearance) into runs of ``images_per_shard``, so all texts (or all captions) of an image land in
    one shard."""
    image_ids = _image_ids(jobs)
    chosen = set(image_ids[index * images_per_shard:(index + 1) * images_per_shard])
    return [job for job in jobs if job.image_id in chosen]
