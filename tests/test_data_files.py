"""Every data set under data/ has provenance: a README, a hardware card, the page that made it."""

import pytest

from book import data

from conftest import ROOT

DATA_FILES = sorted(data.DATA_DIR.rglob("*.json"))


def test_there_is_reference_data():
    assert DATA_FILES


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: str(p.relative_to(data.DATA_DIR)))
def test_data_file_has_provenance(path):
    dataset = data.load(path)
    assert dataset.records, f"{path} holds no records"
    assert dataset.meta.get("cpu_model") and dataset.meta.get("measured_utc")
    assert dataset.meta.get("quick") is False, f"{path} was measured in quick mode"
    source = dataset.provenance.get("source")
    assert source and (ROOT / source).exists(), f"{path}: source page {source!r} does not exist"
    name = str(path.relative_to(data.DATA_DIR))
    assert f'"{name}"' in (ROOT / source).read_text(), f"{source} does not publish {name}"
    assert (path.parent / "README.md").exists(), f"{path.parent} needs a README.md"
