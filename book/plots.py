"""Interactive plots with units and a hardware card.

Figures are plain plotly figures. In JupyterLab they render through plotly's
own extension; on the website the book's myst-nb plugin (``book.site``) draws
them against one local copy of plotly.js, so they work offline. Every figure
of a measurement carries the hardware card of the machine that made it.
"""

import textwrap

import plotly.graph_objects as go

from book.hardware import card

# One colour per kernel, the same on every figure of a page.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def color(i):
    return PALETTE[i % len(PALETTE)]


def add_card(fig, meta, label="Measured on"):
    """Write the hardware card under the plot (several cards stack)."""
    cards = fig.layout.meta.get("cards", []) if isinstance(fig.layout.meta, dict) else []
    cards = cards + ["<br>".join(textwrap.wrap(f"{label}: {card(meta)}", 120))]
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
    """Log-log latency plot of a :class:`book.timing.BenchResult`.

    Parameters
    ----------
    result : BenchResult
    per_element : bool
        Plot time per element (median / n) instead of time per call.
    reference : BenchResult or Dataset, optional
        Another run (e.g. the book's reference data) drawn dashed, with its
        own hardware card: "the book's machine vs yours".
    """
    unit = "time per element (s)" if per_element else "time per call (s)"
    fig = figure(title, x_title, f"{unit}, median ± MAD", log_x=True, log_y=True)
    _latency_traces(fig, result, per_element, "", "solid")
    add_card(fig, result.meta, label)
    if reference is not None:
        reference = reference.bench() if hasattr(reference, "bench") else reference
        kernels = result.kernels
        # Same colour for the same kernel name in both runs.
        for j, kernel in enumerate(reference.kernels):
            sub = type(reference)([r for r in reference.records if r["kernel"] == kernel], reference.meta)
            offset = kernels.index(kernel) if kernel in kernels else len(kernels) + j
            _latency_traces(fig, sub, per_element, f" ({reference_label.lower()})", "dot", offset)
        add_card(fig, reference.meta, reference_label)
    return fig
