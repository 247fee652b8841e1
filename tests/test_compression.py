"""Hardware-aware compression: the reference data tells the chapter's story.

Ratios are measured within one run (one data file); tests over the reference files skip until
``make data`` has written them.
"""

import re

import pytest

from book import data

from conftest import ROOT, glued_text

PAGE = "chapters/compression.md"


def published():
    return re.findall(r'data\.publish\([^,]+,\s*"ch07/([\w.-]+)"', (ROOT / PAGE).read_text())


def load(name):
    path = data.path("ch07", name)
    if not path.exists():
        pytest.skip(f"data/ch07/{name} is not published yet (make data)")
    return data.load(path)


def test_readme_names_every_file_the_page_publishes():
    readme = (ROOT / "data" / "ch07" / "README.md").read_text()
    for name in published():
        assert name in readme, f"data/ch07/README.md does not describe {name}"


@pytest.mark.parametrize("name", ["spmv.json", "spmm.json", "int8.json", "layers.json", "haq.json"])
def test_reference_was_published_by_the_page_at_full_size(name):
    assert name in published()
    dataset = load(name)
    assert dataset.provenance["source"] == PAGE and dataset.meta["quick"] is False


def _medians(result, **fields):
    frame = result.select(**fields).to_frame() if fields else result.to_frame()
    return frame.groupby("kernel").median_s.median()


def test_sparse_pays_only_at_high_sparsity():
    spmv = load("spmv.json")
    dense, empty = _medians(spmv, sparsity=0), _medians(spmv, sparsity=0.99)
    assert dense["CSR, numba"] > dense["dense (BLAS)"]  # every value stored: the index costs time
    assert empty["CSR, numba"] < empty["dense (BLAS)"] / 2


def test_numpy_int8_matmul_is_far_slower_than_float32_blas():
    int8 = load("int8.json")
    small = min(r["n"] for r in int8.records)
    t = _medians(int8, n=small)
    assert t["NumPy int8 @"] > 5 * t["float32 BLAS"]


def test_every_search_meets_its_budget_and_every_policy_was_scored():
    records = load("haq.json").records
    searches = [r for r in records if r["kind"] == "search"]
    assert {r["target"] for r in searches} == {"CPU latency (s)", "bit-serial latency (s)", "size (bytes)"}
    assert all(r["cost"] <= r["budget"] for r in searches)
    policies = [tuple(r["policy"]) for r in records if r["kind"] == "policy"]
    assert len(policies) == len(set(policies)) == 8 ** 3
    assert all(0 <= r["test_accuracy"] <= 1 for r in records)


# --- the quick build (the `site` fixture builds the whole book once per session) --------------

@pytest.mark.build
def test_quick_run_holds_the_masks_and_meets_the_error_model(site):
    values = glued_text(site, "compression")
    assert values["zeros_held"] == "stayed zero in every run"  # masked fine-tuning never regrows a weight
    assert 0.7 < float(values["bits_per_halving"]) < 1.3  # the error halves about once per bit
    assert float(values["channel_gain"]) > 1  # per-channel scales beat one scale per tensor
    assert float(values["numpy_int8_slowdown"]) > 1 and values["numpy_wrong"] != "0%"
