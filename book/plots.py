"""Interactive plots with units and a hardware card.

Figures are plain plotly figures. In JupyterLab they render through plotly's
own extension; on the website the book's myst-nb plugin (``book.site``) draws
them against one local copy of plotly.js, so they work offline. Every figure
of a measurement carries the hardware card of the machine that made it.
"""

import math
import textwrap

import plotly.graph_objects as go

from book.hardware import card
from book.units import format_bytes

REFERENCE_NOTE = "solid: this build's run · dotted: the book's reference run"
# One colour per kernel, the same on every figure of a page.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def color(i):
    return PALETTE[i % len(PALETTE)]


def add_card(fig, meta, label="Measured on"):
    """Write the hardware card under the plot (several cards stack)."""
    return add_note(fig, f"{label}: {card(meta)}")


def add_note(fig, text):
    """Write a line under the plot, stacked with the hardware cards (e.g. a citation)."""
    cards = fig.layout.meta.get("cards", []) if isinstance(fig.layout.meta, dict) else []
    # ~90 characters of 10 px text fit the plot area of the site's ~620 px content column.
    cards = cards + ["<br>".join(textwrap.wrap(text, 90))]
    text = "<br>".join(cards)
    lines = text.count("<br>") + 1
    fig.update_layout(
        meta={"cards": cards},
        margin={"b": 70 + 15 * lines},
        annotations=[a for a in fig.layout.annotations if a.name != "card"] + [go.layout.Annotation(
            name="card", text=text, showarrow=False, xref="paper", yref="paper", x=0, y=0,
            yshift=-55, xanchor="left", yanchor="top", align="left", font={"size": 10, "color": "#666"},
        )],
    )
    return fig


def figure(title=None, x_title=None, y_title=None, log_x=False, log_y=False, height=460):
    """An empty figure in the book's style: titled axes with units, SI tick labels."""
    fig = go.Figure()
    fig.update_layout(
        title=title, height=height, template="plotly_white", hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 70, "r": 20, "t": 80 if title else 50},
    )
    # Axis type "-" lets plotly infer linear, date or category from the data.
    fig.update_xaxes(title=x_title, type="log" if log_x else "-", exponentformat="SI")
    fig.update_yaxes(title=y_title, type="log" if log_y else "-", exponentformat="SI")
    return fig


def _latency_traces(fig, result, per_element, suffix, dash, offset=0):
    frame = result.to_frame()
    for i, kernel in enumerate(result.kernels):
        rows = frame[frame.kernel == kernel].sort_values("n")
        scale = 1 / rows.n if per_element else 1
        y, err = rows.median_s * scale, rows.mad_s * scale
        fig.add_trace(go.Scatter(
            x=rows.n, y=y, name=f"{kernel}{suffix}", mode="lines+markers", legendgroup=kernel,
            line={"color": color(i + offset), "dash": dash},
            error_y={"type": "data", "array": err, "visible": True, "thickness": 1},
            customdata=list(zip(rows.mad_s * scale, rows.repeats)),
            hovertemplate=(f"<b>{kernel}{suffix}</b><br>n = %{{x:,}}<br>median %{{y:.3s}}s"
                           " ± %{customdata[0]:.2s}s (MAD, %{customdata[1]} repeats)<extra></extra>"),
        ))


def latency(result, per_element=False, reference=None, title=None, x_title="n (elements)",
            label="This run", reference_label="Book's reference"):
    """Log-log latency plot of a :class:`book.data.BenchResult`.

    Parameters
    ----------
    result : BenchResult
    per_element : bool
        Plot time per element (median / n) instead of time per call.
    reference : BenchResult, optional
        Another run (e.g. the book's reference data) drawn dashed, with its
        own hardware card: "the book's machine vs yours".
    """
    unit = "time per element (s)" if per_element else "time per call (s)"
    fig = figure(title, x_title, f"{unit}, median ± MAD", log_x=True, log_y=True)
    _latency_traces(fig, result, per_element, "", "solid")
    add_card(fig, result.meta, label)
    if reference is not None:
        kernels = result.kernels
        # Same colour for the same kernel name in both runs.
        for j, kernel in enumerate(reference.kernels):
            sub = reference.select(kernel=kernel)
            offset = kernels.index(kernel) if kernel in kernels else len(kernels) + j
            _latency_traces(fig, sub, per_element, f" ({reference_label.lower()})", "dot", offset)
        add_card(fig, reference.meta, reference_label)
    return fig



