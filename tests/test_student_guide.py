"""The student guide's path works: checks give pass/fail feedback (on the page and in JupyterLab),
and the zip that the export cell makes is what the grader grades."""

import copy
import csv
import os
import re
import shutil
import zipfile

import nbformat
import pytest
from nbclient import NotebookClient
from test_browser import CHROMIUM, CHROMIUM_ARGS
from test_jupyterlab import jupyterlab, open_notebook

from book import labs

from conftest import ROOT

PAGE = ROOT / "chapters" / "student_guide.md"
LAB = "lab_00_warmup"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return labs.assign(LAB, run_tests=False, out=tmp_path_factory.mktemp("assign"))


def answered(release, wrong=None):
    """The student notebook with every answer cell filled in from the solutions (as a student would),
    optionally with ``wrong`` replacing the answer of a question."""
    student = nbformat.read(release.student, as_version=4)
    solution = nbformat.read(release.solution, as_version=4)
    assert len(student.cells) == len(solution.cells)
    nb = copy.deepcopy(student)
    for mine, reference in zip(nb.cells, solution.cells):
        if "otter_answer_cell" in mine.metadata.get("tags", []):
            mine.source = reference.source
    if wrong:
        question, code = wrong
        check = next(i for i, c in enumerate(nb.cells) if c.source.strip() == f'grader.check("{question}")')
        nb.cells[check - 1].source = code
    return nb


def test_page_tells_how_to_check_and_submit():
    text = PAGE.read_text()
    for needed in ('grader.check("q2")', "grader.export(pdf=False)", "Binder", "JupyterHub", "zip",
                   "Restart Kernel and Run All", "time limit", "hidden tests"):
        assert needed in text, needed


def test_export_cell_makes_a_zip_that_grades_in_full(release, tmp_path):
    """A student answers, runs every cell including the export cell; the zip grades to full marks."""
    work = tmp_path / "student"
    work.mkdir()
    shutil.copytree(release.student.parent / "book", work / "book")  # as unzipped from the release
    nb = answered(release)
    nbformat.write(nb, work / f"{LAB}.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute(
        env={**os.environ, "BOOK_QUICK": "1"})
    zips = list(work.glob(f"{LAB}_*.zip"))
    assert len(zips) == 1, list(work.iterdir())
    with zipfile.ZipFile(zips[0]) as archive:
        assert f"{LAB}.ipynb" in archive.namelist()
    results = [o for c in nb.cells if c.source.startswith("grader.check(") for o in c.outputs
               if o.output_type == "execute_result"]  # (a speed check also prints its report)
    assert len(results) == len(labs.questions(LAB)), results
    assert all("All test cases passed" in o.data["text/plain"] for o in results), results

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(zips[0], submissions / "dana.zip")
    graded = labs.grade(release.autograder, [submissions], tmp_path / "grades.csv", progress=False)
    assert graded[0].total == graded[0].possible > 0, graded[0]
    row = next(csv.DictReader(open(tmp_path / "grades.csv")))
    assert row["submission"] == "dana.zip" and row["total"] == row["possible"]


@pytest.mark.build
def test_page_shows_real_feedback(site):
    page = (site.html / "chapters" / "student_guide.html").read_text()
    assert "expected a NumPy array, got list of 5 items" in page  # the first attempt's failure
    assert re.search(r"q2</pre></strong> passed!", page)  # the fix (otter adds a random emoji)
    assert "too slow: speedup" in page and "Measured on:" in page  # the speed check's report


@pytest.mark.browser
def test_jupyterlab_shows_pass_and_fail(release, lab_server):
    """In JupyterLab, a student who runs all cells sees a failure for a wrong answer (question 1)
    and a pass for a right one (question 2) under the check cells."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    url, folder = lab_server
    shutil.copytree(release.student.parent / "book", folder / "book", dirs_exist_ok=True)
    nb = answered(release, wrong=("q1", "note_speedup = 0.1292 - 0.0247"))
    nbformat.write(nb, folder / f"{LAB}.ipynb")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_notebook(page, f"{url}/lab/tree/{folder.name}/{LAB}.ipynb", playwright_api.TimeoutError)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()  # Run → Run All Cells
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        outputs = page.locator(".jp-OutputArea-output")
        try:
            page.get_by_text(re.compile(r"passed!")).first.wait_for(timeout=120000)
        finally:
            text = "\n".join(outputs.all_inner_texts())
            page.screenshot(path=str(folder / "jupyterlab.png"))  # kept until teardown
            browser.close()
    assert "q1 results" in text and "Test case failed" in text and "note_speedup" in text, text
    assert re.search(r"q2\s+passed!", text), text


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """JupyterLab serving the book's checkout, with a scratch folder for the student's notebook."""
    folder = ROOT / "_build" / f"student_guide_test_{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    with jupyterlab(folder.parent, tmp_path_factory.mktemp("home")) as url:
        yield url, folder
    shutil.rmtree(folder, ignore_errors=True)
