"""What the §V study explains, built reproducibly from data: the texts per image and the job lists.

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

Reproducibility: every random choice is drawn from ``numpy.random.default_rng([seed, key])`` with a key of the
image itself, so the design of one image does not depend on which other images are in the run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from gradeclip.datasets import (karpathy_image_path, load_coco_categories, load_karpathy, seeded_order,
                                study_clevr_scenes, study_coco_images)
from gradeclip.files import atomic_write, atomic_write_text
from gradeclip.jobs import IMAGE_JOB_COLUMNS, TEXT_JOB_COLUMNS, join_texts, unwritable_text

from .addibility import DESIGN_COLUMNS as ADDIBILITY_COLUMNS
from .attributes import CATEGORY_ORDER

ATTRIBUTE_COLUMNS = ("image_id", "category", "text", "object_id", "variant", "resolves_to", "unique")
CAPTION_COLUMNS = ("caption_id", "image_id", "text")
IMAGE_COLUMNS = ("image_id", "path", "mask_path", "n_objects", "source")
LOCATION_ABLATION = "location_ablation"
#: Adjective kinds of the scene addibility design (CLEVR attribute categories that are adjectives).
SCENE_ADJECTIVE_KINDS = ("color", "material", "size")
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


# ------------------------------------------------------------------------------------------- files
def write_table(df: pd.DataFrame, path: str | os.PathLike, index: bool = False) -> Path:
    """Write ``df`` atomically as TSV (``.tsv``), CSV (``.csv``) or Parquet (``.parquet``), by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=index))
    if suffix not in (".tsv", ".csv"):
        raise ValueError(f"{path}: unknown table format {suffix!r} (use .tsv, .csv or .parquet)")
    text = df.to_csv(sep="\t" if suffix == ".tsv" else ",", index=index, lineterminator="\n",
                     quoting=csv.QUOTE_MINIMAL)
    return atomic_write_text(path, text)


#: Columns always read back as strings (never numbers or NaN): ids and texts ("NA" is a word, "007" an id).
STRING_COLUMNS = frozenset({
    "image_id", "caption_id", "text", "texts", "path", "mask_path", "word", "category", "variant", "resolves_to",
    "group", "base", "matched", "mismatched", "matched_phrase", "mismatched_phrase", "connector", "source_caption",
    "source", "kind", "target", "phrase", "phrase_type", "method",
})


