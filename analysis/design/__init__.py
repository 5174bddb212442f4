"""What the §V study explains: the texts per image and the job lists, as one :class:`StudyDesign`.

A :class:`StudyDesign` holds plain tables (pandas DataFrames) — one per analysis — and the two job lists the
explanation step consumes (``gradeclip.jobs.load_jobs_tsv`` reads them back):

``attributes`` (§V-B, Table IX, Appendix B) — ``image_id, category, text, object_id, variant, resolves_to, unique``
    One row per (image, text, named object). ``category`` is one of color / shape / material / size / location
    for the Table IX rows: the scene's *unique* referring expressions built from one attribute category at a time
    (``gradeclip.toyworld.captions.unique_referring_expressions``: "red", "cube", "metal", "small cube",
    "left sphere"). ``object_id`` is the 0-based index of the named object in the scene's ``objects`` list (its
    instance-mask id is ``object_id + 1``). Every "location" row ("left sphere", ``variant`` =
    ``location+shape``) comes with the Appendix-B ablation texts for the same object — the shape alone ("sphere",
    ``variant`` = ``shape``) and the location word alone ("left", ``variant`` = ``location``) — in rows with
    ``category`` = ``location_ablation``. Those texts usually do *not* single the object out (that is the point of
    the ablation): ``resolves_to`` lists the objects a text selects (``resolve_referring_expression``) and
    ``unique`` says whether that is exactly ``object_id``. ``variant`` is empty for the other categories.

``addibility`` (§V-A, Table VIII, Fig. 14) — the columns of :data:`analysis.addibility.DESIGN_COLUMNS`
    (``image_id, group, base, matched, mismatched, matched_phrase, mismatched_phrase``) plus provenance columns.
    Scenes: one seeded object per scene, its shape noun is the base word, the matched adjective is one of its own
    color / material / size words and the mismatched adjective is a word of the same kind worn by no object of
    the scene ("red cube" / "blue cube"). Scene captions contain no verbs, so the scene design has the
    ``adj+noun`` group only. COCO: see :func:`coco_design`.

``captions`` (§V-C) — ``caption_id, image_id, text``: captions whose word importances are explained.

``images`` — ``image_id, path, mask_path, n_objects, source``: where each image (and, for scenes, its
    instance-id mask: 0 background, k + 1 object k) lives.

``image_jobs`` — ``image_id, path, texts``: every distinct text the attribute and addibility analyses need for
    an image, joined by ``" || "``. ``text_jobs`` — ``caption_id, image_id, path, text`` (captions of an image
    adjacent).

``notes`` — human-readable remarks on the design (e.g. "no verb+noun group: scene captions have no verbs"),
``params`` — the arguments that built it (written to ``design.json``).

The designs that fill it live beside this module: ``analysis.design.scenes`` (the toy world and CLEVR),
``analysis.design.coco`` (COCO with Karpathy's captions; part-of-speech decisions in
``analysis.design.word_classes``).

Reproducibility: every random choice is drawn from ``numpy.random.default_rng([seed, key])`` with a key of the
image itself, so the design of one image does not depend on which other images are in the run.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradeclip.files import atomic_write_text
from gradeclip.jobs import IMAGE_JOB_COLUMNS, TEXT_JOB_COLUMNS, join_texts, unwritable_text

from ..addibility import DESIGN_COLUMNS as ADDIBILITY_COLUMNS
from ..tables import read_table, write_table

ATTRIBUTE_COLUMNS = ("image_id", "category", "text", "object_id", "variant", "resolves_to", "unique")
CAPTION_COLUMNS = ("caption_id", "image_id", "text")
IMAGE_COLUMNS = ("image_id", "path", "mask_path", "n_objects", "source")
LOCATION_ABLATION = "location_ablation"
#: File name of each table written by :meth:`StudyDesign.write`.
TABLE_FILES = {
    "attributes": "attributes.tsv",
    "addibility": "addibility.tsv",
    "captions": "captions.tsv",
    "images": "images.tsv",
    "image_jobs": "image_jobs.tsv",
    "text_jobs": "text_jobs.tsv",
}
DESIGN_JSON = "design.json"


def keyed_rng(seed: int, *key) -> np.random.Generator:
    """A generator for one decision, keyed by the seed and stable identifiers (ints or strings; strings enter
    through SHA-256, not Python's salted ``hash``)."""
    ints = [int(seed)]
    for k in key:
        if isinstance(k, (int, np.integer)):
            ints.append(int(k))
        else:
            ints.append(int.from_bytes(hashlib.sha256(str(k).encode("utf-8")).digest()[:8], "little"))
    return np.random.default_rng(ints)


def design_frame(rows: Sequence[Mapping] | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A table with ``columns`` first (missing ones added empty), then any others, in a fresh index."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
    for c in columns:
        if c not in df:
            df[c] = pd.Series(dtype=object)
    return df[list(columns) + [c for c in df.columns if c not in columns]].reset_index(drop=True)


def build_jobs(images: pd.DataFrame, attributes: pd.DataFrame, addibility: pd.DataFrame,
               captions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(image_jobs, text_jobs)`` covering every text of the attribute and addibility tables and every caption.

    Texts of an image keep their first-appearance order (attributes first, then the addibility words and
    phrases) and are deduplicated. Raises if a text contains the separator or a tab/newline (it could not
    travel through the job TSV), or if an image has no row in ``images``.
    """
    paths = dict(zip(images["image_id"].astype(str), images["path"].astype(str)))
    texts: dict[str, dict[str, None]] = {}
    for r in attributes.itertuples(index=False):
        texts.setdefault(str(r.image_id), {})[str(r.text)] = None
    for r in addibility.itertuples(index=False):
        bucket = texts.setdefault(str(r.image_id), {})
        for col in ("base", "matched", "mismatched", "matched_phrase", "mismatched_phrase"):
            bucket[str(getattr(r, col))] = None
    missing = sorted(set(texts) - set(paths))
    if missing:
        raise KeyError(f"no image path for image(s) {missing[:5]}")
    image_jobs = pd.DataFrame([{"image_id": i, "path": paths[i], "texts": join_texts(ts)}
                               for i, ts in texts.items()], columns=list(IMAGE_JOB_COLUMNS))
    missing = sorted(set(captions["image_id"].astype(str)) - set(paths))
    if missing:
        raise KeyError(f"captions of image(s) without a path: {missing[:5]}")
    cap = captions.assign(image_id=captions["image_id"].astype(str))
    bad = cap.loc[cap["text"].astype(str).map(lambda t: unwritable_text(t, joined=False)), "caption_id"].tolist()
    if bad:
        raise ValueError(f"captions with tabs/newlines or empty text: {bad[:5]}")
    order = {i: k for k, i in enumerate(dict.fromkeys(cap["image_id"]))}
    cap = cap.assign(_o=cap["image_id"].map(order)).sort_values("_o", kind="mergesort")
    text_jobs = pd.DataFrame({"caption_id": cap["caption_id"].astype(str).to_numpy(),
                              "image_id": cap["image_id"].to_numpy(),
                              "path": cap["image_id"].map(paths).to_numpy(),
                              "text": cap["text"].astype(str).to_numpy()}, columns=list(TEXT_JOB_COLUMNS))
    if text_jobs["caption_id"].duplicated().any():
        dup = text_jobs.loc[text_jobs["caption_id"].duplicated(), "caption_id"].tolist()
        raise ValueError(f"duplicate caption ids: {dup[:5]}")
    return image_jobs, text_jobs


@dataclass
class StudyDesign:
    """The texts of the §V study per image, and the job lists (see the module docstring for the columns)."""

    attributes: pd.DataFrame
    addibility: pd.DataFrame
    captions: pd.DataFrame
    images: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    image_jobs: pd.DataFrame = field(init=False)
    text_jobs: pd.DataFrame = field(init=False)

    def __post_init__(self):
        self.attributes = design_frame(self.attributes, ATTRIBUTE_COLUMNS)
        self.addibility = design_frame(self.addibility, ADDIBILITY_COLUMNS)
        self.captions = design_frame(self.captions, CAPTION_COLUMNS)
        self.images = design_frame(self.images, IMAGE_COLUMNS)
        for df in (self.attributes, self.addibility, self.captions, self.images):
            df["image_id"] = df["image_id"].astype(str)
        self.captions["caption_id"] = self.captions["caption_id"].astype(str)
        self.image_jobs, self.text_jobs = build_jobs(self.images, self.attributes, self.addibility, self.captions)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLE_FILES}

    def summary(self) -> pd.DataFrame:
        """One row per table: rows and images — for the report's design section."""
        rows = []
        for name, df in self.tables().items():
            rows.append({"table": name, "rows": len(df), "images": df["image_id"].nunique()})
        return pd.DataFrame(rows)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write every table (TSV) and ``design.json`` (notes, params) atomically; returns the paths by name."""
        out = Path(out_dir)
        paths = {name: write_table(df, out / TABLE_FILES[name]) for name, df in self.tables().items()}
        meta = {"notes": self.notes, "params": self.params,
                "counts": {name: len(df) for name, df in self.tables().items()}}
        paths["design"] = atomic_write_text(out / DESIGN_JSON, json.dumps(meta, indent=1, default=str) + "\n")
        return paths

    @classmethod
    def read(cls, out_dir: str | os.PathLike) -> "StudyDesign":
        """Read a design written by :meth:`write` (the job lists are rebuilt and checked against the files)."""
        out = Path(out_dir)
        meta = json.loads((out / DESIGN_JSON).read_text(encoding="utf-8"))
        t = {name: read_table(out / TABLE_FILES[name]) for name in ("attributes", "addibility", "captions", "images")}
        design = cls(t["attributes"], t["addibility"], t["captions"], t["images"], meta.get("notes", []),
                     meta.get("params", {}))
        for name in ("image_jobs", "text_jobs"):
            on_disk = read_table(out / TABLE_FILES[name])
            if not on_disk.astype(str).equals(getattr(design, name).astype(str)):
                raise ValueError(f"{out / TABLE_FILES[name]} does not match the design tables beside it")
        return design

    @classmethod
    def combine(cls, *designs: "StudyDesign") -> "StudyDesign":
        """One design from several (e.g. COCO for §V-A/§V-C and CLEVR for §V-B); image ids must not clash."""
        images = pd.concat([d.images for d in designs], ignore_index=True)
        dup = images["image_id"][images["image_id"].duplicated()].tolist()
        if dup:
            raise ValueError(f"image ids appear in more than one design: {dup[:5]}")
        cat = lambda name: pd.concat([getattr(d, name) for d in designs], ignore_index=True)  # noqa: E731
        return cls(cat("attributes"), cat("addibility"), cat("captions"), images,
                   [n for d in designs for n in d.notes], {"combined": [d.params for d in designs]})
