"""Measurements with provenance: the book's one result type and its files under ``data/``.

A :class:`BenchResult` holds raw records and the hardware card of the machine
that made them; :func:`book.timing.bench` returns one and :func:`load` reads
one back. A data file is one JSON document: ``schema_version``, the card
(``meta``), how it was made (``provenance``: the command, the page, when) and
the ``records``. Runs from different machines or software are never merged
into one; they may only be overlaid, each with its own card.
"""

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from book import plots
from book.hardware import key_differences
from book.units import format_seconds

SCHEMA_VERSION = 1
PUBLISH_ENV = "BOOK_PUBLISH"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class MetadataMismatch(ValueError):
    """Runs whose key hardware/software metadata differ cannot be merged."""


def summarize(times_s):
    """Median and median absolute deviation of a sample of times.

    The median ignores the rare slow outliers a shared machine produces (an
    interrupt, another process), which drag the mean; unlike the minimum it
    describes a typical run rather than a lucky one. The MAD is the matching
    robust spread (unscaled: half the samples lie within median ± MAD).
    """
    times = np.asarray(times_s, dtype=float)
    if times.size == 0:
        raise ValueError("cannot summarize an empty list of times")
    median = float(np.median(times))
    return median, float(np.median(np.abs(times - median)))


@dataclass
class BenchResult:
    """Measurement records with the hardware card of the machine that made them.

    Timing records (from :func:`book.timing.bench`) carry ``kernel``, ``n``,
    ``loops``, every raw repeat in ``times_s``, ``first_call_s`` and
    ``compile_s``, plus any fields a page adds (``bytes_per_call``,
    ``stride``, ...). Records derived from timings (a page's roofline
    ceilings, say) are any flat dicts.
    """

    records: list
    meta: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def kernels(self):
        return list(dict.fromkeys(r["kernel"] for r in self.records))

    @property
    def sizes(self):
        return sorted({r["n"] for r in self.records})

    def _timing_records(self):
        untimed = [i for i, r in enumerate(self.records) if "times_s" not in r]
        if untimed:
            raise ValueError(f"records {untimed[:5]} have no times_s: this result holds no timings")
        return self.records

    def to_frame(self):
        """One row per record. Timing records get ``median_s``, ``mad_s``, ``min_s`` and
        ``repeats`` in place of the raw ``times_s``; other fields are kept as they are."""
        if not self.records or any("times_s" not in r for r in self.records):
            return pd.DataFrame(self.records)
        rows = []
        for r in self.records:
            median, mad = summarize(r["times_s"])
            extra = {key: value for key, value in r.items() if key != "times_s"}
            rows.append({"kernel": r["kernel"], "n": r["n"], "median_s": median, "mad_s": mad,
                         "min_s": min(r["times_s"]), "repeats": len(r["times_s"])} | extra)
        return pd.DataFrame(rows)

    def table(self):
        """:meth:`to_frame` for reading: indexed by (kernel, n), times in readable units."""
        frame = self.to_frame()
        readable = pd.DataFrame(index=pd.MultiIndex.from_frame(frame[["kernel", "n"]]))
        for column, label in (("median_s", "median"), ("mad_s", "± MAD"),
                              ("first_call_s", "first call"), ("compile_s", "compile")):
            readable[label] = frame[column].map(format_seconds).to_numpy()
        readable["repeats × loops"] = [f"{r} × {loops:,}" for r, loops in zip(frame.repeats, frame.loops)]
        return readable

    def raw_frame(self):
        """One row per repeat: ``kernel``, ``n``, ``repeat``, ``time_s``."""
        return pd.DataFrame([{"kernel": r["kernel"], "n": r["n"], "repeat": i, "time_s": t}
                             for r in self._timing_records() for i, t in enumerate(r["times_s"])])

    def median(self, kernel, n):
        """Median time in seconds of one kernel at one size."""
        for r in self._timing_records():
            if r["kernel"] == kernel and r["n"] == n:
                return summarize(r["times_s"])[0]
        raise KeyError(f"no measurement of kernel {kernel!r} at n={n}; "
                       f"kernels {self.kernels}, sizes {self.sizes}")

    def speedup(self, baseline):
        """Table of ``median(baseline) / median(kernel)``: rows are sizes, columns kernels."""
        if baseline not in self.kernels:
            raise KeyError(f"baseline {baseline!r} is not one of the kernels {self.kernels}")
        table = self.to_frame().pivot(index="n", columns="kernel", values="median_s")[self.kernels]
        return table.rdiv(table[baseline], axis=0)

    def select(self, **fields):
        """The records whose fields equal the given values, as a result with the same card."""
        return BenchResult([r for r in self.records if all(r.get(k) == v for k, v in fields.items())],
                           self.meta, self.provenance)

    def plot(self, **options):
        """Interactive log-log latency plot with MAD error bars (see :func:`book.plots.latency`)."""
        return plots.latency(self, **options)

    def save(self, target, **provenance):
        """Write the records and the hardware card to a JSON data file (see :func:`save`)."""
        return save(target, self, **provenance)