def mark_x(fig, x, text):
    """A labelled vertical dotted line at ``x`` (log or linear axis, read from the figure)."""
    log_x = fig.layout.xaxis.type == "log"
    fig.add_shape(type="line", x0=x, x1=x, yref="paper", y0=0, y1=1, line={"dash": "dot", "color": "#888"})
    # On a log axis plotly places annotations in log10 units, shapes in data units.
    fig.add_annotation(x=math.log10(x) if log_x else x, y=1, yref="paper", text=text, showarrow=False,
                       xanchor="right", yanchor="top", font={"size": 11, "color": "#444"},
                       bgcolor="rgba(255, 255, 255, 0.75)")
    return fig


def mark_caches(fig, meta, x_of=None):
    """Mark each cache size of a hardware card with a labelled vertical line.

    Parameters
    ----------
    fig : plotly Figure
    meta : dict
        The hardware card (:func:`book.hardware.collect_metadata`); a card
        without ``cache_bytes`` marks nothing.
    x_of : callable, optional
        Maps a cache size in bytes to the figure's x: the identity for an
        axis of bytes, ``lambda size: size / 24`` for an axis of elements
        when each element adds 24 bytes to the working set, ``math.log2``
        for an axis of log2(bytes).
    """
    x_of = x_of or (lambda size: size)
    if not callable(x_of):
        raise TypeError(f"x_of must map a size in bytes to x, got {type(x_of).__name__}")
    for level, size in (meta.get("cache_bytes") or {}).items():
        mark_x(fig, x_of(size), f"{level} {format_bytes(size)}")
    return fig


def tidy_legend(fig, columns=2, subtitle=None):
    """Lay a figure's legend out in columns above the plot, with room for the title.

    A kernel's reference run (its traces end in ``(book's reference)``)
    shares the legend entry of this run's trace, so clicking the entry
    toggles both.
    """
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns!r}")
    for trace in fig.data:
        if trace.name and trace.name.endswith("(book's reference)"):
            trace.showlegend = False
    entries = [t for t in fig.data if t.showlegend is not False and t.name and t.visible is not False]
    rows = -(-len(entries) // columns)
    menus = 40 if fig.layout.updatemenus else 0
    top = (75 if subtitle else 55) + 22 * rows + menus
    fig.update_layout(legend={"entrywidth": 1 / columns, "entrywidthmode": "fraction", "y": 1.02,
                              "traceorder": "normal"},
                      title={"y": 0.99, "yref": "container", "yanchor": "top",
                             "subtitle": {"text": subtitle} if subtitle else None},
                      margin={"t": top})
    if menus:  # a menu row between the title and the legend
        plot_px = fig.layout.height - top - fig.layout.margin.b
        for menu in fig.layout.updatemenus:
            menu.update(x=0, xanchor="left", y=1 + (22 * rows + 14) / plot_px, yanchor="bottom", direction="down")
    return fig

# --- The roofline (chapter 2 builds it; chapters 3-7 place their kernels on it) ---

def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):
    """The roofline bound: ``min(peak, intensity × bandwidth)`` in GFLOP/s.

    Parameters
    ----------
    intensity : float
        Arithmetic intensity in FLOP per byte moved.
    peak_gflops : float
        Compute ceiling (GFLOP/s).
    bandwidth_gbs : float
        Memory ceiling (GB/s, 10⁹ bytes per second).

    Examples
    --------
    >>> attainable_gflops(0.25, peak_gflops=100, bandwidth_gbs=20)
    5.0
    """
    return min(peak_gflops, intensity * bandwidth_gbs)


def ridge_intensity(peak_gflops, bandwidth_gbs):
    """Intensity (FLOP/byte) where the memory roof meets the compute roof: below it a
    kernel is memory-bound, above it compute-bound."""
    return peak_gflops / bandwidth_gbs


def _named(ceilings, unit):
    items = list(ceilings.items()) if hasattr(ceilings, "items") else list(ceilings)
    if not items:
        raise ValueError(f"roofline() needs at least one ceiling in {unit}")
    for name, value in items:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"ceiling {name!r} must be a positive number of {unit}, got {value!r}")
    return [(str(name), float(value)) for name, value in items]


def _log_grid(low, high, points=160):
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return [10 ** (math.log10(low) + i * step) for i in range(points)]


_LEGEND_GROUPS = {"roof": "this machine", "compute": "this machine", "memory": "this machine",
                  "other": "other machines", "kernel": "kernels"}


