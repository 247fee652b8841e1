"""The built site in a real browser, with every host but 127.0.0.1 blocked.

Each page must load without console errors, draw every plotly figure, and
show a tooltip on hover; search must work; widgets must render from the
site's own copies of their scripts.
"""

import functools
import http.server
import re
import threading
from urllib.parse import urlparse

import pytest

from book import fonts

from conftest import ROOT, toc_files

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    assert site.returncode == 0, "the site did not build; see test_build"
    handler = functools.partial(QuietHandler, directory=str(site.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page load with the network cut to 127.0.0.1, recording what went wrong."""

    def __init__(self, browser, url):
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors, self.blocked = [], []
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status} {r.url}"))
        self.context.route("**/*", self._route)
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _route(self, route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def close(self):
        self.context.close()


def hover_shows_tooltip(page, figure):
    """Move the real mouse over the plot area until plotly shows a tooltip.

    Plotly computes hover from the pointer position (not from the element
    under it), so a marker's centre works, and a line without markers is
    found by sweeping the plot area.
    """
    tooltip = figure.locator(".hoverlayer .hovertext")
    boxes = [box for box in (point.bounding_box() for point in figure.locator(".point").all()[:30])
             if box and box["width"] * box["height"] > 1]
    targets = [(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2) for box in boxes]
    area = figure.locator(".nsewdrag").first.bounding_box()
    targets += [(area["x"] + area["width"] * fx / 20, area["y"] + area["height"] * fy / 10)
                for fy in range(1, 10) for fx in range(1, 20)]
    try:
        for x, y in targets:
            page.mouse.move(x, y)
            if tooltip.count():
                return True
        return False
    finally:
        page.mouse.move(0, 0)


def html_pages():
    return [f"{name}.html" for name in toc_files()]


@pytest.mark.parametrize("page_path", html_pages())
def test_page_renders_offline(browser, server, page_path):
    visit = Visit(browser, f"{server}/{page_path}")
    try:
        page = visit.page
        figures = page.locator(".plotly-graph-div")
        for i in range(figures.count()):
            figure = figures.nth(i)
            figure.scroll_into_view_if_needed()
            assert figure.locator(".main-svg").count() > 0, f"figure {i} on {page_path} did not render"
            assert hover_shows_tooltip(page, figure), f"no tooltip on hover over figure {i} of {page_path}"
        assert not visit.blocked, f"{page_path} requested other hosts: {visit.blocked}"
        assert not visit.errors, f"console errors on {page_path}: {visit.errors}"
    finally:
        visit.close()


def test_pages_have_figures(site):
    """The measuring page has several figures; none was dropped by the build."""
    html = (site.html / "chapters" / "measuring_honestly.html").read_text()
    assert html.count('class="plotly-graph-div"') >= 4
    assert "skipping unknown output mime type" not in site.log


def test_search_finds_a_term(browser, server):
    visit = Visit(browser, f"{server}/search.html?q=median")
    try:
        results = visit.page.locator("ul.search li")
        results.first.wait_for(timeout=10000)
        assert any("measuring_honestly" in results.nth(i).inner_html() for i in range(results.count()))
        assert not visit.errors, visit.errors
    finally:
        visit.close()


def test_linked_widgets_work_without_a_kernel(browser, server):
    visit = Visit(browser, f"{server}/chapters/how_to_use.html")
    try:
        page = visit.page
        slider = page.locator(".widget-slider .noUi-handle").first
        slider.wait_for(timeout=10000)
        shown = page.locator(".widget-text input").first
        assert shown.input_value() == "6"
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('.widget-text input').value === '7'", timeout=5000)
        assert not visit.blocked and not visit.errors, (visit.blocked, visit.errors)
    finally:
        visit.close()


def source_of(name):
    """The MyST source of a TOC entry (a lab's student version comes from its master)."""
    return ROOT / (name.replace("labs/_student/", "labs/") + ".md")


KOREAN = re.compile(fonts.CHARACTER_CLASS.pattern)
KOREAN_PAGES = [name for name in toc_files() if KOREAN.search(source_of(name).read_text())]

# Marks (up to 40) visible elements of the article whose own text holds Korean, and returns how many Korean
# characters each one's own text nodes hold, with the web font's load status.
MARK_KOREAN = """async (pattern) => {
  await document.fonts.ready;
  const korean = new RegExp(pattern, "g");
  const counts = new Map();
  const walker = document.createTreeWalker(document.querySelector("article") || document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node && counts.size < 40; node = walker.nextNode()) {
    const element = node.parentElement;
    const found = (node.data.match(korean) || []).length;
    if (found && element.getClientRects().length && element.checkVisibility()) {
      counts.set(element, (counts.get(element) || 0) + found);
    }
  }
  const expected = [];
  for (const [element, found] of counts) {
    element.setAttribute("data-korean-probe", expected.length);
    expected.push({text: element.textContent.trim().slice(0, 60), found});
  }
  const faces = [...document.fonts].filter(face => face.family.replace(/"/g, "") === "__FAMILY__");
  const loaded = performance.getEntriesByType("resource").map(entry => entry.name);
  return {expected, status: faces.map(face => face.status), fonts: loaded.filter(url => url.endsWith(".woff2"))};
}""".replace("__FAMILY__", fonts.FAMILY)


@pytest.mark.parametrize("page_path", [f"{name}.html" for name in KOREAN_PAGES])
def test_korean_is_drawn_with_the_book_s_web_font(browser, server, page_path):
    """Every Korean character on the page is drawn from the site's own font file.

    This machine may have a CJK system font (Debian's fonts-noto-cjk), which would
    hide a missing web font, so the test asks Chromium (DevTools' CSS domain)
    which font drew each element's glyphs: the web font is the only "custom" one.
    """
    visit = Visit(browser, f"{server}/{page_path}")
    try:
        found = visit.page.evaluate(MARK_KOREAN, fonts.CHARACTER_CLASS.pattern)
        assert found["expected"], f"no Korean text is visible on {page_path}"
        assert found["status"] == ["loaded"], f"the {fonts.FAMILY} face did not load: {found['status']}"
        assert [url for url in found["fonts"] if url.startswith(server) and fonts.FONT_FILE.name in url]
        cdp = visit.context.new_cdp_session(visit.page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        for i, expected in enumerate(found["expected"]):
            node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": f'[data-korean-probe="{i}"]'})
            used = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
            web_font_glyphs = sum(font["glyphCount"] for font in used if font["isCustomFont"])
            assert web_font_glyphs == expected["found"], (
                f"{page_path}: of the {expected['found']} Korean characters in {expected['text']!r}, "
                f"{web_font_glyphs} were drawn with the web font; fonts used: {used}")
        assert not visit.errors, visit.errors
    finally:
        visit.close()
