"""Every data set under data/ has provenance: a README, a hardware card, the page that made it."""

import pytest

from book import data

from conftest import ROOT

# Folders named "cited" hold published figures (spec sheets), not measurements: no hardware card.
DATA_FILES = sorted(p for p in data.DATA_DIR.rglob("*.json") if "cited" not in p.parts)
CITED_FILES = sorted(data.DATA_DIR.rglob("cited/*.json"))


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


@pytest.mark.parametrize("path", CITED_FILES, ids=lambda p: str(p.relative_to(data.DATA_DIR)))
def test_cited_file_gives_a_source_for_every_row(path):
    import json

    document = json.loads(path.read_text())
    assert document.get("kind") == "cited", f"{path}: a cited table says so (kind: cited)"
    tables = [value for value in document.values() if isinstance(value, list)]
    assert tables and all(tables), f"{path} holds no rows"
    unsourced = [row for table in tables for row in table if not str(row.get("source", "")).strip()]
    assert not unsourced, f"{path}: rows without a source: {unsourced[:3]}"
    assert path.name in (path.parent.parent / "README.md").read_text(), f"name {path.name} in the folder's README"