def _roof_line(fig, name, peak, bandwidth, grid, style, group, detail):
    y = [attainable_gflops(i, peak, bandwidth) for i in grid]
    fig.add_trace(go.Scatter(
        x=grid, y=y, name=name, mode="lines", line=style, legendgroup=_LEGEND_GROUPS[group],
        legendgrouptitle_text=_LEGEND_GROUPS[group],
        meta={"roofline": group, "peak_gflops": peak, "bandwidth_gbs": bandwidth},
        hovertemplate=(f"<b>{name}</b><br>{detail}<br>intensity %{{x:.3g}} FLOP/B: attainable %{{y:.3s}} GFLOP/s"
                       f"<br>ridge at {ridge_intensity(peak, bandwidth):.3g} FLOP/B<extra></extra>"),
    ))


def _roof_of(fig):
    for trace in fig.data:
        if isinstance(trace.meta, dict) and trace.meta.get("roofline") == "roof":
            return trace.meta["peak_gflops"], trace.meta["bandwidth_gbs"]
    raise ValueError("this figure has no roofline; make it with book.plots.roofline()")


def _kernel_point(kernel):
    name, intensity, gflops = kernel["name"], float(kernel["intensity"]), float(kernel["gflops"])
    if not (intensity > 0 and gflops > 0 and math.isfinite(intensity) and math.isfinite(gflops)):
        raise ValueError(f"kernel {name!r}: intensity and gflops must be positive numbers "
                         f"(got {intensity!r}, {gflops!r})")
    return name, intensity, gflops


def add_roofline_kernels(fig, kernels, symbol="circle", offset=0):
    """Place measured kernels on a roofline figure made by :func:`roofline`.

    Parameters
    ----------
    fig : plotly Figure
        A figure returned by :func:`roofline`.
    kernels : iterable of mappings
        Each has ``name``, ``intensity`` (FLOP/byte), ``gflops`` (measured);
        optionally ``gflops_mad`` (error bar) and ``note`` (shown on hover,
        e.g. the size and thread count).
    symbol : str
        Marker symbol, so a chapter can tell its kernels from earlier ones.
    offset : int
        First colour index (colours follow :func:`color`).

    Returns
    -------
    plotly Figure
        The same figure. Hover shows each kernel's fraction of the roof at its
        intensity and whether that roof is the memory or the compute ceiling.
    """
    peak, bandwidth = _roof_of(fig)
    ridge = ridge_intensity(peak, bandwidth)
    for i, kernel in enumerate(kernels):
        name, intensity, gflops = _kernel_point(kernel)
        bound = "memory-bound" if intensity < ridge else "compute-bound"
        fraction = gflops / attainable_gflops(intensity, peak, bandwidth)
        note = f"<br>{kernel['note']}" if kernel.get("note") else ""
        mad = kernel.get("gflops_mad")
        fig.add_trace(go.Scatter(
            x=[intensity], y=[gflops], name=name, mode="markers", legendgroup="kernels",
            legendgrouptitle_text="kernels",
            marker={"size": 11, "symbol": symbol, "color": color(i + offset),
                    "line": {"width": 1, "color": "#333"}},
            error_y={"type": "data", "array": [float(mad)], "visible": True} if mad else None,
            meta={"roofline": "kernel"},
            hovertemplate=(f"<b>{name}</b><br>intensity %{{x:.3g}} FLOP/B<br>%{{y:.3s}} GFLOP/s"
                           + (f" ± {float(mad):.2g}" if mad else "")
                           + f"<br>{fraction:.0%} of the roof here ({bound}){note}<extra></extra>"),
        ))
    return fig


