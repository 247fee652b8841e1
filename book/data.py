"""Measurements with provenance: the files under ``data/``.

A data file is one JSON document: ``schema_version``, the hardware card
(``meta``), how it was made (``provenance``: the command, the script, when)
and the ``records`` themselves. Runs from different machines or software are
never merged into one; they may only be overlaid, each with its own card.
"""

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from book.hardware import key_differences

SCHEMA_VERSION = 1
PUBLISH_ENV = "BOOK_PUBLISH"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class MetadataMismatch(ValueError):
    """Runs whose key hardware/software metadata differ cannot be merged."""


def path(*parts):
    """Path of a file under the book's ``data/`` folder, e.g. ``path("ch01", "scaling.json")``."""
    return DATA_DIR.joinpath(*parts)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a data file: {value!r}")


@dataclass
class Dataset:
    """Records loaded from a data file, with their hardware card and provenance."""

    records: list
    meta: dict
    provenance: dict = field(default_factory=dict)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)

    def bench(self):
        """The records as a :class:`book.timing.BenchResult` (for timing data)."""
        from book.timing import BenchResult

        return BenchResult(self.records, self.meta)


def save(target, records, meta, **provenance):
    """Write records and their hardware card to a JSON data file.

    Parameters
    ----------
    target : str or Path
        File to write (folders are created).
    records : list of dict
        The measurements; numpy scalars and arrays are converted.
    meta : dict
        The hardware card (:func:`book.hardware.collect_metadata`).
    **provenance
        How the data was made, e.g. ``command="python data/ch01/make.py"``.

    Returns
    -------
    Path
    """
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TypeError("records must be a list of dicts (one per measurement)")
    if not isinstance(meta, dict) or "cpu_model" not in meta:
        raise ValueError("meta must be a hardware card from book.hardware.collect_metadata()")
    provenance.setdefault("saved_utc", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    document = {"schema_version": SCHEMA_VERSION, "meta": meta, "provenance": provenance, "records": records}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=1, default=_plain) + "\n")
    return target


def load(source):
    """Read a data file written by :func:`save`.

    Raises a ``ValueError`` naming the file when it is not a data file of a
    schema version this book understands.
    """
    source = Path(source)
    document = json.loads(source.read_text())
    version = document.get("schema_version") if isinstance(document, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(f"{source}: schema_version {version!r}, expected {SCHEMA_VERSION}; "
                         "regenerate it with the script beside it")
    missing = {"meta", "records"} - document.keys()
    if missing:
        raise ValueError(f"{source}: missing {sorted(missing)}")
    return Dataset(document["records"], document["meta"], document.get("provenance", {}))


def merge(*runs):
    """Pool several runs (BenchResults or Datasets) made on the same machine and software.

    Repeats of the same (kernel, n) are pooled. Raises
    :class:`MetadataMismatch` naming every key field that differs
    (CPU model, core count, library versions, BLAS, quick mode).
    """
    from book.timing import BenchResult

    if not runs:
        raise ValueError("merge() needs at least one run")
    first = runs[0].meta
    for i, run in enumerate(runs[1:], start=1):
        differences = key_differences(first, run.meta)
        if differences:
            detail = "; ".join(f"{key}: {a!r} vs {b!r}" for key, (a, b) in differences.items())
            raise MetadataMismatch(f"run 0 and run {i} were measured on different machines or "
                                   f"software ({detail}); overlay them instead of merging")
    pooled = {}
    for run in runs:
        for record in run.records:
            key = (record["kernel"], record["n"])
            if key in pooled:
                pooled[key]["times_s"] = pooled[key]["times_s"] + list(record["times_s"])
            else:
                pooled[key] = dict(record, times_s=list(record["times_s"]))
    return BenchResult(list(pooled.values()), first)


def publish(result, name, source, **provenance):
    """Save a page's measurement as the book's reference, only when asked to.

    Pages are the scripts behind ``data/``: ``make data`` executes them with
    ``BOOK_PUBLISH=1`` and full sizes, and each call writes ``data/<name>``.
    In every other run (the website build, a reader's kernel) this does
    nothing and returns ``None``, so a reader never overwrites the reference.

    Parameters
    ----------
    result : BenchResult or Dataset
        Anything with ``records`` and ``meta``.
    name : str
        Path under ``data/``, e.g. ``"harness/sum_scaling.json"``.
    source : str
        The page that made it, e.g. ``"chapters/measuring_honestly.md"``.
    """
    if os.environ.get(PUBLISH_ENV) != "1":
        return None
    if result.meta.get("quick"):
        raise ValueError(f"refusing to publish {name} from a quick-mode run; unset BOOK_QUICK")
    return save(path(name), result.records, result.meta, source=source,
                command=f"make data  (executes {source} with {PUBLISH_ENV}=1)", **provenance)
