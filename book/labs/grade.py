"""Batch grading without Docker: ``otter run`` on each submission in a fresh process, with the
guards of :mod:`book.labs.guard`, into a CSV of scores and one feedback file per submission."""

import ast
import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from book.labs.guard import EVENTS, OUTPUT_GUARD_CELL, OUTPUT_LIMIT_CHARS, install_execution_guards
from book.labs.master import master_path
from book.labs.release import OUT

CELL_TIME_LIMIT_S = 120
"""A notebook cell of a submission that runs longer is interrupted (then its kernel restarted)."""

SUBMISSION_TIME_LIMIT_S = 1800
"""Grading one submission takes at most this long; then it scores zero with that reason."""


@dataclass
class Graded:
    """The grade of one submission."""

    submission: str
    status: str  # "graded", "error" (could not be graded) or "timeout" (the whole submission)
    seconds: float
    total: float = 0.0
    possible: float = 0.0
    questions: dict = field(default_factory=dict)  # name -> {score, possible, reason, cases}
    notes: list = field(default_factory=list)  # what the guards did: cell timeouts, restarts
    speedups: dict = field(default_factory=dict)  # candidate name -> measured ratio

    def reasons(self):
        """One line per question that lost points, and the notes."""
        lines = [f"{name}: {q['reason']}" for name, q in self.questions.items() if q["score"] < q["possible"]]
        return lines + self.notes


def _prepare(submission, workdir):
    """The submission's notebook, read and given the output guard, written into ``workdir``."""
    import nbformat

    submission = Path(submission)
    if submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as archive:
            notebooks = [n for n in archive.namelist() if n.endswith(".ipynb") and "checkpoint" not in n]
            if len(notebooks) != 1:
                raise ValueError(f"the zip should hold one notebook, it holds {len(notebooks)}")
            text = archive.read(notebooks[0]).decode("utf-8")
            name = Path(notebooks[0]).name
    else:
        text, name = submission.read_text(encoding="utf-8"), submission.name
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the submission's fault
        raise ValueError(f"not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    nb.cells.insert(0, nbformat.v4.new_code_cell(OUTPUT_GUARD_CELL.format(limit=OUTPUT_LIMIT_CHARS)))
    path = Path(workdir) / name
    nbformat.write(nb, path)
    return path


def _reason(message, hidden):
    """The part of otter's failure message a reader needs: the exception and its text."""
    lines = message.split("\n")
    text = "\n".join(lines[3:]).strip() if len(lines) > 3 and lines[1].startswith("Error at line") else message
    text = text.replace("❌ Test case failed", "").strip()
    return ("[hidden test] " if hidden else "") + text


def grade_one(autograder, submission, cell_time_limit_s=CELL_TIME_LIMIT_S):
    """Grade one submission in this process (``grade`` runs this in a fresh process each time)."""
    from otter.run import main as otter_run

    started = time.monotonic()
    graded = Graded(submission=Path(submission).name, status="error", seconds=0.0)
    EVENTS.clear()
    with tempfile.TemporaryDirectory(prefix="book-grade-") as workdir:
        log = Path(workdir) / "grading-log.jsonl"
        os.environ["BOOK_GRADING_LOG"] = str(log)
        try:
            notebook = _prepare(submission, workdir)
            install_execution_guards(cell_time_limit_s)
            with contextlib.redirect_stdout(sys.stderr):
                results = otter_run(str(notebook), autograder=str(autograder), output_dir=None, no_logo=True)
            if results.catastrophic_error is not None:
                raise RuntimeError(f"otter could not grade it: {results.catastrophic_error}")
            for name, test_file in results.results.items():
                failures = [r for r in test_file.test_case_results if not r.passed]
                graded.questions[name] = {
                    "score": float(test_file.score), "possible": float(test_file.possible),
                    "reason": _reason(failures[0].message, failures[0].test_case.hidden) if failures else "",
                    # in the order of the question's tests in the master (book.labs.master.Question.tests)
                    "cases": [{"passed": bool(r.passed), "hidden": bool(r.test_case.hidden),
                               "message": r.message} for r in test_file.test_case_results],
                }
            graded.total = float(sum(q["score"] for q in graded.questions.values()))
            graded.possible = float(sum(q["possible"] for q in graded.questions.values()))
            graded.status = "graded"
        except Exception as exc:  # noqa: BLE001 - a submission must never stop the batch
            traceback.print_exc()  # into the grading log
            graded.notes.append(f"could not be graded: {type(exc).__name__}: {str(exc)[:300]}")
        if log.exists():
            for line in log.read_text().splitlines():
                record = json.loads(line)
                if record.get("check") == "speedup" and record.get("ratio") is not None:
                    graded.speedups[record["name"]] = record["ratio"]
    graded.notes = EVENTS + graded.notes
    graded.seconds = round(time.monotonic() - started, 2)
    return graded


def _questions_of(autograder):
    """Question names and points of an autograder zip, from its test files."""
    found = {}
    with zipfile.ZipFile(autograder) as archive:
        for member in sorted(archive.namelist()):
            if member.startswith("tests/") and member.endswith(".py"):
                text = archive.read(member).decode()
                points = re.search(r"^points\s*=\s*(.+)$", text, re.M)  # a total, or a list: one per test
                value = ast.literal_eval(points.group(1)) if points else 1.0
                found[Path(member).stem] = float(sum(value) if isinstance(value, list) else value)
    return found


def _autograder_path(lab_or_zip):
    path = Path(lab_or_zip)
    if path.suffix == ".zip":
        if not path.exists():
            raise FileNotFoundError(f"no autograder zip {path}")
        return path
    name = master_path(lab_or_zip).stem
    path = OUT / name / f"{name}-autograder.zip"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `make assignments` (or "
                                f"`python -m book.labs assign {name}`) first")
    return path


def _submissions(paths):
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".ipynb", ".zip") and p.is_file())
        else:
            found.append(path)
    return found


