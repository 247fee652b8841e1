"""book.data: round trips, schema checks, merge refusal, publishing."""

import json

import numpy as np
import pytest

from book import data
from book.timing import BenchResult

META = {"cpu_model": "CPU A", "machine": "x86_64", "logical_cpus": 2, "python": "3.11", "numpy": "2.4",
        "numba": "0.68", "blas": "openblas", "quick": False}


def run(kernel="k", n=10, times=(1.0, 2.0, 3.0), meta=META):
    return BenchResult([{"kernel": kernel, "n": n, "loops": 1, "times_s": list(times),
                         "first_call_s": 5.0, "compile_s": 4.0}], dict(meta))


def test_round_trip_keeps_records_meta_and_provenance(tmp_path):
    records = [{"kernel": "k", "n": np.int64(10), "times_s": np.array([1.0, 2.0]), "gbps": np.float32(1.5)}]
    target = data.save(tmp_path / "sub" / "x.json", records, META, command="make data")
    loaded = data.load(target)
    assert loaded.records == [{"kernel": "k", "n": 10, "times_s": [1.0, 2.0], "gbps": 1.5}]
    assert loaded.meta == META
    assert loaded.provenance["command"] == "make data" and "saved_utc" in loaded.provenance
    assert json.loads(target.read_text())["schema_version"] == data.SCHEMA_VERSION
    assert list(loaded.to_frame().columns) == ["kernel", "n", "times_s", "gbps"]


def test_bench_result_save_and_reload(tmp_path):
    original = run()
    original.save(tmp_path / "r.json", command="test")
    again = data.load(tmp_path / "r.json").bench()
    assert again.to_frame().equals(original.to_frame())


def test_save_validates_its_input(tmp_path):
    with pytest.raises(TypeError, match="list of dicts"):
        data.save(tmp_path / "x.json", {"a": 1}, META)
    with pytest.raises(ValueError, match="hardware card"):
        data.save(tmp_path / "x.json", [], {"cpu": "?"})
    with pytest.raises(TypeError, match="cannot store object"):
        data.save(tmp_path / "x.json", [{"x": object()}], META)


def test_load_rejects_other_schemas(tmp_path):
    target = tmp_path / "old.json"
    target.write_text(json.dumps({"schema_version": 0, "meta": {}, "records": []}))
    with pytest.raises(ValueError, match="schema_version 0, expected 1"):
        data.load(target)
    target.write_text(json.dumps({"schema_version": 1, "records": []}))
    with pytest.raises(ValueError, match=r"missing \['meta'\]"):
        data.load(target)


def test_merge_pools_repeats_from_the_same_machine():
    merged = data.merge(run(times=(1.0, 2.0)), run(times=(3.0,)), run(kernel="other"))
    frame = merged.to_frame().set_index("kernel")
    assert frame.loc["k", "repeats"] == 3 and frame.loc["k", "median_s"] == 2.0
    assert frame.loc["other", "repeats"] == 3


def test_merge_refuses_other_machines_and_names_the_fields():
    other = dict(META, cpu_model="CPU B", numpy="2.3")
    with pytest.raises(data.MetadataMismatch, match="cpu_model: 'CPU A' vs 'CPU B'; numpy: '2.4' vs '2.3'"):
        data.merge(run(), run(meta=other))
    with pytest.raises(data.MetadataMismatch, match="quick"):
        data.merge(run(), run(meta=dict(META, quick=True)))


def test_publish_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    monkeypatch.delenv("BOOK_PUBLISH", raising=False)
    assert data.publish(run(), "x/y.json", source="chapters/p.md") is None
    assert not (tmp_path / "x").exists()
    monkeypatch.setenv("BOOK_PUBLISH", "1")
    written = data.publish(run(), "x/y.json", source="chapters/p.md")
    assert data.load(written).provenance["source"] == "chapters/p.md"
    with pytest.raises(ValueError, match="quick-mode"):
        data.publish(run(meta=dict(META, quick=True)), "x/z.json", source="chapters/p.md")
