"""Shared fixtures (the repository's pages, the quick-mode build of the site) and the
per-stage timing summary that ends every run, so CI's budget is visible in its log."""

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numba
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# BOOK_BUILD_DIR lets parallel checkouts or sessions keep separate builds.
QUICK_BUILD = Path(os.environ.get("BOOK_BUILD_DIR", ROOT / "_build" / "quick"))
# Stages of a run, in the order the summary prints them. A test's stage is its marker
# (browser, build, labs); tests of the lab machinery are in the labs stage by file.
STAGES = ("lint", "unit", "labs", "build", "browser")
LAB_FILES = {"test_labs.py", "test_grading.py", "test_instructor_guide.py", "test_student_guide.py"}
STAGE_SECONDS = defaultdict(float)
STAGE_TESTS = defaultdict(int)
SITE_BUILD = {"seconds": 0.0, "charged": True}
# Tests of book/ run parallel numba kernels (prange) in this one process. GNU OpenMP, numba's
# default layer where present, does not survive fork, so book.grading would stop isolating calls
# for every test after the first parallel kernel; the work-queue layer keeps the tests independent
# of their order. Set in the environment because numba re-reads it (and resets the layer) whenever
# the environment changes; the site build below gets numba's default back.
os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
numba.config.THREADING_LAYER = "workqueue"


def toc_files():
    """Every file the table of contents names, in order, without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                if "file" in child:
                    files.append(child["file"])
                walk(child)

    walk(toc)
    return files


def build_flags():
    """The flags of `make book` (one source of truth: the Makefile)."""
    match = re.search(r"^BUILD_FLAGS\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    return match.group(1).split()


@dataclass
class Site:
    html: Path
    returncode: int
    log: str


def stage(item):
    for name in ("browser", "build", "labs", "lint"):
        if item.get_closest_marker(name):
            return name
    return "unit"


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in LAB_FILES:
            item.add_marker(pytest.mark.labs)


def pytest_runtest_makereport(item, call):
    seconds = call.duration
    if call.when == "setup" and not SITE_BUILD["charged"]:
        # The one quick build is its own stage, whichever test happened to need it first.
        SITE_BUILD["charged"] = True
        seconds -= SITE_BUILD["seconds"]
        STAGE_SECONDS["build"] += SITE_BUILD["seconds"]
    STAGE_SECONDS[stage(item)] += seconds
    if call.when == "call":
        STAGE_TESTS[stage(item)] += 1


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    terminalreporter.section("time per stage")
    for name in STAGES:
        if name in STAGE_SECONDS:
            note = f" (quick build of the site: {SITE_BUILD['seconds']:.0f} s)" if name == "build" else ""
            write(f"{name:<8} {STAGE_SECONDS[name]:7.1f} s  {STAGE_TESTS[name]:4d} tests{note}")
    write(f"{'total':<8} {sum(STAGE_SECONDS.values()):7.1f} s  {sum(STAGE_TESTS.values()):4d} tests")


def glued_text(site, page):
    """The values a page glued in the quick build, as the text its prose shows (``page``: a stem under chapters/)."""
    path = QUICK_BUILD / "_build" / "jupyter_execute" / "chapters" / f"{page}.glue.json"
    assert site.returncode == 0, "the site did not build; see test_build"
    outputs = json.loads(path.read_text())
    return {name: next(iter(output["data"].values())).strip("'") for name, output in outputs.items()}


@pytest.fixture(scope="session")
def site():
    """The website built in quick mode, once per session, with the flags of `make book`."""
    started = time.perf_counter()
    # The website shows the labs' student versions, generated from the masters as `make book` does.
    labs = subprocess.run([sys.executable, "-m", "book.labs", "student"], cwd=ROOT, capture_output=True, text=True)
    if labs.returncode:
        pytest.fail(f"python -m book.labs student failed:\n{labs.stdout}{labs.stderr[-5000:]}")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(ROOT), *build_flags(), "--path-output", str(QUICK_BUILD)]
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_THREADING_LAYER"} | {"BOOK_QUICK": "1"}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    QUICK_BUILD.mkdir(parents=True, exist_ok=True)
    (QUICK_BUILD / "build.log").write_text(log)
    SITE_BUILD.update(seconds=time.perf_counter() - started, charged=False)
    return Site(QUICK_BUILD / "_build" / "html", proc.returncode, log)