def roofline(compute, memory, kernels=(), others=(), meta=None, title=None, intensity_range=None,
             label="Measured on"):
    """An interactive roofline: this machine's ceilings, kernels on it, other chips beside it.

    Chapter 2 measures the ceilings (BLAS matrix multiply for compute, a
    STREAM triad for memory); later chapters add their kernels and compare
    accelerators' published ceilings with this machine's measured ones.

    Parameters
    ----------
    compute : dict of name -> GFLOP/s
        Compute ceilings. The first is the roof; the others are drawn
        dashed below or above it (one thread, another precision, ...).
    memory : dict of name -> GB/s
        Memory ceilings. The first is the roof, the level the kernels' data
        streams from (main memory); the others (caches) are drawn dashed.
    kernels : iterable of mappings, optional
        Measured kernels, see :func:`add_roofline_kernels`.
    others : iterable of mappings, optional
        Rooflines of other machines, each with ``name``, ``peak_gflops``,
        ``bandwidth_gbs`` and ``source`` (a citation, required: published
        ceilings are the vendor's claims, or another run's measurement).
        Drawn dotted; their sources are written under the plot.
    meta : dict, optional
        Hardware card of the machine whose ceilings these are.
    intensity_range : (float, float), optional
        x-axis range in FLOP/byte (default: wide enough for every ridge and kernel).

    Returns
    -------
    plotly Figure
        Log-log: arithmetic intensity (FLOP/byte) against GFLOP/s.

    Examples
    --------
    >>> fig = roofline({"BLAS float64": 100.0}, {"DRAM": 20.0},
    ...                kernels=[{"name": "triad", "intensity": 2 / 24, "gflops": 1.6}])
    """
    compute, memory = _named(compute, "GFLOP/s"), _named(memory, "GB/s")
    kernels, others = list(kernels), list(others)
    for other in others:
        missing = {"name", "peak_gflops", "bandwidth_gbs", "source"} - set(other)
        if missing:
            raise ValueError(f"other roofline {other.get('name', other)!r} lacks {sorted(missing)}; "
                             "published ceilings need a source")
    (top_name, top), (main_name, main) = compute[0], memory[0]
    ridges = [ridge_intensity(p, b) for _, p in compute for _, b in memory]
    ridges += [ridge_intensity(o["peak_gflops"], o["bandwidth_gbs"]) for o in others]
    if intensity_range is None:
        points = ridges + [_kernel_point(k)[1] for k in kernels]
        intensity_range = (min([1 / 32] + [x / 2 for x in points]), max([64] + [x * 4 for x in points]))
    grid = _log_grid(*intensity_range)

    fig = figure(title, "arithmetic intensity (FLOP/byte)", "performance (GFLOP/s)", log_x=True, log_y=True,
                 height=600)
    _roof_line(fig, "roofline", top, main, grid, {"color": "#222", "width": 3}, "roof",
               f"{top_name}: {top:.3g} GFLOP/s<br>{main_name}: {main:.3g} GB/s")
    for i, (name, peak) in enumerate(compute[1:]):
        _roof_line(fig, name, peak, main, grid, {"color": color(i + 2), "width": 1.5, "dash": "dash"}, "compute",
                   f"compute ceiling {peak:.3g} GFLOP/s")
    for i, (name, bandwidth) in enumerate(memory[1:]):
        _roof_line(fig, name, top, bandwidth, grid,
                   {"color": "#888", "width": 1.5, "dash": ["dash", "dashdot", "longdash"][i % 3]}, "memory",
                   f"memory ceiling {bandwidth:.3g} GB/s")
    for i, other in enumerate(others):
        peak, bandwidth = float(other["peak_gflops"]), float(other["bandwidth_gbs"])
        _roof_line(fig, other["name"], peak, bandwidth, grid, {"color": color(i + 5), "width": 2, "dash": "dot"},
                   "other", f"{peak:.3g} GFLOP/s, {bandwidth:.3g} GB/s<br>source: {other['source']}")
    # Many entries: a vertical legend beside the plot, grouped, instead of the book's row above it.
    fig.update_layout(legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
                              "groupclick": "toggleitem", "font": {"size": 11}})
    add_roofline_kernels(fig, kernels)
    if meta is not None:
        add_card(fig, meta, label)
    for other in others:
        add_note(fig, f"{other['name']}: {other['source']}")
    return fig


def roofline_inputs(records):
    """Split the records of a roofline data file (``data/ch02/roofline.json``) into the
    ``compute``, ``memory`` and ``kernels`` arguments of :func:`roofline`.

    Each record has ``kind`` (``"compute"``, ``"memory"`` or ``"kernel"``) and
    ``name``; compute ceilings carry ``gflops``, memory ceilings ``gbs``,
    kernels ``intensity``, ``gflops`` and optionally ``gflops_mad`` and ``note``.
    """
    parts = {"compute": {}, "memory": {}, "kernels": []}
    for record in records:
        kind = record.get("kind")
        if kind == "compute":
            parts["compute"][record["name"]] = float(record["gflops"])
        elif kind == "memory":
            parts["memory"][record["name"]] = float(record["gbs"])
        elif kind == "kernel":
            parts["kernels"].append({key: record[key] for key in ("name", "intensity", "gflops", "gflops_mad", "note")
                                     if key in record})
        else:
            raise ValueError(f"roofline record {record.get('name')!r} has unknown kind {kind!r}")
    return parts
