"""book.plots and book.site: figures carry units and cards; the site renders them offline."""


from book import plots, site
from book.timing import BenchResult

META = {"cpu_model": "CPU A", "usable_cpus": 2, "numpy": "2.4", "numba": "0.68"}


def result(meta=META, kernels=("list", "numpy")):
    records = [{"kernel": k, "n": n, "loops": 1, "times_s": [n * (i + 1) * 1e-9] * 3,
                "first_call_s": 0.0, "compile_s": 0.0} for i, k in enumerate(kernels) for n in (10, 100)]
    return BenchResult(records, meta)


def card_text(fig):
    return [a.text for a in fig.layout.annotations if a.name == "card"][0]


def test_latency_plot_has_units_errors_and_card():
    fig = result().plot(per_element=True)
    assert [t.name for t in fig.data] == ["list", "numpy"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "time per element (s)" in fig.layout.yaxis.title.text
    assert list(fig.data[1].y) == [2e-9, 2e-9]
    assert fig.data[0].error_y.visible
    assert "CPU A" in card_text(fig)


def test_reference_overlay_is_dotted_with_its_own_card():
    reference = result(dict(META, cpu_model="CPU B"), kernels=("numpy", "numba"))
    fig = result().plot(reference=reference)
    dotted = [t for t in fig.data if t.line.dash == "dot"]
    assert [t.name for t in dotted] == ["numpy (book's reference)", "numba (book's reference)"]
    numpy_live = [t for t in fig.data if t.name == "numpy"][0]
    assert dotted[0].line.color == numpy_live.line.color  # same kernel, same colour
    text = card_text(fig)
    assert "This run: CPU A" in text and "Book's reference: CPU B" in text


def test_figure_infers_category_axes():
    fig = plots.figure("t", "kernel", "time (s)")
    assert fig.layout.xaxis.type == "-"


def test_site_renders_plotly_json_against_local_plotly():
    class Renderer:
        js = {}

        def add_js_file(self, key, uri, kwargs):
            self.js[key] = uri

    class Data:
        mime_type = site.PLOTLY_MIME
        content = {"data": [{"type": "scatter", "name": "</script><b>"}], "layout": {"height": 300}}
        cell_index, output_index = 3, 0

    renderer = Renderer()
    [node] = site.PlotlyMimeRenderer.handle_mime(renderer, Data(), inline=False)
    html = node.astext()
    assert renderer.js == {"plotly": "plotly.min.js"}
    assert "</script><b>" not in html and "<\\/script><b>" in html  # cannot close the script early
    assert 'style="height:300px' in html and '"responsive": true' in html
    assert html.count("<script>") == 1

    Data.mime_type = "text/html"
    assert site.PlotlyMimeRenderer.handle_mime(renderer, Data(), inline=False) is None


def test_plotly_mime_outranks_html_on_html_builders():
    priorities = {(b, m): p for b, m, p in site.PlotlyMimeRenderer.mime_priority_overrides}
    assert priorities[("html", site.PLOTLY_MIME)] < 10  # text/html is 10 in myst-nb
