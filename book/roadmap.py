"""The chapters and what each one uses from the others, drawn as a map for choosing a path.

"How to use this book" shows :func:`dependency_map`, so an instructor can
see which chapters a course may skip or reorder. A chapter whose page does
not exist yet is drawn as planned; ``tests/test_roadmap.py`` keeps the list
in step with ``_toc.yml``.
"""

import textwrap
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from book import plots

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Chapter:
    """One chapter: its number, title, page and what it takes from earlier chapters."""

    number: int
    title: str
    page: str  # path of the page under the repository root, without ".md"
    uses: dict  # {chapter number: what this chapter takes from it}
    provides: str = ""  # what later chapters take from it, when that is a named artefact

    @property
    def planned(self):
        """True while the chapter's page does not exist."""
        return not (ROOT / f"{self.page}.md").exists()


CHAPTERS = (
    Chapter(1, "Lists vs arrays", "chapters/lists_vs_arrays", {}),
    Chapter(2, "What makes computation fast", "chapters/what_makes_computation_fast",
            {1: "contiguous arrays, timing without the first call"}, provides="the roofline and its ceilings"),
    Chapter(3, "Accelerators", "chapters/accelerators", {2: "the roofline's ceilings"}),
    Chapter(4, "Compilers", "chapters/compilers", {1: "numba loops", 2: "SIMD and the emitted code"}),
    Chapter(5, "Deep-learning compilers", "chapters/dl_compilers", {4: "IR, lowering and code generation"},
            provides="the book's shared small models"),
    Chapter(6, "Loop optimizations", "chapters/loop_optimizations",
            {2: "the roofline, locality", 4: "reading the emitted code"}, provides="tiled and parallel kernels"),
    Chapter(7, "Hardware-aware compression", "chapters/compression",
            {5: "the shared models", 6: "the kernels"}),
    Chapter(8, "Trends: co-design", "chapters/trends",
            {3: "accelerators", 6: "loop optimizations", 7: "pruning and quantization"}),
)


def levels(chapters=CHAPTERS):
    """Each chapter's depth in the map: 0 for a chapter that uses none, else 1 + the deepest it uses.

    Raises ``ValueError`` when a chapter uses one that is not an earlier
    chapter of the list (which also rules out cycles).
    """
    depth = {}
    for chapter in chapters:
        unknown = [n for n in chapter.uses if n not in depth]
        if unknown:
            raise ValueError(f"chapter {chapter.number} uses {unknown}, which are not earlier chapters")
        depth[chapter.number] = 1 + max((depth[n] for n in chapter.uses), default=-1)
    return depth


def dependency_map(chapters=CHAPTERS):
    """The chapters as a left-to-right map: an arrow from each chapter to the chapters that use it.

    Returns
    -------
    plotly.graph_objects.Figure
        One marker per chapter (filled when its page exists, hollow while it
        is planned); hovering a chapter lists what it uses and provides.
    """
    depth = levels(chapters)
    by_level = {}
    for chapter in chapters:
        by_level.setdefault(depth[chapter.number], []).append(chapter.number)
    position = {number: (level, (len(numbers) - 1) / 2 - i)
                for level, numbers in by_level.items() for i, number in enumerate(numbers)}
    fig = go.Figure()
    for chapter in chapters:
        for used in chapter.uses:
            (x0, y0), (x1, y1) = position[used], position[chapter.number]
            fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.5,
                               arrowcolor="#9aa0a6", standoff=22, startstandoff=22, text="")
    for planned in (False, True):
        group = [c for c in chapters if c.planned == planned]
        hover = []
        for c in group:
            uses = "<br>".join(f"uses ch. {n}: {what}" for n, what in c.uses.items()) or "uses no earlier chapter"
            provides = f"<br>provides: {c.provides}" if c.provides else ""
            hover.append(f"<b>{c.number}. {c.title}</b>{' (planned)' if planned else ''}<br>{uses}{provides}")
        fig.add_scatter(
            x=[position[c.number][0] for c in group], y=[position[c.number][1] for c in group],
            mode="markers+text", name="planned" if planned else "available",
            # Wrapped, so that neighbouring columns' labels do not overlap.
            text=["<br>".join(textwrap.wrap(f"{c.number}. {c.title}", 16)) for c in group],
            textposition="bottom center",
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(size=34, symbol="circle-open" if planned else "circle", color="#1f77b4",
                        line=dict(width=3, color="#1f77b4")),
        )
    fig.update_xaxes(visible=False, range=[-0.6, max(depth.values()) + 0.6])
    fig.update_yaxes(visible=False, range=[-1.4, 1.2])
    fig.update_layout(title="Which chapter uses which (hollow: planned)", template="plotly_white",
                      height=360, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.12))
    # Not a measurement: the figure names where its content comes from instead of a hardware card.
    return plots.add_note(fig, "Source: the book's chapter plan (book/roadmap.py, checked against _toc.yml)")
