"""Every lab master grades as designed (labs/README.md), checked automatically for each labs/lab_*.md.

For each lab, one batch of submissions is graded the way an instructor grades
(``book.labs.grade``: ``otter run`` per submission, no Docker): the reference
solution, the unmodified student release, the master's planted answers, and
generic faulty submissions (code that raises, never returns, returns the wrong
shape, tampers with the checks, prints too much, kills its kernel, or is not
a notebook). The speed-graded questions are also run repeatedly, reference and
baseline-speed answer alike. Releases are generated once per session.
"""

import copy
import html
import json
import os
import re
import shutil
import textwrap
import zipfile

import nbformat
import pytest

from book import labs
from conftest import ROOT

LABS = [path.stem for path in labs.masters()]
# Time limits for the faulty submissions (the others get the defaults: 10 s per call, 120 s per cell)
CALL_LIMIT_S = 3  # per call of student code in a test
CELL_LIMIT_S = 10  # per notebook cell
SPEED_RUNS = 5  # repeated runs of each speed-graded question, reference and baseline each


@pytest.fixture(scope="session")
def releases(tmp_path_factory):
    out = tmp_path_factory.mktemp("assign")
    return {lab: labs.assign(lab, run_tests=False, out=out) for lab in LABS}


def check_cell_index(nb, question):
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip() == f'grader.check("{question}")':
            return index
    raise AssertionError(f"no grader.check({question!r}) cell: every question needs its check cell")


def with_cells(nb, insertions):
    """A copy of ``nb`` with code cells inserted just before the check cells of their questions."""
    nb = copy.deepcopy(nb)
    for question, code in insertions:
        nb.cells.insert(check_cell_index(nb, question), nbformat.v4.new_code_cell(code))
    return nb


def function_names(lab, question):
    """The names a question's tests take that the master defines as functions (the rest are values)."""
    master = labs.master_path(lab).read_text()
    return [name for name in question.names if re.search(rf"^\s*def {name}\(", master, re.M)]


# Generic faults: each replaces every answer of every question the same way. For a function
# answer and for a value answer (a number, an array) the code differs.
FAULTS = {
    "raises": ("def {name}(*args, **kwargs):\n    raise RuntimeError('planted failure')",
               "del {name}\n{name} = 1 / 0"),
    "loops": ("def {name}(*args, **kwargs):\n    while True:\n        pass",
              "del {name}\nwhile True:\n    pass"),
    "wrong_shape": ("import numpy as np\n\ndef {name}(*args, **kwargs):\n    return np.zeros((3, 1))",
                    "import numpy as np\n{name} = np.zeros((3, 1))"),
}
COMPILED_LOOP = textwrap.dedent("""\
    import numba

    @numba.njit
    def {name}(*args):
        i, n = 0, 1
        while i < n:
            n += 1
        return 0.0
    """)
TAMPER = textwrap.dedent("""\
    import book.grading
    for _name in list(book.grading.__all__):
        if _name[0].islower():
            setattr(book.grading, _name, lambda *args, **kwargs: None)
    del grader
    """)


