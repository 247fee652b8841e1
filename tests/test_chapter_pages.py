"""Checks every chapter page must pass, one parametrized test per concern (ids = page stems).

A new page under chapters/ is covered the moment it exists; a page's own test
file (tests/test_<stem>.py) holds only what is specific to it.
"""

import json
import re

import pytest
import yaml

from conftest import ROOT, toc_files

PAGES = sorted((ROOT / "chapters").glob("*.md"))
every_page = pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
# Numbers a page may type into its prose because they are not measurements of this book: the
# lecture note's own timings (quoted as the note's), versions, and arithmetic on problem sizes.
QUOTED_NUMBERS = {
    "lists_vs_arrays": {"0.1292", "0.0247", "3.11", "2.4"},
}
GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`(\w+)[^`]*`")
GLUE_CALL = re.compile(r'\bglue(?:_text)?\(\s*f?"([\w{}]+)"')


# Fences whose body is prose (admonitions, exercises, figures); every other fence holds code or output.
PROSE_FENCES = re.compile(r"\{(admonition|note|tip|warning|important|exercise|solution|figure|margin|dropdown)")


def prose(text):
    """A page's markdown without its header, code (cells, fenced blocks, inline) and glue roles."""
    kept, fences = [], []  # fences: a stack of (marker, keeps its body)
    for line in text.split("---\n", 2)[2].splitlines():
        fence = re.match(r"^\s*(`{3,}|:{3,})(.*)$", line)
        if fence and fences and fence.group(1) == fences[-1][0] and not fence.group(2).strip():
            fences.pop()
        elif fence and fence.group(2).strip() or fence and not fences:
            fences.append((fence.group(1), bool(PROSE_FENCES.match(fence.group(2).strip()))))
        elif all(keeps for _, keeps in fences) and not line.startswith(":"):  # ":class: tip" options
            kept.append(line)
    text = GLUE_ROLE.sub("", "\n".join(kept))
    text = re.sub(r"\bPython\s+3\.\d+", "", text)  # the version the book runs on
    return re.sub(r"`[^`\n]*`", "", text)


def glued_names(text):
    """Patterns of every name a page glues; an f-string's placeholders match any word."""
    return [re.sub(r"\\\{\w+\\\}", r"\\w*", re.escape(name)) for name in GLUE_CALL.findall(text)]


@every_page
def test_page_is_a_myst_notebook_in_the_toc(page):
    text = page.read_text()
    assert text.startswith("---\n"), f"{page.name} must start with a jupytext YAML header"
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["jupytext"]["text_representation"]["format_name"] == "myst", page.name
    assert header["kernelspec"]["name"] == "python3", page.name
    assert f"chapters/{page.stem}" in toc_files(), f"add chapters/{page.stem} to _toc.yml"


@every_page
def test_prose_types_no_measured_number(page):
    decimals = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose(page.read_text())))
    typed = sorted(decimals - QUOTED_NUMBERS.get(page.stem, set()))
    assert not typed, (f"{page.name}: numbers typed into the prose: {typed}; glue them from the page's run "
                       "or data/ (book.pages.glue_text), or, for a quoted source, add them to QUOTED_NUMBERS")


def test_prose_filter_sees_typed_numbers_and_skips_glued_ones():
    text = ("---\nheader\n---\nIt took 0.25 s, {glue:text}`x:.2f` ms, `1.5` in code.\n"
            "```{code-cell} ipython3\n2.5\n```\n```{admonition} Note\n:class: tip\nSaid 0.75 s.\n```\n"
            "```python\nx = 3.5\n```\n````{exercise}\n```text\n4.5\n```\nthen 5.5\n````\n")
    assert re.findall(r"\d+\.\d+", prose(text)) == ["0.25", "0.75", "5.5"]


@every_page
def test_every_glued_name_used_is_glued(page):
    """A name the prose uses but no cell glues renders as an error only in the built page."""
    text = page.read_text()
    patterns = glued_names(text)
    missing = sorted(name for name in set(GLUE_ROLE.findall(text))
                     if not any(re.fullmatch(pattern, name) for pattern in patterns))
    assert not missing, f"{page.name}: the prose uses names no cell glues: {missing}"


@every_page
def test_every_glued_name_is_used(page):
    """A glued value that no sentence shows and no test reads is a measurement nobody sees: use it or drop it."""
    text = page.read_text()
    own_tests = ROOT / "tests" / f"test_{page.stem}.py"
    read_by_tests = set(re.findall(r'\["(\w+)"\]', own_tests.read_text())) if own_tests.exists() else set()
    used = set(GLUE_ROLE.findall(text)) | read_by_tests
    unused = sorted(pattern for pattern in glued_names(text) if not any(re.fullmatch(pattern, u) for u in used))
    assert not unused, f"{page.name}: glued but never shown: {unused}"


@every_page
def test_every_published_data_file_is_named_in_its_readme(page):
    for name in re.findall(r'data\.publish\([^,]+,\s*"([\w/.-]+)"', page.read_text()):
        readme = ROOT / "data" / name.rsplit("/", 1)[0] / "README.md"
        assert readme.exists(), f"{page.name} publishes {name}: data/{name.rsplit('/', 1)[0]} needs a README.md"
        assert name.rsplit("/", 1)[1] in readme.read_text(), f"{readme.relative_to(ROOT)} does not describe {name}"


@every_page
def test_page_states_its_learning_objectives(page):
    """Chapters (pages that measure) open with what the reader will be able to do."""
    text = page.read_text()
    if "bench(" not in text and "data.load(" not in text:
        pytest.skip("not a chapter that measures")
    head = text[:text.find("\n## ")]
    assert re.search(r"(?im)^:::?\{admonition\} Learning objectives|^```\{admonition\} Learning objectives",
                     head), f"{page.name}: open with a 'Learning objectives' admonition before the first section"


def figures(html):
    """The (data, layout) of every plotly figure in a built page (book.site writes them inline)."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r'Plotly\.newPlot\("[^"]+", ', html):
        data, end = decoder.raw_decode(html, match.end())
        layout, _ = decoder.raw_decode(html, end + 2)
        found.append((data, layout))
    return found


@pytest.mark.build
@every_page
def test_every_figure_says_where_its_numbers_come_from(site, page):
    """A measured figure carries the hardware card; any other figure a source line (book.plots.add_note)."""
    built = site.html / "chapters" / f"{page.stem}.html"
    assert built.exists(), f"{page.stem} was not built"
    unsourced = [layout.get("title", {}).get("text", "(untitled)") for _, layout in figures(built.read_text())
                 if not (layout.get("meta") or {}).get("cards")]
    assert not unsourced, f"{page.name}: figures without a hardware card or source line: {unsourced}"
