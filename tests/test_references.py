"""The bibliography: one references.bib, one References page, every cited key defined."""

import re

import jupytext
from pybtex.database import parse_file
from test_structure import pages

from conftest import ROOT

BIB = ROOT / "references.bib"
# {cite}`a,b`, {cite:p}`a`, {cite:t}`a`, ...
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
# What the lecture note credits and links (its own source, the surveys, HAQ, MLIR, LLVM, ...).
THE_NOTE_S_SOURCES = {"boostcamp_acceleration", "dave2021sparse", "li2021dlcompiler", "wang2019haq",
                      "lattner2020mlir", "shpeisman2019mlir", "lattner2004llvm", "gayde2019cpus",
                      "frumusanu2020m1", "graphcore_ipu", "polyhedral_info", "verdoolaege2010isl"}


def bib_keys():
    text = BIB.read_text()
    keys = re.findall(r"^@\w+\{([^,\s]+),", text, re.MULTILINE)
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicates, f"duplicate keys in references.bib: {duplicates}"
    return set(keys)


def test_the_bibliography_parses_and_credits_the_note_s_sources():
    entries = parse_file(str(BIB)).entries
    assert set(entries) == bib_keys()
    assert THE_NOTE_S_SOURCES <= set(entries)
    assert all("title" in entry.fields for entry in entries.values())


def test_every_cited_key_is_in_the_bibliography():
    keys = bib_keys()
    cited = {page: {key.strip() for group in CITE.findall((ROOT / page).read_text()) for key in group.split(",")}
             for page in pages()}
    missing = {page: sorted(used - keys) for page, used in cited.items() if used - keys}
    assert not missing, f"cited but not in references.bib: {missing}"
    assert any(cited.values()), "the chapters cite nothing: is the pattern right?"


def test_one_bibliography_for_the_whole_book():
    """A second {bibliography} would list entries twice (duplicate-citation warnings under -W)."""
    with_bibliography = [page for page in pages() if "{bibliography}" in (ROOT / page).read_text()]
    assert with_bibliography == ["chapters/references.md"]
    notebook = jupytext.read(ROOT / "chapters" / "references.md")
    directive = next(cell.source for cell in notebook.cells if "{bibliography}" in cell.source)
    assert ":all:" in directive, "the page lists every work of references.bib, cited yet or not"