def build_submissions(lab, release, folder):
    """Write the lab's batch of submissions into ``folder``; return what each should score."""
    solution = nbformat.read(release.solution, as_version=4)
    questions = labs.questions(lab)
    faulty = folder.with_name(folder.name + "_faulty")
    folder.mkdir()
    faulty.mkdir()
    expect = {}

    shutil.copy(release.solution, folder / "reference.ipynb")
    shutil.copy(release.student, folder / "student.ipynb")

    # planted answers, at most one per question in each notebook
    groups = []
    for plant in labs.planted(lab):
        group = next((g for g in groups if all(p.question != plant.question for p in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(plant)
    for i, group in enumerate(groups):
        name = f"planted_{i}.ipynb"
        nbformat.write(with_cells(solution, [(p.question, p.code) for p in group]), folder / name)
        expect[name] = group

    # generic faults
    for fault, (for_function, for_value) in FAULTS.items():
        cells = []
        for q in questions:
            functions = function_names(lab, q)
            for name in q.names:
                cells.append((q.name, (for_function if name in functions else for_value).format(name=name)))
        nbformat.write(with_cells(solution, cells), faulty / f"faulty_{fault}.ipynb")
    cells = []
    for q in questions:  # compiled loops, and one called at top level (it ignores interrupts)
        for name in function_names(lab, q):
            cells.append((q.name, COMPILED_LOOP.format(name=name)))
    if cells:
        first_question, _ = cells[0]
        first_function = function_names(lab, next(q for q in questions if q.name == first_question))[0]
        cells.append((first_question, f"{first_function}(1)"))
        nbformat.write(with_cells(solution, cells), faulty / "faulty_compiled_loop.ipynb")
    nbformat.write(with_cells(solution, [(questions[0].name, TAMPER)]), faulty / "faulty_tamper.ipynb")
    nbformat.write(with_cells(solution, [(questions[0].name, "print('x' * 100_000_000)"),
                                         (questions[-1].name, "import os\nos._exit(1)")]),
                   folder / "survives_output_and_kernel_death.ipynb")
    (faulty / "broken.ipynb").write_text('{"cells": [')
    return expect


@pytest.fixture(scope="module", params=LABS)
def batch(request, releases, tmp_path_factory):
    """One lab's batch of submissions, graded like an instructor would, with short time limits."""
    lab = request.param
    release = releases[lab]
    work = tmp_path_factory.mktemp(lab)
    expect = build_submissions(lab, release, work / "submissions")
    # Right and planted answers with the default limits; faulty ones with short limits, so that
    # hanging code costs seconds, not minutes. Two at a time: the speed checks still have their
    # margins (test_speed_question_... measures them alone).
    graded = labs.grade(release.autograder, [work / "submissions"], work / "grades.csv", jobs=2,
                        progress=False)
    graded += labs.grade(release.autograder, [work / "submissions_faulty"], work / "faulty.csv",
                         cell_time_limit_s=CELL_LIMIT_S, call_time_limit_s=CALL_LIMIT_S, jobs=2,
                         progress=False)
    by_name = {g.submission: g for g in graded}
    return {"lab": lab, "release": release, "graded": by_name, "expect": expect,
            "questions": labs.questions(lab), "csv": work / "faulty.csv", "work": work}


def show(graded):
    return json.dumps({"total": graded.total, "notes": graded.notes,
                       "reasons": {n: q["reason"] for n, q in graded.questions.items()}}, indent=1)


def test_reference_solution_earns_full_marks(batch):
    reference = batch["graded"]["reference.ipynb"]
    assert reference.status == "graded" and reference.possible > 0, show(reference)
    assert reference.total == reference.possible, show(reference)
    assert not reference.notes, show(reference)


def test_unmodified_student_release_earns_zero_on_every_question(batch):
    student = batch["graded"]["student.ipynb"]
    assert student.status == "graded", show(student)
    scored = {name: q["score"] for name, q in student.questions.items() if q["score"] > 0}
    assert not scored, f"the unanswered release scores points: {scored}\n{show(student)}"


def test_every_lab_plants_wrong_answers(batch):
    plants = labs.planted(batch["lab"])
    assert any(p.kind == "PLANTED" for p in plants), "a lab needs at least one `# PLANTED` answer"
    for q in batch["questions"]:
        if q.speed_graded:
            assert any(p.kind == "BASELINE" and p.question == q.name for p in plants), \
                f"{q.name} is speed-graded and needs a `# BASELINE {q.name}` answer"
        if q.hidden_tests:
            assert any(p.kind == "PLANTED" and p.question == q.name for p in plants), \
                f"{q.name} has hidden tests and needs a `# PLANTED {q.name}` answer that they catch"


def test_planted_answers_pass_the_public_checks_and_fail_a_hidden_test(batch):
    for name, group in batch["expect"].items():
        graded = batch["graded"][name]
        assert graded.status == "graded", show(graded)
        for plant in group:
            cases = graded.questions[plant.question]["cases"]
            where = f"{name}, {plant.kind} {plant.question}: {plant.note}\n{show(graded)}"
            if plant.kind == "PLANTED":
                assert all(c["passed"] for c in cases if not c["hidden"]), f"fails a public check: {where}"
                assert any(not c["passed"] for c in cases if c["hidden"]), f"no hidden test catches it: {where}"
            else:  # BASELINE: right, but too slow
                speed = [c for c in cases if "speedup" in c["message"] or "too slow" in c["message"]]
                assert speed and not any(c["passed"] for c in speed), f"passes the speed test: {where}"
                others = [c for c in cases if c not in speed]
                assert all(c["passed"] for c in others), f"fails a correctness test: {where}"


def test_faulty_submissions_score_zero_with_their_reasons(batch):
    graded = batch["graded"]
    expected_reason = {"faulty_raises": r"raised|None|not defined|expected",
                       "faulty_loops": r"did not return within|already exceeded|None|expected",
                       "faulty_wrong_shape": r"expected",
                       "faulty_compiled_loop": r"did not return within|already exceeded|not timed|raised",
                       "faulty_tamper": r"checking helpers were modified"}
    for stem, pattern in expected_reason.items():
        if f"{stem}.ipynb" not in graded:
            continue
        result = graded[f"{stem}.ipynb"]
        assert result.status == "graded", show(result)
        for name, q in result.questions.items():
            question = next(x for x in batch["questions"] if x.name == name)
            if stem == "faulty_compiled_loop" and not function_names(batch["lab"], question):
                continue  # no function to compile in this question
            assert q["score"] == 0, f"{stem}: {name} scores {q['score']}\n{show(result)}"
            assert re.search(pattern, q["reason"]), f"{stem}: {name}: unclear reason {q['reason']!r}"
    loops = graded["faulty_loops.ipynb"]
    if any(not function_names(batch["lab"], q) for q in batch["questions"]):  # a value hung at top level
        assert any("ran past the" in note for note in loops.notes), show(loops)
    if "faulty_compiled_loop.ipynb" in graded:
        assert any("did not stop when interrupted" in note for note in graded["faulty_compiled_loop.ipynb"].notes)


def test_output_floods_and_kernel_deaths_cost_nothing_else(batch):
    result = batch["graded"]["survives_output_and_kernel_death.ipynb"]
    assert result.total == result.possible, show(result)
    assert any("printed more than" in note for note in result.notes), show(result)
    assert any("kernel died" in note for note in result.notes), show(result)


def test_the_batch_grades_every_submission_into_a_csv(batch):
    broken = batch["graded"]["broken.ipynb"]
    assert broken.status == "error" and broken.total == 0
    assert any("not a readable notebook" in note for note in broken.notes)
    rows = batch["csv"].read_text().splitlines()
    header = rows[0].split(",")
    assert header[:4] == ["submission", "status", "total", "possible"]
    assert [q.name for q in batch["questions"]] == header[4:4 + len(batch["questions"])]
    assert len(rows) == 1 + len(list((batch["work"] / "submissions_faulty").iterdir()))
    assert (batch["work"] / "grades_feedback" / "reference.txt").exists()
    assert (batch["work"] / "faulty_feedback" / "broken.txt").exists()


def test_grading_time_per_submission(batch, capsys):
    times = {name: g.seconds for name, g in batch["graded"].items()}
    with capsys.disabled():
        print(f"\n{batch['lab']} grading seconds per submission (2 at a time): {json.dumps(times)}")
    assert times["reference.ipynb"] < 60, times


# --- speed-graded questions, run repeatedly ---------------------------------------------------

REPEAT_CELL = textwrap.dedent("""\
    import json
    from otter.test_files.exception_test import ExceptionTestFile

    _runs = []
    for _ in range({runs}):
        _file = ExceptionTestFile.from_file("tests/{question}.py")
        _file.run(globals())
        _runs.append([("check_speedup" in r.test_case.body.test_func.__code__.co_names, r.passed, r.message)
                      for r in _file.test_case_results])
    print("RUNS=" + json.dumps(_runs))
    """)


def run_question_repeatedly(release, question, code, runs, workdir):
    """Execute the solution notebook (with ``code`` before the question's check) and run the
    question's tests ``runs`` times in that kernel; return, per run, (is speed test, passed, message)."""
    from nbclient import NotebookClient

    workdir.mkdir()
    with zipfile.ZipFile(release.autograder) as archive:
        archive.extractall(workdir / "autograder")
    shutil.copytree(workdir / "autograder" / "tests", workdir / "tests")
    shutil.copytree(workdir / "autograder" / "files" / "book", workdir / "book")
    nb = nbformat.read(release.solution, as_version=4)
    if code:
        nb = with_cells(nb, [(question, code)])
    nb.cells.append(nbformat.v4.new_code_cell(REPEAT_CELL.format(runs=runs, question=question)))
    NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute(
        env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "BOOK_QUICK": "1"})
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "RUNS=" in text, nb.cells[-1].outputs
    return json.loads(text.split("RUNS=", 1)[1])


SPEED_CASES = [(lab, q.name) for lab in LABS for q in labs.questions(lab) if q.speed_graded]


@pytest.mark.parametrize("lab, question", SPEED_CASES)
def test_speed_question_reference_passes_and_baseline_fails_every_run(lab, question, releases, tmp_path,
                                                                      capsys):
    release = releases[lab]
    baseline = next(p for p in labs.planted(lab) if p.kind == "BASELINE" and p.question == question)
    reference_runs = run_question_repeatedly(release, question, None, SPEED_RUNS, tmp_path / "reference")
    baseline_runs = run_question_repeatedly(release, question, baseline.code, SPEED_RUNS, tmp_path / "baseline")

    def ratios(runs):
        found = []
        for run in runs:
            for is_speed, _, message in run:
                match = re.search(r"speedup ([\d,.]+)x", message)
                if is_speed and match:
                    found.append(float(match.group(1).replace(",", "")))
        return found

    speed_reference = [passed for run in reference_runs for is_speed, passed, _ in run if is_speed]
    speed_baseline = [passed for run in baseline_runs for is_speed, passed, _ in run if is_speed]
    with capsys.disabled():
        print(f"\n{lab} {question}: reference passed {sum(speed_reference)}/{len(speed_reference)} speed runs, "
              f"baseline passed {sum(speed_baseline)}/{len(speed_baseline)} (baseline ratios "
              f"{ratios(baseline_runs)})")
    assert speed_reference and all(speed_reference), reference_runs
    assert all(passed for run in reference_runs for _, passed, _ in run), reference_runs
    assert speed_baseline and not any(speed_baseline), baseline_runs


# --- nothing secret leaves the master -----------------------------------------------------------


def normalized(text):
    return re.sub(r"\s+", "", text).replace('"', "'")


def secret_lines(lab):
    """Solution lines, hidden-test lines and planted code that the public material lacks."""
    questions = labs.questions(lab)
    secret = set()
    for q in questions:
        secret.update(q.solution_lines)
        for test in q.hidden_tests:
            secret.update(test.splitlines())
    for plant in labs.planted(lab):
        secret.update(plant.code.splitlines())
    nb = labs._read(lab)
    public = []
    block = None
    for cell in nb.cells:
        header = labs._raw_header(cell)
        if header.startswith("# BEGIN SOLUTION") or header.startswith("# BEGIN TESTS"):
            block = header.split()[2]
        elif header.startswith("# END SOLUTION") or header.startswith("# END TESTS"):
            block = None
        elif cell.cell_type == "raw":
            continue
        elif block == "SOLUTION" and cell.cell_type == "code":
            stripped = set(labs._solution_lines(cell.source))
            public += [line for line in cell.source.splitlines() if line not in stripped
                       and "SOLUTION" not in line]
        elif block == "TESTS":
            if not cell.source.lstrip().lower().startswith("# hidden"):
                public += cell.source.splitlines()
        else:
            public += cell.source.splitlines()
    public_normalized = {normalized(line) for line in public}
    return sorted({line.strip() for line in secret
                   if len(normalized(line)) >= 10 and normalized(line) not in public_normalized})


@pytest.mark.parametrize("lab", LABS)
def test_lab_has_secrets_to_protect(lab):
    assert len(secret_lines(lab)) >= 3, "the leak tests need solution or hidden-test lines to look for"


@pytest.mark.parametrize("lab", LABS)
def test_student_release_holds_no_solution_or_hidden_test(lab, releases):
    release = releases[lab]
    nb = nbformat.read(release.student, as_version=4)
    strings = []

    def collect(node):
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(nb)
    text = normalized("\n".join(strings))
    leaked = [line for line in secret_lines(lab) if normalized(line) in text]
    assert not leaked, f"the student notebook of {lab} contains: {leaked}"
    with zipfile.ZipFile(release.student_zip) as archive:
        assert not [n for n in archive.namelist() if n.startswith("tests/") or "solution" in n.lower()]
    site = nbformat.read(release.site_notebook, as_version=4)  # the website's copy: the same cells
    assert [c.source for c in site.cells] == [c.source for c in nb.cells]


@pytest.mark.build
@pytest.mark.parametrize("lab", LABS)
def test_website_shows_the_student_version_only(lab, site):
    pages = [p for p in site.html.rglob("*") if p.is_file() and lab in p.name]
    assert any(p.suffix == ".html" for p in pages), f"the site has no page for {lab}"
    assert not [p for p in site.html.rglob(f"{lab}.md*")], "the lab master must never be built"
    secrets = secret_lines(lab)
    for page in pages:
        raw = page.read_text(errors="ignore")
        text = normalized(html.unescape(re.sub(r"<[^>]+>", "", raw)) + raw)
        leaked = [line for line in secrets if normalized(line) in text]
        assert not leaked, f"{page.relative_to(site.html)} contains solution or hidden-test code: {leaked}"
    page = (site.html / "labs" / "_student" / f"{lab}.html").read_text()
    assert "mybinder.org/v2/gh/" in page and f"labs/_student/{lab}.ipynb" in page  # launch buttons
    assert "grader.check" in page


# --- the format's documentation works -------------------------------------------------------------


def test_readme_example_is_a_working_lab(tmp_path):
    """labs/README.md's complete example, as a master: its solution passes its tests (otter assign
    runs them), and its planted answer passes the public test and fails the hidden one."""
    readme = (ROOT / "labs" / "README.md").read_text()
    example = readme.split("## A complete small example", 1)[1].split("````", 2)[1]
    example = example.split("\n", 1)[1]  # drop the fence's "text"
    header = (ROOT / "labs" / "lab_00_warmup.md").read_text().split("---\n")[1]
    master = tmp_path / "lab_99_example.md"
    master.write_text(example.replace("---\n(jupytext header)\n---\n", f"---\n{header}---\n"))
    release = labs.assign(master, run_tests=True, out=tmp_path / "assign", site=False)
    plant = labs.planted(master)[0]
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(release.solution, submissions / "reference.ipynb")
    nbformat.write(with_cells(nbformat.read(release.solution, as_version=4), [(plant.question, plant.code)]),
                   submissions / "planted.ipynb")
    graded = {g.submission: g for g in labs.grade(release.autograder, [submissions], tmp_path / "grades.csv",
                                                  jobs=2, progress=False)}
    assert graded["reference.ipynb"].total == graded["reference.ipynb"].possible == 2, show(graded["reference.ipynb"])
    cases = graded["planted.ipynb"].questions["q1"]["cases"]
    assert [c["passed"] for c in cases if not c["hidden"]] == [True], cases
    assert [c["passed"] for c in cases if c["hidden"]] == [False], cases
