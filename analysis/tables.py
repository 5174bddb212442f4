"""The analysis tables on disk: TSV, CSV or Parquet by suffix, written atomically, read back with ids and texts
kept as strings ("NA" is a word, "007" an id)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gradeclip.files import atomic_write, atomic_write_text


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
