"""Every lab master grades as designed (labs/README.md), checked automatically for each labs/lab_*.md.

Each lab's content is graded the way an instructor grades (``book.labs.grade``:
``otter run`` per submission, no Docker): the reference solution earns full
marks, the unmodified student release zero, and every planted answer is
caught; its speed-graded questions are run repeatedly; its student release
holds no solution or hidden test. The grading machinery's handling of faulty
submissions (code that raises, never returns, returns the wrong shape,
tampers with the checks, prints too much, kills its kernel, or is not a
notebook) does not depend on the lab, so it is tested once, on the warm-up
lab. Masters are read with ``book.labs.read``; releases are generated once
per session into a temporary folder.
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
WARMUP = "lab_00_warmup"
# Time limits for the faulty submissions (the others get the defaults: 10 s per call, 120 s per cell)
CALL_LIMIT_S = 3  # per call of student code in a test
CELL_LIMIT_S = 10  # per notebook cell
SPEED_RUNS = 5  # repeated runs of each speed-graded question, reference and baseline each


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """``release(lab)``: the lab's release, generated on first use, once per session, outside the checkout."""
    out, made = tmp_path_factory.mktemp("assign"), {}

    def get(lab):
        if lab not in made:
            made[lab] = labs.assign(lab, run_tests=False, out=out, site=False)
        return made[lab]

    return get


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


def show(graded):
    return json.dumps({"total": graded.total, "notes": graded.notes,
                       "reasons": {n: q["reason"] for n, q in graded.questions.items()}}, indent=1)


