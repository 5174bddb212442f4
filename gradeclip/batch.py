"""Explanation jobs in shards, for the workflow: many (image, texts) pairs in, one compact file per shard out
(the job lists themselves and their shards: ``gradeclip.jobs``).

Image maps are stored at patch-grid resolution (small) with what is needed to put them back on the image's pixels
(the registration box and the original size), in one ``.npz`` of flat arrays (no pickled objects):

    image_id, text            (n,) str      one row per (image, text) pair
    score, model_score        (n,) float32  explained (recomputed network) and the model's own cosine
    grid_shape                (n, 2) int    (h, w) of each grid
    grid_offset               (n + 1,) int  row i's grid is grid_values[grid_offset[i]:grid_offset[i + 1]]
    grid_values               (sum h*w,) float32
    box, image_size           (n, 4) float, (n, 2) int   ``geometry.Registration`` of each row

Word importances are written as CSV rows (caption_id, image_id, text, word_index, word, is_word, importance,
score, model_score): raw importances, so any normalisation can be applied downstream.

Files are written under a temporary name and renamed at the end: a shard file that exists is complete. Images that
cannot be read are reported in a ``<shard>.failures.tsv`` beside the output, and the shard goes on with the rest.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .files import atomic_path, atomic_write
from .geometry import Registration
from .io import ImageLoadError, load_image
from .jobs import ImageJob, TextJob

TEXT_COLUMNS = ["caption_id", "image_id", "text", "word_index", "word", "is_word", "importance", "score",
                "model_score"]


@dataclass(frozen=True)
class StoredMap:
    image_id: str
    text: str
    grid: np.ndarray
    score: float
    model_score: float
    registration: Registration


def _write_failures(out: Path, failures: list[tuple[str, str]]) -> None:
    report = out.with_name(out.name + ".failures.tsv")
    if failures:
        atomic_write(report, lambda tmp: tmp.write_text("".join(f"{i}\t{msg}\n" for i, msg in failures)))
    else:
        report.unlink(missing_ok=True)


def explain_image_jobs(explainer, jobs: Iterable[ImageJob], out: str | os.PathLike, progress=None) -> int:
    """Explain each job's image against its texts and write one shard ``.npz``; returns the number of rows."""
    out = Path(out)
    rows: dict[str, list] = {k: [] for k in ("image_id", "text", "score", "model_score", "grid_shape", "grid",
                                               "box", "image_size")}
    failures = []
    for job in (progress(jobs) if progress else jobs):
        try:
            maps = explainer(load_image(job.path), list(job.texts))
        except (ImageLoadError, ValueError) as err:
            failures.append((job.image_id, str(err)))
            continue
        for m in maps:
            rows["image_id"].append(job.image_id)
            rows["text"].append(m.text)
            rows["score"].append(m.score)
            rows["model_score"].append(m.model_score)
            rows["grid_shape"].append(m.grid.shape)
            rows["grid"].append(np.asarray(m.grid, dtype=np.float32).ravel())
            rows["box"].append(m.registration.box)
            rows["image_size"].append(m.registration.image_size)
    sizes = [g.size for g in rows["grid"]]
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f, image_id=np.asarray(rows["image_id"], dtype=str), text=np.asarray(rows["text"], dtype=str),
            score=np.asarray(rows["score"], dtype=np.float32),
            model_score=np.asarray(rows["model_score"], dtype=np.float32),
            grid_shape=np.asarray(rows["grid_shape"], dtype=np.int32).reshape(-1, 2),
            grid_offset=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            grid_values=np.concatenate(rows["grid"]) if sizes else np.zeros(0, np.float32),
            box=np.asarray(rows["box"], dtype=np.float64).reshape(-1, 4),
            image_size=np.asarray(rows["image_size"], dtype=np.int64).reshape(-1, 2))
    _write_failures(out, failures)
    return len(rows["text"])


def read_image_maps(path: str | os.PathLike) -> Iterator[StoredMap]:
    """The rows of an image-map shard written by ``explain_image_jobs``."""
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    for i in range(len(data["text"])):
        a, b = data["grid_offset"][i], data["grid_offset"][i + 1]
        h, w = data["grid_shape"][i]
        yield StoredMap(str(data["image_id"][i]), str(data["text"][i]), data["grid_values"][a:b].reshape(h, w),
                        float(data["score"][i]), float(data["model_score"][i]),
                        Registration(tuple(int(v) for v in data["image_size"][i]),
                                     tuple(float(v) for v in data["box"][i])))


def explain_text_jobs(explainer, jobs: Iterable[TextJob], out: str | os.PathLike, batch_size: int = 32,
                      progress=None) -> int:
    """Word importances of each caption against its own image, written as CSV rows; returns the number of
    captions explained. Captions are processed in batches and written as they come (memory stays flat)."""
    out = Path(out)
    failures = []
    done = 0
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TEXT_COLUMNS)
        batch: list[tuple[TextJob, object]] = []

        def flush():
            nonlocal done
            if not batch:
                return
            try:
                results = explainer.explain_text_pairs([j.text for j, _ in batch], [im for _, im in batch])
            except ValueError:  # one bad caption (e.g. empty): explain the batch one by one
                results = []
                for j, im in batch:
                    try:
                        results.append(explainer.explain_text_pairs([j.text], [im])[0])
                    except ValueError as one_err:
                        failures.append((j.caption_id, str(one_err)))
                        results.append(None)
            for (job, _), res in zip(batch, results):
                if res is None:
                    continue
                for k, (word, value) in enumerate(zip(res.words, res.word_scores)):
                    writer.writerow([job.caption_id, job.image_id, job.text, k, word.text, int(word.is_word),
                                     f"{value:.6g}", f"{res.score:.6f}", f"{res.model_score:.6f}"])
                done += 1
            batch.clear()

        images: dict[str, object] = {}
        for job in (progress(jobs) if progress else jobs):
            if job.image_id not in images:
                if len(images) > 4 * batch_size:  # keep only recent images: captions of one image are adjacent
                    images.clear()
                try:
                    images[job.image_id] = load_image(job.path)
                except ImageLoadError as err:
                    images[job.image_id] = err
            image = images[job.image_id]
            if isinstance(image, ImageLoadError):
                failures.append((job.caption_id, str(image)))
                continue
            batch.append((job, image))
            if len(batch) >= batch_size:
                flush()
        flush()
    _write_failures(out, failures)
    return done
