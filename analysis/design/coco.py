"""The §V-A and §V-C study design on COCO with Karpathy's captions: adjective+noun and verb+noun triplets selected
from the captions (``select_coco_triplets``), their reviewable manifest with its stamp, and ``coco_design``. See
``analysis.design`` for the tables it fills."""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradeclip.datasets import karpathy_image_path, load_coco_categories, seeded_order, study_coco_images
from gradeclip.downloads import file_digest
from gradeclip.files import atomic_write_text

from ..addibility import DESIGN_COLUMNS as ADDIBILITY_COLUMNS
from . import ATTRIBUTE_COLUMNS, CAPTION_COLUMNS, IMAGE_COLUMNS, StudyDesign, design_frame, keyed_rng
from ..tables import read_table, write_table
from .word_classes import DETERMINERS, PREPOSITIONS, WordClasses, caption_tokens


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
            rng = keyed_rng(seed, int(i) if i.isdigit() else i, group)
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
    return write_table(design_frame(table, MANIFEST_COLUMNS)[list(MANIFEST_COLUMNS)], Path(path))


def read_triplet_manifest(path: str | os.PathLike, require_reviewed: bool = False) -> pd.DataFrame:
    """Read a manifest written by :func:`write_triplet_manifest` (possibly hand-edited); checks columns and
    groups, and with ``require_reviewed`` that every row is marked reviewed."""
    df = read_table(path)
    missing = set(ADDIBILITY_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    df = design_frame(df, MANIFEST_COLUMNS)
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
