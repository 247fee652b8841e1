"""How the data was measured: the table is computed from data/ in a hidden cell, never typed."""

import re

import jupytext
import yaml

from conftest import ROOT

PAGE = ROOT / "chapters" / "how_the_data_was_measured.md"


def test_the_table_is_read_from_the_files_in_a_hidden_cell():
    notebook = jupytext.read(PAGE)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and "provenance.catalog()" in cell.source]
    assert len(cells) == 1, "the page shows book.provenance.catalog() once"
    assert "remove-input" in cells[0].metadata.get("tags", []), "readers see the table, not the call"


def test_no_data_set_is_typed_into_the_prose():
    """Names of data files come from the table, so a new data set cannot be forgotten here."""
    prose = PAGE.read_text()
    assert not re.search(r"\w+\.json", prose), "name data files in the table (book.provenance), not in prose"


def test_the_page_is_in_the_reference_part():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    reference = next(part for part in toc["parts"] if part["caption"] == "Reference")
    assert "chapters/how_the_data_was_measured" in [entry["file"] for entry in reference["chapters"]]
