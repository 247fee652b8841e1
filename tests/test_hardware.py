"""book.hardware: the probes, their tolerance of missing sources, and the card."""

import json

import pytest

from book import hardware


@pytest.fixture(scope="module")
def meta():
    return hardware.collect_metadata()


def test_card_fields_on_this_machine(meta):
    assert meta["probe_errors"] == {}, meta["probe_errors"]
    for key in ("cpu_model", "machine", "isa", "logical_cpus", "usable_cpus", "cache_bytes", "ram_bytes",
                "python", "numpy", "numba", "llvmlite", "blas", "gpus", "measured_utc", "quick"):
        assert key in meta, key
    assert meta["usable_cpus"] >= 1 and meta["ram_bytes"] > 2**28
    json.dumps(meta)  # stored as-is in every data file


def test_failing_probe_is_recorded_not_raised(monkeypatch):
    def no_proc(path):
        raise FileNotFoundError(f"no such file: {path}")

    monkeypatch.setattr(hardware, "_read", no_proc)
    meta = hardware.collect_metadata()
    assert "collect_cpu" in meta["probe_errors"]
    assert "FileNotFoundError" in meta["probe_errors"]["collect_cpu"]
    assert meta["numpy"] and meta["logical_cpus"]  # the other probes still ran


def test_missing_gpu_tool_means_no_gpus(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    meta = {}
    hardware.collect_gpu(meta)
    assert meta == {"gpus": []}


def test_card_text(meta):
    text = hardware.card(meta)
    assert meta["cpu_model"] in text and f"NumPy {meta['numpy']}" in text
    assert hardware.card({}) == "unknown CPU · ? CPUs · NumPy ?, Numba ?"


def test_sizes_and_key_differences():
    assert hardware._parse_size("32K") == 32768 and hardware._parse_size("1M") == 2**20
    a = {"cpu_model": "X", "numpy": "2.4", "quick": False}
    assert hardware.key_differences(a, dict(a)) == {}
    assert hardware.key_differences(a, dict(a, numpy="2.3")) == {"numpy": ("2.4", "2.3")}
