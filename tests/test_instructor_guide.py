"""The instructor guide's commands work as shown, and its page shows a real graded class."""

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PAGE = ROOT / "chapters" / "instructor_guide.md"


def shown_commands():
    """Every command line in the page's ```bash blocks, without its trailing comment."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def as_run_here(command):
    """The page says `.venv/bin/...`; run the same program from this test's environment."""
    words = shlex.split(command)
    if words[0] == ".venv/bin/python":
        words[0] = sys.executable
    elif words[0].startswith(".venv/bin/"):
        words[0] = os.path.join(os.path.dirname(sys.executable), words[0].removeprefix(".venv/bin/"))
    return words


def test_the_page_shows_every_step():
    commands = shown_commands()
    assert "make assignments" in commands
    assert any(c.startswith(".venv/bin/python -m book.labs assign ") for c in commands)
    assert any(c.startswith(".venv/bin/python -m book.labs grade ") for c in commands)
    assert any(c.startswith(".venv/bin/otter run ") for c in commands)
    text = PAGE.read_text()
    for needed in ("Python 3.11", "numba", "nbgitpuller", "Binder", "zip", "Gradescope", "otter run",
                   "grades.csv", "labs/README.md"):
        assert needed in text, needed


def test_make_assignments_runs_the_labs_command():
    out = subprocess.run(["make", "-n", "assignments"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "-m book.labs assign" in out.stdout


@pytest.fixture(scope="module")
def instructor(tmp_path_factory):
    """A fresh instructor folder: the guide's commands run in order, with Alice and Bob's work."""
    here = tmp_path_factory.mktemp("instructor")
    env = {**os.environ, "BOOK_ASSIGN_DIR": str(here / "_build" / "assign")}
    ran = {}
    for command in shown_commands():
        if command.startswith("make "):
            continue  # checked above; it runs the same `python -m book.labs assign`
        words = as_run_here(command)
        if "grade" in words or words[-1].endswith(".ipynb"):
            release = here / "_build" / "assign" / "lab_00_warmup"
            (here / "submissions").mkdir(exist_ok=True)
            shutil.copy(release / "lab_00_warmup-solution.ipynb", here / "submissions" / "alice.ipynb")
            shutil.copy(release / "student" / "lab_00_warmup.ipynb", here / "submissions" / "bob.ipynb")
        cwd = here if "assign" not in words else ROOT  # `assign` runs in the book's checkout
        ran[command] = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return here, ran


def test_every_command_of_the_guide_succeeds(instructor):
    _, ran = instructor
    assert ran, "no commands ran"
    for command, result in ran.items():
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


def test_assign_produces_the_release_the_guide_lists(instructor):
    here, _ = instructor
    release = here / "_build" / "assign" / "lab_00_warmup"
    for name in ("student/lab_00_warmup.ipynb", "student/book/grading.py", "lab_00_warmup-student.zip",
                 "lab_00_warmup-autograder.zip", "lab_00_warmup-solution.ipynb"):
        assert (release / name).exists(), name


def test_grade_writes_the_csv_of_scores(instructor):
    here, _ = instructor
    rows = {row["submission"]: row for row in csv.DictReader(open(here / "grades.csv"))}
    assert set(rows) == {"alice.ipynb", "bob.ipynb"}
    assert rows["alice.ipynb"]["total"] == rows["alice.ipynb"]["possible"] != "0"
    assert rows["bob.ipynb"]["total"] == "0"
    assert float(rows["alice.ipynb"]["speedup:sum_squares_fast"]) >= 10
    feedback = (here / "grades_feedback" / "bob.txt").read_text()
    assert "q2: 0 / 3" in feedback and "is None" in feedback


def test_otter_run_grades_one_submission(instructor):
    here, _ = instructor
    results = json.loads((here / "results" / "results.json").read_text())
    scores = {test["name"]: test.get("score") for test in results["tests"] if "score" in test}
    possible = {test["name"]: test.get("max_score") for test in results["tests"] if "score" in test}
    assert scores and scores == possible, results


@pytest.mark.build
def test_page_shows_a_graded_class(site):
    page = (site.html / "chapters" / "instructor_guide.html").read_text()
    for name in ("alice.ipynb", "bob.ipynb", "carol.ipynb", "speedup:sum_squares_fast"):
        assert name in page, name
    assert "too slow: speedup" in page  # Carol's feedback, printed on the page
    assert "Measured on:" in page


def test_guide_covers_the_grading_options():
    text = PAGE.read_text()
    parser_help = subprocess.run([sys.executable, "-m", "book.labs", "grade", "--help"], capture_output=True,
                                 text=True, check=True).stdout
    for option in re.findall(r"`(--[a-z-]+)", text):
        assert option in parser_help, f"the guide mentions {option}, which `grade` does not have"
