"""Hardware-aware compression: the reference data tells the chapter's story.

Ratios are measured within one run (one data file); tests over the reference files skip until
``make data`` has written them.
"""

import re

import pytest

from book import data

from conftest import ROOT

PAGE = "chapters/compression.md"


def published():
    return re.findall(r'data\.publish\([^,]+,\s*"ch07/([\w.-]+)"', (ROOT / PAGE).read_text())


def load(name):
    path = data.path("ch07", name)
    if not path.exists():
        pytest.skip(f"data/ch07/{name} is not published yet (make data)")
    return data.load(path)


def test_readme_names_every_file_the_page_publishes():
    readme = (ROOT / "data" / "ch07" / "README.md").read_text()
    for name in published():
        assert name in readme, f"data/ch07/README.md does not describe {name}"
