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


# --- book.bibliography: where each work is cited ---------------------------------------------------


def test_cited_keys_reads_every_role_form_once():
    from book import bibliography

    text = "A {cite:p}`a2020x, b2019y` and {cite:t}`c` then {cite}`a2020x`, {cite:ps}`d`."
    assert bibliography.cited_keys(text) == ["a2020x", "b2019y", "c", "d"]
    assert bibliography.cited_keys("no citations") == []


def test_cited_in_finds_every_citation_of_every_toc_page():
    from book import bibliography

    where = bibliography.cited_in()
    keys = bib_keys()
    assert set(where) >= keys, "every work of references.bib has an entry, cited or not"
    assert set(where) == keys, f"cited but not in references.bib: {sorted(set(where) - keys)}"
    toc = dict(bibliography.toc_pages())
    assert "chapters/references" in toc and "intro" in toc
    for document, source in toc.items():
        assert source.exists(), f"{document} in _toc.yml has no source {source}"
        for key in bibliography.cited_keys(source.read_text()):
            assert document in where[key], (key, document)
    # a lab's student notebook is built from its master, whose citations count for it
    assert all(str(source).endswith(f"labs/{document.split('/')[-1]}.md")
               for document, source in toc.items() if document.startswith("labs/_student/"))


def test_the_cited_in_list_links_built_pages_relative_to_the_references_page():
    from book import bibliography

    where = {"a": ["chapters/accelerators", "labs/_student/lab_03_accelerators"], "b": [], "c": ["intro"]}
    titles = {"chapters/accelerators": "Accelerators", "intro": "Home"}
    text = bibliography.markdown(where, titles, {"a": "Work A (Someone, 2020)"})
    lines = text.splitlines()
    assert lines[0] == ("- Work A (Someone, 2020) `a`: [Accelerators](../chapters/accelerators.html), "
                        "[labs/_student/lab_03_accelerators](../labs/_student/lab_03_accelerators.html)")
    assert lines[1] == "- c `c`: [Home](../intro.html)"
    assert lines[2] == "- listed, not cited on a page: `b`"


def test_labels_name_each_work_by_title_author_and_year():
    from book import bibliography

    labels = bibliography.labels()
    assert set(labels) == bib_keys()
    assert labels["dave2021sparse"].endswith("(Dave et al., 2021)")
    assert labels["verdoolaege2010isl"] == "isl: An Integer Set Library for the Polyhedral Model (Verdoolaege, 2010)"
    assert not any("\\" in label or "{" in label for label in labels.values()), "LaTeX markup left in a label"


def test_the_references_page_lists_where_each_work_is_cited():
    notebook = jupytext.read(ROOT / "chapters" / "references.md")
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "bibliography.cited_in()" in code and "bibliography.markdown(" in code


def test_the_note_s_sources_carry_a_link():
    """The lecture note links each of its sources; the bibliography keeps a way to reach every one."""
    entries = parse_file(str(BIB)).entries
    # the AnandTech article stands in for the note's TechSpot M1 link (its entry says so)
    unlinked = {key for key in THE_NOTE_S_SOURCES - {"frumusanu2020m1"}
                if not {"url", "doi", "eprint"} & {field.lower() for field in entries[key].fields}}
    assert not unlinked, f"the note links these, the bibliography does not: {sorted(unlinked)}"
