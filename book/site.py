"""Build-time glue between the book's pages and Jupyter Book (used by ``_config.yml``).

Plotly figures leave a kernel as ``application/vnd.plotly.v1+json``, which
myst-nb does not render (it warns and drops them). :class:`PlotlyMimeRenderer`
is a myst-nb mime-render plugin (registered in ``pyproject.toml``) that turns
each one into a ``<div>`` drawn by a single local copy of plotly.js, which
:func:`setup` copies into the site's ``_static`` folder: no CDN, and a page
with a chart carries only its figure's data. Every page also links the
stylesheet of the book's Korean web font (:mod:`book.fonts`).
"""

import hashlib
import json
import shutil
from pathlib import Path

from book import fonts

PLOTLY_MIME = "application/vnd.plotly.v1+json"
STATIC = Path(__file__).parent / "static"
# myst-nb adds these to pages that embed widget state; by default it fetches
# them from cdnjs and jsDelivr. (Not under the book's _static/: Jupyter Book
# adds every .js there to every page.)
WIDGET_JS = {"vendor/require.js": {}, "vendor/require-paths.js": {}, "vendor/embed-amd.js": {}}
PLOTLY_JS = "plotly.min.js"
# Above text/html (10), so a bundle that also carries HTML still renders as a figure.
HTML_BUILDERS = ("html", "dirhtml", "singlehtml")


def figure_html(figure, div_id):
    """HTML for one figure dict (``data``, ``layout``, optional ``config``)."""
    config = {"responsive": True, "displaylogo": False, **figure.get("config", {})}
    height = figure.get("layout", {}).get("height") or 450
    args = ", ".join(json.dumps(figure.get(key, default), separators=(",", ":")).replace("</", "<\\/")
                     for key, default in (("data", []), ("layout", {})))
    return (f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px;width:100%"></div>'
            f'<script>Plotly.newPlot("{div_id}", {args}, {json.dumps(config)});</script>')


class PlotlyMimeRenderer:
    """myst-nb plugin: render plotly's mime type against the site's own plotly.js."""

    mime_priority_overrides = [(builder, PLOTLY_MIME, 5) for builder in HTML_BUILDERS]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        from docutils import nodes

        figure = data.content if isinstance(data.content, dict) else json.loads(data.string)
        digest = hashlib.sha1(json.dumps(figure, sort_keys=True).encode()).hexdigest()[:10]
        div_id = f"plotly-{data.cell_index}-{data.output_index}-{digest}"
        # No async/defer: plotly.js loads in <head> before the figure's inline script runs.
        renderer.add_js_file("plotly", PLOTLY_JS, {})
        return [nodes.raw("", figure_html(figure, div_id), format="html", classes=["output", "text_html"])]


def _copy_plotly_js(app, exception):
    if exception is None and app.builder.format == "html":
        import plotly

        source = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
        shutil.copy2(source, Path(app.outdir) / "_static" / PLOTLY_JS)


def _use_local_assets(app, config):
    config.html_static_path.append(str(STATIC))
    config.nb_ipywidgets_js = WIDGET_JS


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Jupyter Book registers some inline scripts twice (filename None, then '');
    the second ``const THEBE_JS_URL`` is a console error on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _use_local_assets)
    app.add_css_file(fonts.CSS_FILE.relative_to(STATIC).as_posix())
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("build-finished", _copy_plotly_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
