"""book.roadmap: the chapter map of "How to use this book" stays in step with the book."""

import jupytext
import pytest
import yaml

from book import roadmap
from book.roadmap import Chapter

from conftest import ROOT, toc_files


def chapter_pages_in_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Chapters")
    return [entry["file"] for entry in part["chapters"]]


def test_every_chapter_in_the_toc_is_on_the_map_in_order():
    pages = [c.page for c in roadmap.CHAPTERS]
    in_toc = chapter_pages_in_toc()
    assert in_toc and in_toc == [p for p in pages if p in in_toc], "chapters must appear on the map in TOC order"
    assert all(not c.planned for c in roadmap.CHAPTERS if c.page in in_toc)


def test_planned_chapters_are_exactly_the_missing_pages():
    for chapter in roadmap.CHAPTERS:
        assert chapter.planned == (chapter.page not in toc_files()), (
            f"chapter {chapter.number}: page {chapter.page} exists but is not in _toc.yml, or the reverse")


def test_chapters_use_only_earlier_chapters():
    assert [c.number for c in roadmap.CHAPTERS] == list(range(1, len(roadmap.CHAPTERS) + 1))
    assert roadmap.levels() == {1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5}


def test_levels_refuse_a_later_or_unknown_chapter():
    with pytest.raises(ValueError, match="not earlier"):
        roadmap.levels([Chapter(1, "a", "x", {2: "b"}), Chapter(2, "b", "y", {})])


def test_the_map_draws_every_chapter_and_every_use():
    fig = roadmap.dependency_map()
    drawn = sum(len(trace.x) for trace in fig.data)
    assert drawn == len(roadmap.CHAPTERS)
    arrows = [a for a in fig.layout.annotations if a.name != "card"]  # the source line is an annotation too
    assert len(arrows) == sum(len(c.uses) for c in roadmap.CHAPTERS)
    assert fig.layout.meta["cards"], "the map names its source under the plot"
    planned = next(trace for trace in fig.data if trace.name == "planned")
    assert len(planned.x) == sum(c.planned for c in roadmap.CHAPTERS)
    assert all("uses" in text for trace in fig.data for text in trace.hovertext)


def test_how_to_use_shows_the_map_in_a_hidden_cell():
    cells = [c for c in jupytext.read(ROOT / "chapters" / "how_to_use.md").cells
             if c.cell_type == "code" and "roadmap.dependency_map()" in c.source]
    assert len(cells) == 1 and "remove-input" in cells[0].metadata.get("tags", [])
