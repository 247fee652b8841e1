"""The whole book builds in quick mode with warnings as errors."""

import re

import pytest

from conftest import toc_files

pytestmark = pytest.mark.build


def test_book_builds_without_warnings(site):
    warnings = [line for line in site.log.splitlines() if "WARNING" in line and "IPKernelApp" not in line]
    assert site.returncode == 0 and not warnings, "\n".join(warnings) or site.log[-5000:]


def test_every_page_is_built(site):
    for name in toc_files():
        assert (site.html / f"{name}.html").exists(), f"{name} is in _toc.yml but was not built"


def test_plotly_js_is_served_locally(site):
    assert (site.html / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    page = (site.html / "chapters" / "measuring_honestly.html").read_text()
    assert re.search(r'<script src="\.\./_static/plotly\.min\.js', page)
    assert "cdn.plot.ly" not in page and "cdn.jsdelivr" not in page and "cdnjs" not in page


def test_page_with_a_chart_is_light(site):
    """plotly.js is one shared static file, not inlined into each page."""
    assert (site.html / "chapters" / "how_to_use.html").stat().st_size < 200_000


def test_launch_and_download_buttons(site):
    page = (site.html / "chapters" / "measuring_honestly.html").read_text()
    assert "mybinder.org/v2/gh/" in page
    assert "hub/user-redirect/git-pull" in page
    # Colab would open the page's .md source, which it cannot read: no button.
    assert "colab.research.google.com" not in page
    # The download menu offers the executed notebook, and the file is there.
    assert "_sources/chapters/measuring_honestly.ipynb" in page
    assert (site.html / "_sources" / "chapters" / "measuring_honestly.ipynb").stat().st_size > 1000


def test_references_page_lists_the_bibliography_and_chapters_cite_it(site):
    references = (site.html / "chapters" / "references.html").read_text()
    assert "Boostcamp AI Tech" in references and "arXiv:2007.00864" in references
    chapter = (site.html / "chapters" / "what_makes_computation_fast.html").read_text()
    assert 'href="references.html#id' in chapter, "a {cite:p} role links to the References page"


def test_korean_font_ships_with_the_site(site):
    fonts = site.html / "_static" / "fonts"
    assert (fonts / "noto-sans-kr-book.woff2").exists() and (fonts / "OFL.txt").exists()
    page = (site.html / "chapters" / "glossary.html").read_text()
    assert re.search(r'<link rel="stylesheet"[^>]*href="\.\./_static/fonts/korean\.css', page)
