"""book.provenance: the catalogue of data sets, read from data/ and its READMEs."""

import json

import pandas as pd
import pytest

from book import data, provenance

from conftest import ROOT

README = """# Chapter 9 reference: a test

Intro paragraph, not about one file.

## `a.json`

The `first` sentence. The second
sentence goes on.

## `b.json`
Straight after the heading, over
two lines.
"""


def write_data_file(path, **provenance_fields):
    meta = {"cpu_model": "Test CPU", "usable_cpus": 4, "measured_utc": "2026-01-02T03:04:05+00:00"}
    document = {"schema_version": data.SCHEMA_VERSION, "meta": meta, "provenance": provenance_fields,
                "records": [{"kernel": "k", "n": 1}, {"kernel": "k", "n": 2}]}
    path.write_text(json.dumps(document))


def test_readme_descriptions_take_each_file_s_first_sentence(tmp_path):
    (tmp_path / "README.md").write_text(README)
    title, descriptions = provenance.readme_descriptions(tmp_path / "README.md")
    assert title == "Chapter 9 reference: a test"
    assert descriptions == {"a.json": "The `first` sentence.", "b.json": "Straight after the heading, over two lines."}


def test_readme_without_a_title_is_an_error(tmp_path):
    (tmp_path / "README.md").write_text("no title here\n")
    with pytest.raises(ValueError, match="title"):
        provenance.readme_descriptions(tmp_path / "README.md")


def test_catalog_joins_files_and_readmes(tmp_path):
    folder = tmp_path / "ch09"
    folder.mkdir()
    (folder / "README.md").write_text(README)
    write_data_file(folder / "a.json", source="chapters/x.md", command="make data")
    write_data_file(folder / "c.json")  # no section in the README, no provenance
    table = provenance.catalog(tmp_path)
    assert list(table.index) == ["ch09/a.json", "ch09/c.json"]
    a, c = table.loc["ch09/a.json"], table.loc["ch09/c.json"]
    assert (a["what"], a["made by"], a["command"]) == ("The `first` sentence.", "chapters/x.md", "make data")
    assert a["measured (UTC)"] == "2026-01-02 03:04" and a["records"] == 2
    assert a["machine"].startswith("Test CPU · 4 CPUs")
    assert (c["what"], c["made by"], c["command"]) == ("Chapter 9 reference: a test", "not recorded", "not recorded")


def test_catalog_refuses_data_without_a_readme(tmp_path):
    (tmp_path / "ch09").mkdir()
    write_data_file(tmp_path / "ch09" / "a.json")
    with pytest.raises(FileNotFoundError, match="README"):
        provenance.catalog(tmp_path)


def test_catalog_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        provenance.catalog(tmp_path / "nowhere")


def test_the_book_s_catalog_lists_every_data_file_with_its_page_and_command():
    table = provenance.catalog()
    files = sorted(p.relative_to(data.DATA_DIR).as_posix() for p in data.DATA_DIR.glob("*/*.json"))
    assert sorted(table.index) == files and files
    for name, row in table.iterrows():
        assert (ROOT / row["made by"]).exists(), f"{name}: made by {row['made by']}, which does not exist"
        assert "make data" in row["command"] and row["measured (UTC)"], name
        assert row["what"] and row["records"] > 0, name


def test_markdown_lists_every_data_set_with_its_command_date_and_machine(tmp_path):
    (tmp_path / "ch09").mkdir()
    (tmp_path / "ch09" / "README.md").write_text(README)
    write_data_file(tmp_path / "ch09" / "a.json", source="chapters/x.md", command="make data")
    text = provenance.markdown(provenance.catalog(tmp_path))
    assert text.startswith("- **`ch09/a.json`**: The `first` sentence.")
    assert "Made by `make data` on 2026-01-02 03:04 UTC; 2 records." in text and "Machine: Test CPU" in text


def test_markdown_refuses_another_table():
    with pytest.raises(ValueError, match="catalog"):
        provenance.markdown(pd.DataFrame({"what": []}))
