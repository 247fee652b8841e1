"""book.data: the result type, round trips, schema checks, merge refusal, publishing."""

import json

import numpy as np
import pytest

from book import data
from book.data import BenchResult

META = {"cpu_model": "CPU A", "machine": "x86_64", "logical_cpus": 2, "python": "3.11", "numpy": "2.4",
        "numba": "0.68", "blas": "openblas", "quick": False}


def run(kernel="k", n=10, times=(1.0, 2.0, 3.0), meta=META):
    return BenchResult([{"kernel": kernel, "n": n, "loops": 1, "times_s": list(times),
                         "first_call_s": 5.0, "compile_s": 4.0}], dict(meta))


def test_round_trip_keeps_records_meta_and_provenance(tmp_path):
    records = [{"kernel": "k", "n": np.int64(10), "times_s": np.array([1.0, 2.0]), "gbps": np.float32(1.5)}]
    target = data.save(tmp_path / "sub" / "x.json", BenchResult(records, META), command="make data")
    loaded = data.load(target)
    assert loaded.records == [{"kernel": "k", "n": 10, "times_s": [1.0, 2.0], "gbps": 1.5}]
    assert loaded.meta == META
    assert loaded.provenance["command"] == "make data" and "saved_utc" in loaded.provenance
    assert json.loads(target.read_text())["schema_version"] == data.SCHEMA_VERSION
    assert isinstance(loaded, BenchResult)
    frame = loaded.to_frame()  # timing records: summaries in place of the raw repeats, extra fields kept
    assert list(frame.columns) == ["kernel", "n", "median_s", "mad_s", "min_s", "repeats", "gbps"]
    assert frame.median_s.iloc[0] == 1.5 and frame.gbps.iloc[0] == 1.5


def test_bench_result_save_and_reload(tmp_path):
    original = run()
    original.save(tmp_path / "r.json", command="test")
    again = data.load(tmp_path / "r.json")
    assert again.to_frame().equals(original.to_frame())
    assert again.provenance["command"] == "test"


def test_save_validates_its_input(tmp_path):
    with pytest.raises(TypeError, match="needs a BenchResult, got list"):
        data.save(tmp_path / "x.json", [{"a": 1}])
    with pytest.raises(TypeError, match="list of dicts"):
        data.save(tmp_path / "x.json", BenchResult({"a": 1}, META))
    with pytest.raises(ValueError, match="hardware card"):
        data.save(tmp_path / "x.json", BenchResult([], {"cpu": "?"}))
    with pytest.raises(TypeError, match="cannot store object"):
        data.save(tmp_path / "x.json", BenchResult([{"x": object()}], META))


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


def test_derived_records_are_a_plain_frame_and_refuse_timing_questions():
    ceilings = BenchResult([{"name": "L1", "kind": "memory", "gbs": 200.0}], META)
    assert ceilings.to_frame().to_dict("records") == [{"name": "L1", "kind": "memory", "gbs": 200.0}]
    with pytest.raises(ValueError, match="no times_s"):
        ceilings.raw_frame()


def test_select_keeps_the_card_and_table_is_indexed_by_kernel_and_n():
    both = data.merge(run(), run(kernel="other", times=(2e-6,)))
    other = both.select(kernel="other")
    assert other.kernels == ["other"] and other.meta == both.meta
    table = both.table()
    assert table.index.names == ["kernel", "n"]
    assert table.loc[("other", 10), "median"] == "2 µs"


def test_summarize_is_robust_to_outliers():
    median, mad = data.summarize([1.0, 1.1, 0.9, 1.0, 50.0])
    assert median == 1.0
    assert mad == pytest.approx(0.1)
    with pytest.raises(ValueError, match="empty"):
        data.summarize([])