def _convert_column(s: pd.Series) -> pd.Series:
    values = set(s.unique())
    if values <= {"True", "False"} and values:
        return s == "True"
    try:
        return pd.to_numeric(s.replace("", np.nan))
    except (ValueError, TypeError):
        return s


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_table`.

    Columns in :data:`STRING_COLUMNS` stay strings exactly as written (an empty cell is ``""``); other columns
    become booleans ("True"/"False"), numbers (an empty cell is NaN) or, failing both, strings.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix not in (".tsv", ".csv"):
        raise ValueError(f"{path}: unknown table format {suffix!r} (use .tsv, .csv or .parquet)")
    df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    for c in df.columns:
        if c not in STRING_COLUMNS:
            df[c] = _convert_column(df[c])
    return df


# ------------------------------------------------------------------------------------------ design
def _frame(rows: Sequence[Mapping] | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
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
        self.attributes = _frame(self.attributes, ATTRIBUTE_COLUMNS)
        self.addibility = _frame(self.addibility, ADDIBILITY_COLUMNS)
        self.captions = _frame(self.captions, CAPTION_COLUMNS)
        self.images = _frame(self.images, IMAGE_COLUMNS)
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


# ------------------------------------------------------------------------------------ scenes (CLEVR)
def _scenes(scenes_doc) -> list[dict]:
    if isinstance(scenes_doc, (str, os.PathLike)):
        from gradeclip.clevr import read_scenes

        scenes_doc = read_scenes(scenes_doc)
    if isinstance(scenes_doc, Mapping):
        return list(scenes_doc["scenes"])
    return list(scenes_doc)


def scene_image_id(scene: Mapping) -> str:
    """A scene's image id: its file name without suffix (``TOY_val_000007``, ``CLEVR_val_000123``)."""
    return Path(scene["image_filename"]).stem


def _rng(seed: int, *key) -> np.random.Generator:
    """A generator for one decision, keyed by the seed and stable identifiers (ints or strings; strings enter
    through SHA-256, not Python's salted ``hash``)."""
    ints = [int(seed)]
    for k in key:
        if isinstance(k, (int, np.integer)):
            ints.append(int(k))
        else:
            ints.append(int.from_bytes(hashlib.sha256(str(k).encode("utf-8")).digest()[:8], "little"))
    return np.random.default_rng(ints)


def scene_attribute_rows(scene: Mapping, categories: Sequence[str] = CATEGORY_ORDER,
                         location_ablation: bool = True) -> list[dict]:
    """§V-B rows of one scene (see the module docstring): single-category unique referring expressions, and
    for each location expression its Appendix-B ablation texts."""
    from gradeclip.toyworld.captions import (LOCATION_WORDS, resolve_referring_expression,
                                             unique_referring_expressions)

    image_id = scene_image_id(scene)

    def row(category, text, k, variant):
        sel = resolve_referring_expression(scene, text)
        return {"image_id": image_id, "category": category, "text": text, "object_id": int(k),
                "variant": variant, "resolves_to": ",".join(map(str, sel)), "unique": sel == [k]}

    rows = []
    for ex in unique_referring_expressions(scene, tuple(categories)):
        if ex.category == "location":
            rows.append(row("location", ex.text, ex.object_index, "location+shape"))
            if location_ablation:
                side, shape = ex.text.split()
                if side not in LOCATION_WORDS:  # pragma: no cover - guarded by captions.referring_expression
                    raise AssertionError(f"unexpected location expression {ex.text!r}")
                rows.append(row(LOCATION_ABLATION, shape, ex.object_index, "shape"))
                rows.append(row(LOCATION_ABLATION, side, ex.object_index, "location"))
        else:
            rows.append(row(ex.category, ex.text, ex.object_index, ""))
    return rows


def scene_addibility_row(scene: Mapping, seed: int = 0,
                         kinds: Sequence[str] = SCENE_ADJECTIVE_KINDS) -> dict | None:
    """§V-A triplet of one scene: seeded object → base = its shape, matched = its word of a seeded adjective
    kind, mismatched = a seeded word of that kind worn by no object of the scene. None when no object has a
    kind with an absent word (e.g. one object of every colour, size and material — not possible with ≤ 5
    objects and CLEVR's 8 colours, but checked)."""
    from gradeclip.toyworld.vocabulary import ATTRIBUTE_VALUES

    objects = scene["objects"]
    if not objects:
        return None
    rng = _rng(seed, "addibility", scene_image_id(scene))
    present = {kind: {o[kind] for o in objects} for kind in kinds}
    absent = {kind: [v for v in ATTRIBUTE_VALUES[kind] if v not in present[kind]] for kind in kinds}
    feasible = [kind for kind in kinds if absent[kind]]
    if not feasible:
        return None
    k = int(rng.integers(len(objects)))
    kind = feasible[int(rng.integers(len(feasible)))]
    obj = objects[k]
    base, matched = obj["shape"], obj[kind]
    mismatched = absent[kind][int(rng.integers(len(absent[kind])))]
    return {"image_id": scene_image_id(scene), "group": "adj+noun", "base": base, "matched": matched,
            "mismatched": mismatched, "matched_phrase": f"{matched} {base}",
            "mismatched_phrase": f"{mismatched} {base}", "object_id": k, "kind": kind}


def scene_caption_rows(scene: Mapping, object_captions: bool = True, scene_caption: bool = True) -> list[dict]:
    """§V-C captions of one scene from the toy world's templates: the full scene caption (``<id>:scene``) and
    one full description per object (``<id>:obj<k>``)."""
    from gradeclip.toyworld.captions import object_caption, scene_caption as _scene_caption

    image_id = scene_image_id(scene)
    rows = []
    if scene_caption and scene["objects"]:
        rows.append({"caption_id": f"{image_id}:scene", "image_id": image_id, "text": _scene_caption(scene).text})
    if object_captions:
        for k in range(len(scene["objects"])):
            rows.append({"caption_id": f"{image_id}:obj{k}", "image_id": image_id,
                         "text": object_caption(scene, k).text})
    return rows


def scene_design(scenes: Iterable[Mapping], image_path_of: Callable[[Mapping], os.PathLike | str],
                 mask_path_of: Callable[[Mapping], os.PathLike | str] | None, *, seed: int = 0,
                 attributes: bool = True, addibility: bool = True, captions: bool = True,
                 source: str = "scenes", params: Mapping | None = None) -> StudyDesign:
    """The design for CLEVR-schema scenes (toy world or real CLEVR); see :func:`toy_design`, :func:`clevr_design`."""
    scenes = list(scenes)
    attr_rows, add_rows, cap_rows, image_rows, notes = [], [], [], [], []
    skipped_add = []
    for scene in scenes:
        image_id = scene_image_id(scene)
        image_rows.append({"image_id": image_id, "path": str(image_path_of(scene)),
                           "mask_path": str(mask_path_of(scene)) if mask_path_of else "",
                           "n_objects": len(scene["objects"]), "source": source})
        if attributes:
            attr_rows += scene_attribute_rows(scene)
        if addibility:
            r = scene_addibility_row(scene, seed)
            if r is None:
                skipped_add.append(image_id)
            else:
                add_rows.append(r)
        if captions:
            cap_rows += scene_caption_rows(scene)
    if addibility:
        notes.append("§V-A: adjective+noun group only — the scene captions are built from articles, attribute "
                     "words and spatial prepositions and contain no verbs, so there is no verb+noun group.")
        notes.append("§V-A: base = the shape noun of one seeded object; matched = its own color, material or "
                     "size word (seeded kind); mismatched = a word of the same kind that no object of the scene "
                     "has.")
        if skipped_add:
            notes.append(f"§V-A: {len(skipped_add)} scene(s) without a possible mismatched adjective were left "
                         f"out: {', '.join(skipped_add[:10])}")
    if attributes:
        notes.append("§V-B: one unique referring expression per (object, single attribute category); size and "
                     "location expressions carry the shape noun ('small cube', 'left sphere') because the "
                     "category alone names no object. Appendix-B ablation rows (category location_ablation) "
                     "use the shape noun and the location word alone for the same object; they need not be "
                     "unique (column unique).")
    design = StudyDesign(pd.DataFrame(attr_rows, columns=list(ATTRIBUTE_COLUMNS)),
                         pd.DataFrame(add_rows), pd.DataFrame(cap_rows, columns=list(CAPTION_COLUMNS)),
                         pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS)), notes,
                         {"source": source, "seed": seed, "n_images": len(scenes), **dict(params or {})})
    return design


def toy_design(scenes_doc, dataset_dir: str | os.PathLike, max_images: int | None = None, *,
               seed: int = 0) -> StudyDesign:
    """The study design for a toy-world dataset written by ``gradeclip.toyworld.write_dataset``.

    scenes_doc: the scenes document (dict), a list of scene dicts, or the path of the scenes JSON.
    dataset_dir: the dataset's root (``images/<split>/``, ``masks/<split>/``); image and mask paths are built
    under it with ``gradeclip.toyworld.dataset.image_path`` / ``mask_path``.
    max_images: use the first ``max_images`` scenes (file order) only.
    """
    from gradeclip.toyworld.dataset import image_path, mask_path

    scenes = _scenes(scenes_doc)[:max_images]
    return scene_design(scenes, lambda s: image_path(dataset_dir, s), lambda s: mask_path(dataset_dir, s),
                        seed=seed, source="toyworld",
                        params={"dataset_dir": str(dataset_dir), "max_images": max_images})


def clevr_design(scenes_doc, images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
                 n_images: int | None = 50, seed: int = 0, *, addibility: bool = False,
                 captions: bool = False) -> StudyDesign:
    """The §V-B design for real CLEVR: ``n_images`` scenes sampled with ``seed`` (paper: 50 of val).

    images_dir: CLEVR's ``images`` folder (``<split>/<image_filename>`` below it); masks_dir: the SAM masks
    folder (``gradeclip.sam_masks.mask_path``). The §V-A and §V-C parts are off by default (the paper uses
    COCO for them).
    """
    from gradeclip.sam_masks import mask_path

    scenes = study_clevr_scenes(_scenes(scenes_doc), n_images, seed)
    return scene_design(scenes, lambda s: Path(images_dir) / s["split"] / s["image_filename"],
                        lambda s: mask_path(masks_dir, s["image_filename"]), seed=seed, attributes=True,
                        addibility=addibility, captions=captions, source="clevr",
                        params={"images_dir": str(images_dir), "masks_dir": str(masks_dir),
                                "n_images_requested": n_images})


# --------------------------------------------------------------------------------------------- COCO
#: Words never taken as the matched/mismatched adjective: determiners, quantifiers and numbers (WordNet lists
#: "two", "many", "other" … as adjectives, but they do not describe the object).
ADJECTIVE_STOPWORDS = frozenset("""
a an the this that these those each every all both no some any another other others such only same own
many much more most few fewer several enough various numerous multiple lots lot single double couple pair
one two three four five six seven eight nine ten eleven twelve dozen hundred thousand first second third
last next previous top bottom front back left right middle center near far there here very
""".split())
#: Auxiliaries and light verbs never taken as the matched/mismatched verb.
VERB_STOPWORDS = frozenset("be is are was were been being am have has had having do does did doing get gets "
                           "got getting can could will would shall should may might must let lets".split())
#: Words allowed between a verb and its object noun ("feeding the sheep", "standing on skis").
DETERMINERS = frozenset("a an the some two three four several many his her their its this that these those "
                        "one another other".split())
PREPOSITIONS = frozenset("on in at with by from into onto over under near behind beside across along through "
                         "around up down off to of for".split())
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")


def caption_tokens(sentence: Mapping | str) -> list[str]:
    """Lower-case word tokens of a Karpathy sentence (its ``tokens``, else the ``raw`` text split)."""
    if isinstance(sentence, Mapping):
        tokens = sentence.get("tokens")
        if tokens:
            return [t.lower() for t in tokens if _TOKEN.fullmatch(t.lower())]
        sentence = sentence.get("raw", "")
    return _TOKEN.findall(str(sentence).lower())


class WordClasses:
    """Part-of-speech decisions for the COCO triplets, from WordNet (nltk, offline via
    :mod:`analysis.wordnet_data`).

    A word counts as an adjective when WordNet's tagged-sense frequency (``Lemma.count()``, SemCor) of its
    adjective reading is at least that of its noun and verb readings (words with no tagged senses: the reading
    with the most synsets); as a verb when it is an inflected form ("feeding", "stands") of a WordNet verb whose
    frequency dominates in the same way. Stop lists remove quantifiers, numbers and auxiliaries.
    Subclass (or pass ``adjectives``/``verbs`` dicts) to use other rules — the tests do.
    """

    def __init__(self, adjectives: Iterable[str] | None = None, verbs: Mapping[str, str] | None = None,
                 nouns: Mapping[str, str] | None = None):
        self._adjectives = None if adjectives is None else frozenset(adjectives)
        self._verbs = None if verbs is None else dict(verbs)
        self._nouns = None if nouns is None else dict(nouns)
        self._wn = None

    @property
    def wn(self):
        if self._wn is None:
            from .wordnet_data import ensure_wordnet

            ensure_wordnet()
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
            self._wn = wordnet
        return self._wn

    @lru_cache(maxsize=None)
    def _profile(self, word: str) -> dict[str, tuple[int, int, str | None]]:
        """``pos → (tagged count, n synsets, lemma)`` for n, v, a (adjectives include satellites)."""
        out = {}
        for pos in ("n", "v", "a"):
            lemma = self.wn.morphy(word, pos)
            synsets = self.wn.synsets(word, pos=pos)
            count = sum(l.count() for s in synsets for l in s.lemmas() if lemma and l.name().lower() == lemma)
            out[pos] = (count, len(synsets), lemma)
        return out

    def _dominant(self, word: str) -> str | None:
        prof = self._profile(word)
        if not any(n for _, n, _ in prof.values()):
            return None
        return max(("a", "v", "n"), key=lambda p: (prof[p][0], prof[p][1]))  # ties: a, then v, then n

    def is_adjective(self, word: str) -> bool:
        if word in ADJECTIVE_STOPWORDS or word in PREPOSITIONS or word in DETERMINERS or not word.isalpha():
            return False
        if self._adjectives is not None:
            return word in self._adjectives
        return self._dominant(word) == "a"

    def verb_lemma(self, word: str) -> str | None:
        """The verb's base form when ``word`` is an inflected verb form ("feeding" → "feed"), else None."""
        if not word.isalpha():
            return None
        if self._verbs is not None:
            lemma = self._verbs.get(word)
        else:
            lemma = self._profile(word)["v"][2]
            if lemma is None or lemma == word or self._dominant(word) != "v":
                return None
        return None if lemma is None or lemma in VERB_STOPWORDS or word in VERB_STOPWORDS else lemma

    def noun_lemma(self, word: str) -> str:
        """Singular form of a noun ("horses" → "horse"); the word itself when WordNet has none."""
        if self._nouns is not None:
            return self._nouns.get(word, word)
        return self.wn.morphy(word, "n") or word


@dataclass(frozen=True)
class _Candidate:
    group: str
    base: str
    matched: str  # adjective, or verb lemma
    connector: str  # words between verb and noun kept in the phrase ("on"); "" for adjectives
    caption: str  # the caption it was found in (for review)

    @property
    def phrase(self) -> str:
        return " ".join(w for w in (self.matched, self.connector, self.base) if w)


def _find(seq: Sequence[str], sub: Sequence[str]) -> list[int]:
    n = len(sub)
    return [i for i in range(len(seq) - n + 1) if list(seq[i:i + n]) == list(sub)]


def _noun_positions(tokens: Sequence[str], name: str, classes: WordClasses) -> list[tuple[int, int]]:
    """(start, end) spans where category ``name`` (one or more words) occurs, last word singular or plural."""
    words = name.lower().split()
    lemmas = [classes.noun_lemma(t) for t in tokens]
    target_last = {words[-1], classes.noun_lemma(words[-1])}
    spans = []
    for i in range(len(tokens) - len(words) + 1):
        if tokens[i:i + len(words) - 1] == words[:-1] and (
                tokens[i + len(words) - 1] in target_last or lemmas[i + len(words) - 1] in target_last):
            spans.append((i, i + len(words)))
    return spans


def triplet_candidates(captions: Sequence[Sequence[str]], categories: Iterable[str], classes: WordClasses,
                       raw: Sequence[str] | None = None, verb_window: int = 3) -> list[_Candidate]:
    """All (group, base, matched word) candidates of one image, from its tokenised captions.

    base: a COCO category of the image that occurs in a caption (last word singular or plural).
    adj+noun: an adjective in the run of pre-modifiers directly before the base ("a young brown horse").
    verb+noun: an inflected verb at most ``verb_window`` tokens before the base with only determiners,
    adjectives and prepositions between; prepositions among them are kept ("standing on skis" → "stand on
    skis").
    """
    raw = list(raw) if raw is not None else [" ".join(t) for t in captions]
    found: dict[tuple, _Candidate] = {}
    for tokens, text in zip(captions, raw):
        tokens = list(tokens)
        for name in categories:
            for start, _ in _noun_positions(tokens, name, classes):
                j = start - 1
                while j >= 0 and classes.is_adjective(tokens[j]):
                    c = _Candidate("adj+noun", name, tokens[j], "", text)
                    found.setdefault((c.group, c.base, c.matched, c.connector), c)
                    j -= 1
                for j in range(start - 1, max(-1, start - 1 - verb_window), -1):
                    lemma = classes.verb_lemma(tokens[j])
                    between = tokens[j + 1:start]
                    if lemma is not None:
                        if all(t in DETERMINERS or t in PREPOSITIONS or classes.is_adjective(t) for t in between):
                            conn = " ".join(t for t in between if t in PREPOSITIONS)
                            c = _Candidate("verb+noun", name, lemma, conn, text)
                            found.setdefault((c.group, c.base, c.matched, c.connector), c)
                        break
                    if not (tokens[j] in DETERMINERS or tokens[j] in PREPOSITIONS or classes.is_adjective(tokens[j])):
                        break
    return sorted(found.values(), key=lambda c: (c.group, c.base, c.matched, c.connector))


def _image_words(captions: Sequence[Sequence[str]], classes: WordClasses) -> set[str]:
    """Every token of an image's captions with its noun and verb lemmas (for "absent from every caption")."""
    words = set()
    for tokens in captions:
        for t in tokens:
            words.add(t)
            words.add(classes.noun_lemma(t))
            v = classes.verb_lemma(t)
            if v:
                words.add(v)
    return words


def coco_captions_table(images: Sequence[Mapping]) -> pd.DataFrame:
    """§V-C captions: ``caption_id`` (Karpathy ``sentid``, else ``<cocoid>_<k>``), ``image_id`` (cocoid),
    ``text`` (the raw caption with whitespace collapsed)."""
    rows = []
    for im in images:
        for k, s in enumerate(im["sentences"]):
            text = " ".join(str(s.get("raw", " ".join(s.get("tokens", [])))).split())
            rows.append({"caption_id": str(s.get("sentid", f"{im['cocoid']}_{k}")), "image_id": str(im["cocoid"]),
                         "text": text})
    return pd.DataFrame(rows, columns=list(CAPTION_COLUMNS))


MANIFEST_COLUMNS = ADDIBILITY_COLUMNS + ("connector", "source_caption", "reviewed")


def select_coco_triplets(images: Sequence[Mapping], categories: Mapping[str, Sequence[str]],
                         n_per_group: int = 30, seed: int = 0, classes: WordClasses | None = None,
                         groups: Sequence[str] = ("adj+noun", "verb+noun")) -> tuple[pd.DataFrame, list[str]]:
    """§V-A triplets from Karpathy captions + COCO instance categories; returns ``(table, notes)``.

    Per image, :func:`triplet_candidates`; a candidate is usable when a mismatched word of the same group
    exists that is absent from every caption of the image (tokens and their lemmas). Mismatched candidates are
    the words of that group seen with the same base noun in other images of the split (plausible phrases,
    "white horse"), else any word of that group seen in the split. Images are visited in a seeded permutation;
    the first ``n_per_group`` usable images go to the first group, the next usable ones (not yet taken) to
    the second — so the groups use different images, as in the paper (30 + 30). Within an image the candidate
    and the mismatched word are drawn with a generator keyed by (seed, cocoid, group).
    """
    classes = classes or WordClasses()
    tok = {str(im["cocoid"]): [caption_tokens(s) for s in im["sentences"]] for im in images}
    raw = {str(im["cocoid"]): [" ".join(str(s.get("raw", "")).split()) for s in im["sentences"]] for im in images}
    cands = {i: triplet_candidates(tok[i], categories.get(i, ()), classes, raw[i]) for i in tok}
    words_of = {i: _image_words(tok[i], classes) for i in tok}
    # pools of mismatched words: group → base → Counter((word, connector)), and group → Counter
    by_base: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    overall: dict[str, Counter] = defaultdict(Counter)
    for i, cs in cands.items():
        for c in cs:
            by_base[c.group][c.base][(c.matched, c.connector)] += 1
            overall[c.group][(c.matched, c.connector)] += 1

    def usable(i: str, group: str) -> list[tuple[_Candidate, list[tuple[str, str]]]]:
        out = []
        for c in cands[i]:
            if c.group != group:
                continue
            for pool in (by_base[group][c.base], overall[group]):
                options = sorted((w, conn) for (w, conn) in pool if w not in words_of[i])
                if options:
                    out.append((c, options))
                    break
        return out

    ids = sorted(tok, key=lambda s: (len(s), s))
    order = [ids[k] for k in seeded_order(len(ids), seed)]
    taken: set[str] = set()
    rows, notes = [], []
    for group in groups:
        got = 0
        for i in order:
            if got >= n_per_group:
                break
            if i in taken:
                continue
            options = usable(i, group)
            if not options:
                continue
            rng = _rng(seed, int(i) if i.isdigit() else i, group)
            cand, mism = options[int(rng.integers(len(options)))]
            word, conn = mism[int(rng.integers(len(mism)))]
            rows.append({"image_id": i, "group": group, "base": cand.base, "matched": cand.matched,
                         "mismatched": word, "matched_phrase": cand.phrase,
                         "mismatched_phrase": " ".join(w for w in (word, conn, cand.base) if w),
                         "connector": cand.connector, "source_caption": cand.caption, "reviewed": False})
            taken.add(i)
            got += 1
        if got < n_per_group:
            msg = f"§V-A: only {got} of {n_per_group} images found for group {group}"
            notes.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    notes.append("§V-A triplets: base = a COCO instance category of the image named in a caption; POS from "
                 "WordNet tagged-sense frequencies; mismatched word of the same group absent from every caption "
                 "of the image; selection seeded (see analysis.design.select_coco_triplets). Review the manifest "
                 "(write_triplet_manifest) before relying on it.")
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), notes


def check_triplets(table: pd.DataFrame, images: Sequence[Mapping], classes: WordClasses | None = None,
                   check_absent: bool = True) -> list[str]:
    """Problems of a triplet table against the captions: unknown images, phrases not containing their words,
    and (``check_absent``) mismatched words that occur in a caption of the image. Empty list = fine."""
    tok = {str(im["cocoid"]): [caption_tokens(s) for s in im["sentences"]] for im in images}
    problems = []
    missing = set(ADDIBILITY_COLUMNS) - set(table.columns)
    if missing:
        return [f"missing columns {sorted(missing)}"]
    if table["image_id"].astype(str).duplicated().any():
        problems.append("image(s) used twice: "
                        + ", ".join(table.loc[table["image_id"].astype(str).duplicated(), "image_id"].astype(str)))
    words_cache: dict[str, set[str]] = {}
    for r in table.itertuples(index=False):
        i = str(r.image_id)
        if i not in tok:
            problems.append(f"{i}: not an image of the captions file/split")
            continue
        for w, ph in ((r.matched, r.matched_phrase), (r.mismatched, r.mismatched_phrase)):
            if w not in str(ph).split() or r.base not in str(ph):
                problems.append(f"{i}: phrase {ph!r} does not contain {w!r} and {r.base!r}")
        if check_absent:
            if i not in words_cache:
                words_cache[i] = _image_words(tok[i], classes or WordClasses())
            if str(r.mismatched) in words_cache[i]:
                problems.append(f"{i}: mismatched word {r.mismatched!r} occurs in a caption of the image")
    return problems


def write_triplet_manifest(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write §V-A triplets as a CSV manifest for review (columns :data:`MANIFEST_COLUMNS`; ``reviewed`` is for
    the reviewer to set to true). Written atomically."""
    return write_table(_frame(table, MANIFEST_COLUMNS)[list(MANIFEST_COLUMNS)], Path(path))


def read_triplet_manifest(path: str | os.PathLike, require_reviewed: bool = False) -> pd.DataFrame:
    """Read a manifest written by :func:`write_triplet_manifest` (possibly hand-edited); checks columns and
    groups, and with ``require_reviewed`` that every row is marked reviewed."""
    df = read_table(path)
    missing = set(ADDIBILITY_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    df = _frame(df, MANIFEST_COLUMNS)
    df["reviewed"] = df["reviewed"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "y", "x"))
    bad = sorted(set(df["group"]) - {"adj+noun", "verb+noun"})
    if bad:
        raise ValueError(f"{path}: unknown group(s) {bad}")
    if require_reviewed and not df["reviewed"].all():
        raise ValueError(f"{path}: {int((~df['reviewed']).sum())} row(s) not marked reviewed")
    df["image_id"] = df["image_id"].astype(str)
    df["connector"] = df["connector"].fillna("").astype(str)
    return df


def triplet_stamp_path(manifest: str | os.PathLike) -> Path:
    """The stamp beside a triplet manifest (``coco_triplets.csv`` → ``coco_triplets.json``)."""
    return Path(manifest).with_suffix(".json")


def coco_triplet_manifest(karpathy_json: str | os.PathLike, instances_json: str | os.PathLike,
                          out: str | os.PathLike, n_per_group: int = 30, seed: int = 0, *,
                          n_images: int | None = None, split: str = "val",
                          classes: WordClasses | None = None) -> tuple[pd.DataFrame, dict]:
    """Select the §V-A triplets (:func:`select_coco_triplets`) from the study's COCO images
    (:func:`gradeclip.datasets.study_coco_images`: ``n_images`` of the Karpathy ``split`` drawn with ``seed``) and
    write them as a manifest (``out``, CSV) with a stamp beside it (:func:`triplet_stamp_path`): the SHA-256 of
    both input files, the selection's arguments, its notes and row counts. Returns ``(table, stamp)``."""
    from gradeclip.downloads import file_digest

    images = study_coco_images(karpathy_json, n_images, seed, split)
    with warnings.catch_warnings():  # a short group is recorded in the notes (and the stamp) instead
        warnings.simplefilter("ignore", RuntimeWarning)
        table, notes = select_coco_triplets(images, load_coco_categories(instances_json), n_per_group, seed,
                                            classes)
    stamp = {"inputs": {name: {"path": str(path), "sha256": file_digest(path, "sha256")}
                        for name, path in (("karpathy_json", karpathy_json), ("instances_json", instances_json))},
             "selection": {"function": "analysis.design.select_coco_triplets", "split": split,
                           "n_images": len(images), "n_per_group": n_per_group, "seed": seed},
             "rows": {str(g): int(n) for g, n in table.groupby("group").size().items()},
             "notes": notes}
    write_triplet_manifest(table, out)
    atomic_write_text(triplet_stamp_path(out), json.dumps(stamp, indent=1) + "\n")
    return table, stamp


def triplet_stamp_notes(manifest: str | os.PathLike, karpathy_json: str | os.PathLike | None = None) -> list[str]:
    """Design notes from the stamp beside a manifest (none when it has no stamp). With ``karpathy_json``, its
    SHA-256 must be the one the triplets were selected from (else ``ValueError``)."""
    path = triplet_stamp_path(manifest)
    if not path.is_file():
        return []
    stamp = json.loads(path.read_text(encoding="utf-8"))
    if karpathy_json is not None:
        from gradeclip.downloads import file_digest

        recorded = stamp["inputs"]["karpathy_json"]["sha256"]
        if file_digest(karpathy_json, "sha256") != recorded:
            raise ValueError(f"{manifest} was selected from a dataset_coco.json with SHA-256 {recorded}, not from "
                             f"{karpathy_json}: select the triplets again")
    sel = stamp["selection"]
    inputs = ", ".join(f"{Path(v['path']).name} (SHA-256 {v['sha256'][:16]}…)" for v in stamp["inputs"].values())
    return [f"§V-A triplets selected by {sel['function']} (seed {sel['seed']}, {sel['n_per_group']} per group, "
            f"from {sel['n_images']} {sel['split']} images) from {inputs}; manifest {Path(manifest).name}.",
            *stamp.get("notes", [])]


def coco_design(karpathy_json: str | os.PathLike, instances_json: str | os.PathLike | None,
                images_dir: str | os.PathLike, n_per_group: int = 30, seed: int = 0, *,
                n_images: int | None = None, split: str = "val", manifest: str | os.PathLike | None = None,
                classes: WordClasses | None = None) -> StudyDesign:
    """The paper's §V-A and §V-C design on COCO (Karpathy split).

    karpathy_json: Karpathy's ``dataset_coco.json``; the ``split`` images (val: 5,000 images, 25,010 captions)
    give the §V-C captions (``n_images`` of them drawn with ``seed`` by
    :func:`gradeclip.datasets.study_coco_images`, if given).
    instances_json: COCO ``instances_val2014.json`` (base nouns = annotated categories). Not needed when a
    ``manifest`` is given (written by :func:`coco_triplet_manifest` or reviewed by hand): its triplets are used
    instead of selecting anew (and checked against the captions: mismatched words must be absent from every
    caption of their image); the notes of its stamp, if any, join the design's notes.
    images_dir: the folder holding Karpathy's ``filepath`` folders (``val2014/``); paths are
    ``images_dir / filepath / filename``.
    """
    images = study_coco_images(karpathy_json, n_images, seed, split)
    classes = classes or WordClasses()
    notes = []
    if manifest is not None:
        triplets = read_triplet_manifest(manifest)
        problems = check_triplets(triplets, images, classes)
        if problems:
            raise ValueError(f"{manifest}: " + "; ".join(problems[:10]))
        notes += triplet_stamp_notes(manifest, karpathy_json)
        notes.append(f"§V-A triplets read from the manifest {manifest} "
                     f"({int(triplets['reviewed'].sum())} of {len(triplets)} rows marked reviewed).")
    else:
        if instances_json is None:
            raise ValueError("coco_design needs instances_json (or a reviewed manifest)")
        triplets, notes = select_coco_triplets(images, load_coco_categories(instances_json), n_per_group, seed,
                                               classes)
    image_rows = [{"image_id": str(im["cocoid"]), "path": str(karpathy_image_path(images_dir, im)),
                   "mask_path": "", "n_objects": np.nan, "source": "coco"} for im in images]
    captions = coco_captions_table(images)
    return StudyDesign(pd.DataFrame(columns=list(ATTRIBUTE_COLUMNS)), triplets, captions,
                       pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS)), notes,
                       {"source": "coco", "karpathy_json": str(karpathy_json), "instances_json": str(instances_json),
                        "images_dir": str(images_dir), "split": split, "n_images": len(images),
                        "n_per_group": n_per_group, "seed": seed,
                        "manifest": str(manifest) if manifest is not None else None})