def path(*parts):
    """Path of a file under the book's ``data/`` folder, e.g. ``path("ch01", "scaling.json")``."""
    return DATA_DIR.joinpath(*parts)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a data file: {value!r}")


def save(target, result, **provenance):
    """Write a result's records and hardware card to a JSON data file.

    Parameters
    ----------
    target : str or Path
        File to write (folders are created).
    result : BenchResult
        The measurements; numpy scalars and arrays in records are converted.
    **provenance
        How the data was made, e.g. ``command="make data"``.

    Returns
    -------
    Path
    """
    if not isinstance(result, BenchResult):
        raise TypeError(f"save() needs a BenchResult, got {type(result).__name__}")
    if not isinstance(result.records, list) or not all(isinstance(r, dict) for r in result.records):
        raise TypeError("records must be a list of dicts (one per measurement)")
    if not isinstance(result.meta, dict) or "cpu_model" not in result.meta:
        raise ValueError("meta must be a hardware card from book.hardware.collect_metadata()")
    provenance = result.provenance | provenance
    provenance.setdefault("saved_utc", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    document = {"schema_version": SCHEMA_VERSION, "meta": result.meta, "provenance": provenance,
                "records": result.records}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=1, default=_plain) + "\n")
    return target


def load(source):
    """Read a data file written by :func:`save` as a :class:`BenchResult`.

    Raises a ``ValueError`` naming the file when it is not a data file of a
    schema version this book understands.
    """
    source = Path(source)
    document = json.loads(source.read_text())
    version = document.get("schema_version") if isinstance(document, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(f"{source}: schema_version {version!r}, expected {SCHEMA_VERSION}; "
                         "regenerate it with the page that made it (make data)")
    missing = {"meta", "records"} - document.keys()
    if missing:
        raise ValueError(f"{source}: missing {sorted(missing)}")
    return BenchResult(document["records"], document["meta"], document.get("provenance", {}))


def merge(*runs):
    """Pool several runs made on the same machine and software into one :class:`BenchResult`.

    Repeats of the same (kernel, n) are pooled. Raises
    :class:`MetadataMismatch` naming every key field that differs
    (CPU model, core count, library versions, BLAS, quick mode).
    """
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
        for record in run._timing_records():
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
    result : BenchResult
    name : str
        Path under ``data/``, e.g. ``"harness/sum_scaling.json"``.
    source : str
        The page that made it, e.g. ``"chapters/measuring_honestly.md"``.
    """
    if os.environ.get(PUBLISH_ENV) != "1":
        return None
    if result.meta.get("quick"):
        raise ValueError(f"refusing to publish {name} from a quick-mode run; unset BOOK_QUICK")
    return save(path(name), result, source=source,
                command=f"make data  (executes {source} with {PUBLISH_ENV}=1)", **provenance)
