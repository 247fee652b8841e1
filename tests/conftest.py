"""Shared fixtures: the repository's pages and the quick-mode build of the site."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# BOOK_BUILD_DIR lets parallel checkouts or sessions keep separate builds.
QUICK_BUILD = Path(os.environ.get("BOOK_BUILD_DIR", ROOT / "_build" / "quick"))


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


@pytest.fixture(scope="session")
def site():
    """The website built in quick mode, once per session, with the flags of `make book`."""
    # The website shows the labs' student versions, generated from the masters as `make book` does.
    labs = subprocess.run([sys.executable, "-m", "book.labs", "student"], cwd=ROOT, capture_output=True, text=True)
    if labs.returncode:
        pytest.fail(f"python -m book.labs student failed:\n{labs.stdout}{labs.stderr[-5000:]}")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(ROOT), *build_flags(), "--path-output", str(QUICK_BUILD)]
    env = {**os.environ, "BOOK_QUICK": "1"}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    QUICK_BUILD.mkdir(parents=True, exist_ok=True)
    (QUICK_BUILD / "build.log").write_text(log)
    return Site(QUICK_BUILD / "_build" / "html", proc.returncode, log)