def grade(lab_or_zip, submissions, csv_path="grades.csv", feedback_dir=None,
          cell_time_limit_s=CELL_TIME_LIMIT_S, submission_time_limit_s=SUBMISSION_TIME_LIMIT_S,
          call_time_limit_s=None, jobs=1, quick=True, progress=True):
    """Grade submissions into a CSV of scores, without Docker.

    Parameters
    ----------
    lab_or_zip : str or Path
        A lab name (its autograder from ``make assignments``) or an autograder zip.
    submissions : list of str or Path
        Notebooks, zips made by a notebook's export cell, or folders of them.
    csv_path : str or Path
        Scores: one row per submission (``submission, status, total, possible``, one column
        per question, ``seconds``, measured speedups and the reasons for lost points).
    feedback_dir : str or Path, optional
        One ``<submission>.txt`` per submission with every failing check's message (hidden
        tests included: for the instructor). Default: ``<csv name>_feedback`` beside the CSV.
    cell_time_limit_s, submission_time_limit_s : float
        Time limits per notebook cell and per submission.
    call_time_limit_s : float, optional
        The longest any call of student code by a test may run (by default each test's own
        limit: 10 s unless it sets one, 60 s for a speed check).
    jobs : int
        Submissions graded at once. Keep 1 for grades of record: speed checks then have the
        machine to themselves (more jobs share the cores; the ratio stays fair, only noisier).
    quick : bool
        Run the lab's narrative measurements small (``BOOK_QUICK=1``; the graded checks do
        not depend on it).

    Returns
    -------
    list of Graded
    """
    autograder = _autograder_path(lab_or_zip).resolve()
    points = _questions_of(autograder)
    csv_path = Path(csv_path)
    feedback_dir = Path(feedback_dir) if feedback_dir else csv_path.with_name(csv_path.stem + "_feedback")
    feedback_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue",  # fork-safe, for book.grading's isolation
           "BOOK_QUICK": "1" if quick else "0", "PYTHONUNBUFFERED": "1"}
    if call_time_limit_s:
        env["BOOK_GRADING_TIME_LIMIT_S"] = str(call_time_limit_s)
    def grade_in_a_fresh_process(submission):
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="book-grade-") as workdir:
            result_json = Path(workdir) / "result.json"
            command = [sys.executable, "-m", "book.labs", "grade-one", str(autograder), str(submission.resolve()),
                       str(result_json), "--cell-time-limit", str(cell_time_limit_s)]
            with open(Path(workdir) / "otter.log", "w") as otter_log:
                process = subprocess.Popen(command, cwd=workdir, env=env, stdout=otter_log, stderr=otter_log,
                                           start_new_session=True)
                try:
                    process.wait(timeout=submission_time_limit_s)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)  # otter and its kernel
                    process.wait()
            if result_json.exists():
                graded = Graded(**json.loads(result_json.read_text()))
            else:
                timed_out = process.returncode == -signal.SIGKILL
                graded = Graded(submission=submission.name, status="timeout" if timed_out else "error",
                                seconds=0.0, notes=[f"grading took longer than {submission_time_limit_s:g} s"
                                                    if timed_out else "the grading process failed: "
                                                    + (Path(workdir) / "otter.log").read_text()[-300:]])
        graded.seconds = round(time.monotonic() - started, 2)
        for name, possible in points.items():  # a submission that could not be graded scores zero
            graded.questions.setdefault(name, {"score": 0.0, "possible": possible,
                                               "reason": "not graded (see notes)", "cases": []})
        graded.possible = float(sum(q["possible"] for q in graded.questions.values()))
        _write_feedback(graded, feedback_dir)
        if progress:
            print(f"{graded.submission}: {graded.total:g}/{graded.possible:g} ({graded.status}, "
                  f"{graded.seconds:.1f} s)", file=sys.stderr)
        return graded

    with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
        everything = list(pool.map(grade_in_a_fresh_process, _submissions(submissions)))
    _write_csv(everything, list(points), csv_path)
    return everything


def _write_csv(graded, question_names, path):
    speed_names = sorted({name for g in graded for name in g.speedups})
    columns = (["submission", "status", "total", "possible"] + question_names + ["seconds"]
               + [f"speedup:{name}" for name in speed_names] + ["reasons"])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for g in graded:
            writer.writerow([g.submission, g.status, f"{g.total:g}", f"{g.possible:g}"]
                            + [f"{g.questions[name]['score']:g}" for name in question_names]
                            + [f"{g.seconds:.1f}"]
                            + [f"{g.speedups[name]:.3g}" if name in g.speedups else "" for name in speed_names]
                            + [" | ".join(line.replace("\n", " ") for line in g.reasons())])


def _write_feedback(graded, folder):
    lines = [f"{graded.submission}: {graded.total:g} / {graded.possible:g} ({graded.status}, graded in "
             f"{graded.seconds:.1f} s)", ""]
    for name, q in graded.questions.items():
        lines.append(f"{name}: {q['score']:g} / {q['possible']:g}")
        for case in q["cases"]:
            if not case["passed"]:
                lines.append("    " + _reason(case["message"], case["hidden"]).replace("\n", "\n    "))
    for name, ratio in graded.speedups.items():
        lines.append(f"measured speedup of {name}: {ratio:.3g}x")
    if graded.notes:
        lines += ["", "notes:"] + [f"    {note}" for note in graded.notes]
    (Path(folder) / f"{Path(graded.submission).stem}.txt").write_text("\n".join(lines) + "\n")