# --- each lab's content -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LABS)
def batch(request, release, tmp_path_factory):
    """One lab's reference solution, student release and planted answers, graded like an instructor
    would (default limits, two at a time: the speed checks keep their margins)."""
    lab = request.param
    master = labs.read(lab)
    submissions = tmp_path_factory.mktemp(lab) / "submissions"
    submissions.mkdir()
    shutil.copy(release(lab).solution, submissions / "reference.ipynb")
    shutil.copy(release(lab).student, submissions / "student.ipynb")
    solution = nbformat.read(release(lab).solution, as_version=4)
    groups = []  # planted answers, at most one per question in each notebook
    for plant in master.planted:
        group = next((g for g in groups if all(p.question != plant.question for p in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(plant)
    expect = {}
    for i, group in enumerate(groups):
        expect[f"planted_{i}.ipynb"] = group
        nbformat.write(with_cells(solution, [(p.question, p.code) for p in group]), submissions / f"planted_{i}.ipynb")
    graded = labs.grade(release(lab).autograder, [submissions], submissions.with_name("grades.csv"), jobs=2,
                        progress=False)
    return {"lab": lab, "master": master, "graded": {g.submission: g for g in graded}, "expect": expect}


def test_reference_solution_earns_full_marks(batch):
    reference = batch["graded"]["reference.ipynb"]
    assert reference.status == "graded" and reference.possible > 0, show(reference)
    assert reference.total == reference.possible, show(reference)
    assert not reference.notes, show(reference)


def test_unmodified_student_release_earns_zero_on_every_question(batch):
    student = batch["graded"]["student.ipynb"]
    assert student.status == "graded", show(student)
    autograded = [q.name for q in batch["master"].questions if not q.manual]  # written answers are graded by hand
    assert sorted(student.questions) == sorted(autograded), show(student)  # otter orders q10 before q2
    scored = {name: q["score"] for name, q in student.questions.items() if q["score"] > 0}
    assert not scored, f"the unanswered release scores points: {scored}\n{show(student)}"


@pytest.mark.parametrize("lab", LABS)
def test_every_lab_plants_wrong_answers(lab):
    master = labs.read(lab)
    assert any(p.kind == "PLANTED" for p in master.planted), "a lab needs at least one `# PLANTED` answer"
    names = [q.name for q in master.questions]
    for plant in master.planted:
        assert plant.question in names, f"{plant.kind} {plant.question}: the lab has no question {plant.question}"
    for q in master.questions:
        if q.speed_graded:
            assert any(p.kind == "BASELINE" and p.question == q.name for p in master.planted), \
                f"{q.name} is speed-graded and needs a `# BASELINE {q.name}` answer"
        if q.hidden_tests:
            assert any(p.kind == "PLANTED" and p.question == q.name for p in master.planted), \
                f"{q.name} has hidden tests and needs a `# PLANTED {q.name}` answer that they catch"


def test_planted_answers_pass_the_public_checks_and_fail_a_hidden_test(batch):
    questions = {q.name: q for q in batch["master"].questions}
    for name, group in batch["expect"].items():
        graded = batch["graded"][name]
        assert graded.status == "graded", show(graded)
        for plant in group:
            cases = graded.questions[plant.question]["cases"]
            tests = questions[plant.question].tests  # the autograder's cases are the master's tests, in order
            assert [c["hidden"] for c in cases] == [t.hidden for t in tests], cases
            where = f"{name}, {plant.kind} {plant.question}: {plant.note}\n{show(graded)}"
            if plant.kind == "PLANTED":
                assert all(c["passed"] for c in cases if not c["hidden"]), f"fails a public check: {where}"
                assert any(not c["passed"] for c in cases if c["hidden"]), f"no hidden test catches it: {where}"
                score = graded.questions[plant.question]
                assert score["score"] <= score["possible"] / 2, f"scores more than half the points: {where}"
            else:  # BASELINE: right, but too slow (a hidden test may also refuse its method)
                speed = [c["passed"] for c, t in zip(cases, tests) if t.speed]
                assert speed and not any(speed), f"passes the speed test: {where}"
                others = [c["passed"] for c, t in zip(cases, tests) if not t.speed and not t.hidden]
                assert all(others), f"fails a public correctness test: {where}"


def test_grading_time_per_submission(batch, capsys):
    times = {name: g.seconds for name, g in batch["graded"].items()}
    with capsys.disabled():
        print(f"\n{batch['lab']} grading seconds per submission (2 at a time): {json.dumps(times)}")
    assert times["reference.ipynb"] < 60, times


# --- speed-graded questions, run repeatedly ---------------------------------------------------

REPEAT_CELL = textwrap.dedent("""\
    import json, os
    from otter.test_files.exception_test import ExceptionTestFile

    os.environ["BOOK_GRADING_LOG"] = "{log}"  # check_speedup logs each ratio it measures
    _runs = []
    for _ in range({runs}):
        _file = ExceptionTestFile.from_file("tests/{question}.py")
        _file.run(globals())
        _runs.append([r.passed for r in _file.test_case_results])
    print("RUNS=" + json.dumps(_runs))
    """)


def run_question_repeatedly(release, question, baseline_code, runs, workdir):
    """Execute the solution notebook once and run the question's tests ``runs`` times against the
    reference, then ``runs`` times after ``baseline_code`` replaced the answer. Returns both lists of
    runs (per run, whether each test case passed, in the master's order) and the two lists of
    speedups that ``check_speedup`` measured."""
    from nbclient import NotebookClient

    workdir.mkdir()
    with zipfile.ZipFile(release.autograder) as archive:
        archive.extractall(workdir / "autograder")
    shutil.copytree(workdir / "autograder" / "tests", workdir / "tests")
    shutil.copytree(workdir / "autograder" / "files" / "book", workdir / "book")
    nb = nbformat.read(release.solution, as_version=4)
    logs = [workdir / "reference.jsonl", workdir / "baseline.jsonl"]
    nb.cells += [nbformat.v4.new_code_cell(REPEAT_CELL.format(runs=runs, question=question, log=logs[0])),
                 nbformat.v4.new_code_cell(baseline_code),
                 nbformat.v4.new_code_cell(REPEAT_CELL.format(runs=runs, question=question, log=logs[1]))]
    NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute(
        env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "BOOK_QUICK": "1"})
    found = []
    for cell, log in zip((nb.cells[-3], nb.cells[-1]), logs):
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "RUNS=" in text, cell.outputs
        found.append(json.loads(text.split("RUNS=", 1)[1]))
        found.append([json.loads(line)["ratio"] for line in log.read_text().splitlines()])
    return found


SPEED_CASES = [(lab, q.name) for lab in LABS for q in labs.questions(lab) if q.speed_graded]


@pytest.mark.parametrize("lab, question", SPEED_CASES)
def test_speed_question_reference_passes_and_baseline_fails_every_run(lab, question, release, tmp_path,
                                                                      capsys):
    master = labs.read(lab)
    speed = [t.speed for t in next(q for q in master.questions if q.name == question).tests]
    baseline = next(p for p in master.planted if p.kind == "BASELINE" and p.question == question)
    reference_runs, reference_ratios, baseline_runs, baseline_ratios = run_question_repeatedly(
        release(lab), question, baseline.code, SPEED_RUNS, tmp_path / "runs")
    assert all(len(run) == len(speed) for run in reference_runs + baseline_runs), (speed, reference_runs)
    speed_reference = [passed for run in reference_runs for passed, is_speed in zip(run, speed) if is_speed]
    speed_baseline = [passed for run in baseline_runs for passed, is_speed in zip(run, speed) if is_speed]
    assert len(reference_ratios) == len(speed_reference) and len(baseline_ratios) == len(speed_baseline)
    with capsys.disabled():
        print(f"\n{lab} {question}: reference passed {sum(speed_reference)}/{len(speed_reference)} speed runs "
              f"(ratios {reference_ratios}), baseline passed {sum(speed_baseline)}/{len(speed_baseline)} "
              f"(ratios {baseline_ratios})")
    assert speed_reference and all(speed_reference), reference_runs
    assert all(all(run) for run in reference_runs), reference_runs
    assert speed_baseline and not any(speed_baseline), baseline_runs


# --- nothing secret leaves the master -----------------------------------------------------------


def normalized(text):
    return re.sub(r"\s+", "", text).replace('"', "'")


def secret_lines(lab):
    """Solution lines, hidden-test lines and planted code that the public material lacks."""
    master = labs.read(lab)
    secret = set()
    for q in master.questions:
        secret.update(q.solution_lines)
        for test in q.hidden_tests:
            secret.update(test.splitlines())
    for plant in master.planted:
        secret.update(plant.code.splitlines())
    public = {normalized(line) for line in master.public_lines}
    return sorted({line.strip() for line in secret if len(normalized(line)) >= 10 and normalized(line) not in public})


@pytest.mark.parametrize("lab", LABS)
def test_lab_has_secrets_to_protect(lab):
    assert len(secret_lines(lab)) >= 3, "the leak tests need solution or hidden-test lines to look for"


@pytest.mark.parametrize("lab", LABS)
def test_student_release_holds_no_solution_or_hidden_test(lab, release):
    nb = nbformat.read(release(lab).student, as_version=4)
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
    with zipfile.ZipFile(release(lab).student_zip) as archive:
        assert not [n for n in archive.namelist() if n.startswith("tests/") or "solution" in n.lower()]


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


# --- the grading machinery, once, on the warm-up lab ---------------------------------------------

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
# What a student reads first for each fault (the failure's type, as otter shows it)
FAULT_FAILURES = {
    "faulty_raises": {"CallFailure", "NoValue", "WrongType"},
    "faulty_loops": {"CallFailure", "NoValue", "WrongType"},
    "faulty_wrong_shape": {"WrongType", "WrongValue", "Disagreement"},
    "faulty_compiled_loop": {"CallFailure"},
    "faulty_tamper": {"Tampered"},
}


def functions(master, question):
    """The names a question's tests take that the master defines as functions (the rest are values)."""
    sources = "\n".join(cell.source for cell in master.notebook.cells if cell.cell_type == "code")
    return [name for name in question.names if re.search(rf"^\s*def {name}\(", sources, re.M)]


def failure_type(reason):
    """The exception type that starts a reason (``[hidden test] CallFailure: ...`` -> ``CallFailure``)."""
    match = re.match(r"(\[hidden test\] )?(\w+): ", reason)
    return match.group(2) if match else None


@pytest.fixture(scope="module")
def machinery(release, tmp_path_factory):
    """The warm-up lab's faulty submissions, graded with short limits (hanging code then costs
    seconds), and one that floods its output and kills its kernel, graded with the default ones."""
    master, lab_release = labs.read(WARMUP), release(WARMUP)
    questions = master.questions
    assert set(questions[0].names) - set(functions(master, questions[0])), "the warm-up's q1 needs a value answer"
    assert all(functions(master, q) for q in questions[1:]), "the warm-up's q2, q3 should be functions"
    solution = nbformat.read(lab_release.solution, as_version=4)
    work = tmp_path_factory.mktemp("machinery")
    faulty, survivor = work / "faulty", work / "survivor"
    faulty.mkdir()
    survivor.mkdir()
    for fault, (for_function, for_value) in FAULTS.items():
        cells = [(q.name, (for_function if name in functions(master, q) else for_value).format(name=name))
                 for q in questions for name in q.names]
        nbformat.write(with_cells(solution, cells), faulty / f"faulty_{fault}.ipynb")
    # q1 is left answered: answered before the loop, it must still be graded after the kernel restart
    cells = [(q.name, COMPILED_LOOP.format(name=name)) for q in questions[1:] for name in functions(master, q)]
    first_question, first_function = questions[1].name, functions(master, questions[1])[0]
    cells.append((first_question, f"{first_function}(1)"))  # called at top level: it ignores interrupts
    nbformat.write(with_cells(solution, cells), faulty / "faulty_compiled_loop.ipynb")
    nbformat.write(with_cells(solution, [(questions[0].name, TAMPER)]), faulty / "faulty_tamper.ipynb")
    (faulty / "broken.ipynb").write_text('{"cells": [')
    nbformat.write(with_cells(solution, [(questions[0].name, "print('x' * 100_000_000)"),
                                         (questions[-1].name, "import os\nos._exit(1)")]),
                   survivor / "survives_output_and_kernel_death.ipynb")
    graded = labs.grade(lab_release.autograder, [faulty], work / "faulty.csv", cell_time_limit_s=CELL_LIMIT_S,
                        call_time_limit_s=CALL_LIMIT_S, jobs=2, progress=False)
    graded += labs.grade(lab_release.autograder, [survivor], work / "survivor.csv", progress=False)
    return {"master": master, "graded": {g.submission: g for g in graded}, "work": work}


def test_faulty_submissions_score_zero_with_their_reasons(machinery):
    graded, master = machinery["graded"], machinery["master"]
    for stem, kinds in FAULT_FAILURES.items():
        result = graded[f"{stem}.ipynb"]
        assert result.status == "graded", show(result)
        for q in master.questions:
            score, reason = result.questions[q.name]["score"], result.questions[q.name]["reason"]
            if stem == "faulty_compiled_loop" and q is master.questions[0]:
                # answered before the loop: still graded after the kernel restart
                assert score == q.points, f"{stem}: {q.name} lost its points\n{show(result)}"
                continue
            assert score == 0, f"{stem}: {q.name} scores {score}\n{show(result)}"
            assert failure_type(reason) in kinds, f"{stem}: {q.name}: unexpected reason {reason!r}"
    assert any("ran past the" in note for note in graded["faulty_loops.ipynb"].notes), \
        show(graded["faulty_loops.ipynb"])  # q1's value hung at top level
    assert any("did not stop when interrupted" in note for note in graded["faulty_compiled_loop.ipynb"].notes)


def test_output_floods_and_kernel_deaths_cost_nothing_else(machinery):
    result = machinery["graded"]["survives_output_and_kernel_death.ipynb"]
    assert result.total == result.possible, show(result)
    assert any("printed more than" in note for note in result.notes), show(result)
    assert any("kernel died" in note for note in result.notes), show(result)


def test_the_batch_grades_every_submission_into_a_csv(machinery):
    work = machinery["work"]
    broken = machinery["graded"]["broken.ipynb"]
    assert broken.status == "error" and broken.total == 0
    assert any("not a readable notebook" in note for note in broken.notes)
    rows = (work / "faulty.csv").read_text().splitlines()
    header = rows[0].split(",")
    names = [q.name for q in machinery["master"].questions]
    assert header[:4] == ["submission", "status", "total", "possible"]
    assert header[4:4 + len(names)] == names
    assert len(rows) == 1 + len(list((work / "faulty").iterdir()))
    assert (work / "faulty_feedback" / "broken.txt").exists()
    assert (work / "survivor_feedback" / "survives_output_and_kernel_death.txt").exists()


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
    release = labs.assign(master, run_tests=False, out=tmp_path / "assign", site=False)  # graded below
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
