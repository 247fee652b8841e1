"""Students' path: a page opens in JupyterLab as a notebook, runs, and draws its plot."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS

from conftest import ROOT

pytestmark = pytest.mark.browser
OVERRIDES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


@contextlib.contextmanager
def jupyterlab(root_dir, home):
    """A JupyterLab server on 127.0.0.1 without a token, serving ``root_dir``; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "BOOK_QUICK": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root_dir}"],
        cwd=root_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def open_notebook(page, url, timeout_error):
    """Open a notebook page and start its kernel, as a student does (clicking "Select" if asked)."""
    page.goto(url)
    page.locator(".jp-Notebook").first.wait_for(timeout=60000)
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        accept.wait_for(timeout=10000)
        accept.click()
    except timeout_error:
        pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with jupyterlab(ROOT, tmp_path_factory.mktemp("home")) as url:
        yield url


def test_make_installs_the_notebook_viewer_setting():
    assert OVERRIDES.exists(), "run `make book` or `make test`: the venv lacks JupyterLab's jupytext setting"
    assert "Jupytext Notebook" in OVERRIDES.read_text()


def test_page_opens_as_notebook_and_runs(lab):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_notebook(page, f"{lab}/lab/tree/chapters/how_to_use.md", playwright_api.TimeoutError)
        # Run the first code cell: a plotly figure, drawn by plotly's JupyterLab renderer.
        page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")
        page.locator(".jp-CodeCell .js-plotly-plot .main-svg").first.wait_for(timeout=90000)
        browser.close()
