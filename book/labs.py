"""Lab releases and batch grading (lab format: ``labs/README.md``; guide: "Teaching with this book").

Command line::

    python -m book.labs assign [LAB ...] [--no-run-tests]  # student release, autograder zip, solutions
    python -m book.labs student [LAB ...]                  # only the student notebooks (website, Binder)
    python -m book.labs grade LAB_OR_AUTOGRADER_ZIP SUBMISSION_OR_FOLDER ... [-o grades.csv]

``assign`` turns each instructor master ``labs/lab_NN_<topic>.md`` into an
otter-grader 7 assignment under ``_build/assign/<lab>/`` and copies the student
notebook to ``labs/_student/<lab>.ipynb`` for the website. ``grade`` grades
submissions (``.ipynb`` or the ``.zip`` that a notebook's export cell makes)
with ``otter run`` -- no Docker -- one fresh process per submission, and
writes a CSV of scores plus one feedback file per submission. Around
``otter run`` it adds what a batch of real submissions needs: a time limit per
cell (a cell that does not stop when interrupted, such as a compiled loop, gets
its kernel restarted and the earlier cells re-run, so the remaining questions
are still graded), a cap on printed output, a kernel death that costs only its
cell, and a time limit per submission; the tests' own calls are limited by
:mod:`book.grading`.
"""

import argparse
import asyncio
import contextlib
import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
OUT = Path(os.environ.get("BOOK_ASSIGN_DIR") or ROOT / "_build" / "assign")  # where `assign` writes
STUDENT_SITE = LABS / "_student"

CELL_TIME_LIMIT_S = 120
"""A notebook cell of a submission that runs longer is interrupted (then its kernel restarted)."""

SUBMISSION_TIME_LIMIT_S = 1800
"""Grading one submission takes at most this long; then it scores zero with that reason."""

OUTPUT_LIMIT_CHARS = 200_000
"""Printed output kept per cell while grading; the rest is discarded."""

# Settings every lab gets (labs/README.md); a master's ASSIGNMENT CONFIG may override one.
BOOK_ASSIGNMENT_CONFIG = {
    "tests": {"files": False, "ok_format": False},
    "python_version": "3.11",
    "requirements": "requirements.txt",
    "files": ["book"],
    "export_cell": {"pdf": False, "run_tests": False, "force_save": False},
    "check_all_cell": False,
    "generate": {"pdf": False, "show_stdout": False, "show_hidden": False},
}

# Packages of requirements.txt that build or edit the book but are not needed to grade a lab.
NOT_FOR_GRADING = {"jupyter-book", "sphinx-exercise", "jupyterlab", "jupytext", "otter-grader"}


# --- reading masters ------------------------------------------------------------------------


def masters():
    """Every lab master, ``labs/lab_*.md``, in order."""
    return sorted(LABS.glob("lab_*.md"))


def master_path(lab):
    """``"lab_00_warmup"``, ``"labs/lab_00_warmup.md"`` or a Path -> the master's path."""
    path = Path(lab)
    if path.suffix == ".md" and path.exists():
        return path.resolve()
    candidate = LABS / f"{Path(lab).stem}.md"
    if not candidate.exists():
        known = ", ".join(p.stem for p in masters()) or "none"
        raise FileNotFoundError(f"no lab master {candidate.relative_to(ROOT)} (labs: {known})")
    return candidate


def _read(master):
    import jupytext

    return jupytext.read(master_path(master))


def _lines(cell):
    return cell.source.splitlines()


def _raw_header(cell):
    return _lines(cell)[0].strip().upper() if cell.cell_type == "raw" and cell.source.strip() else ""


@dataclass
class Planted:
    """A raw ``# IGNORE`` cell of a master planting an answer for the grading tests."""

    kind: str  # "PLANTED" (wrong, passes the public tests) or "BASELINE" (right, baseline speed)
    question: str
    note: str
    code: str


_PLANTED = re.compile(r"^#\s*(PLANTED|BASELINE)\s+(\w+)\s*:?\s*(.*)$", re.IGNORECASE)


def planted(master):
    """The planted answers of a master (see labs/README.md, "Planted answers")."""
    found = []
    for cell in _read(master).cells:
        lines = _lines(cell)
        if cell.cell_type == "raw" and len(lines) >= 2 and re.match(r"^#\s*IGNORE\b", lines[0], re.I):
            match = _PLANTED.match(lines[1].strip())
            if match:
                found.append(Planted(match.group(1).upper(), match.group(2), match.group(3).strip(),
                                     "\n".join(lines[2:]).strip() + "\n"))
    return found


@dataclass
class Question:
    """One question of a master, as the grading tests need it."""

    name: str
    points: float
    solution_lines: list = field(default_factory=list)
    public_tests: list = field(default_factory=list)
    hidden_tests: list = field(default_factory=list)
    names: list = field(default_factory=list)  # notebook names its tests take

    @property
    def speed_graded(self):
        return any("check_speedup" in test for test in self.public_tests + self.hidden_tests)


def _solution_lines(source):
    """Lines otter strips from a solution cell: ``... # SOLUTION`` and ``# BEGIN/END SOLUTION`` blocks."""
    stripped, inside = [], False
    for line in source.splitlines():
        text = line.strip()
        if re.match(r"#\s*BEGIN SOLUTION", text):
            inside = True
        elif re.match(r"#\s*END SOLUTION", text):
            inside = False
        elif inside:
            stripped.append(line)
        elif re.search(r"#\s*SOLUTION\s*$", line):
            stripped.append(re.sub(r"\s*#\s*SOLUTION\s*$", "", line))
    return stripped


def _test_names(source):
    import ast

    tree = ast.parse(source)
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef))
    return [arg.arg for arg in function.args.args if arg.arg != "env"]


def questions(master):
    """The questions of a master, in order: points, solution lines, public and hidden tests."""
    import yaml

    found, current, block = {}, None, None
    for cell in _read(master).cells:
        header = _raw_header(cell)
        if header.startswith("# BEGIN QUESTION"):
            config = yaml.safe_load("\n".join(_lines(cell)[1:])) or {}
            current = Question(str(config["name"]), float(config.get("points") or 1))
            found[current.name] = current
        elif header.startswith("# END QUESTION"):
            current = None
        elif header.startswith("# BEGIN SOLUTION") or header.startswith("# BEGIN TESTS"):
            block = header.split()[2]
        elif header.startswith("# END SOLUTION") or header.startswith("# END TESTS"):
            block = None
        elif current is not None and cell.cell_type == "code" and block == "SOLUTION":
            current.solution_lines += _solution_lines(cell.source)
        elif current is not None and cell.cell_type == "code" and block == "TESTS":
            lines = _lines(cell)
            hidden = bool(lines) and lines[0].lstrip().startswith("#") and "hidden" in lines[0].lower()
            (current.hidden_tests if hidden else current.public_tests).append(cell.source)
            current.names = list(dict.fromkeys(current.names + _test_names(cell.source)))
    return list(found.values())


# --- releases -------------------------------------------------------------------------------


@dataclass
class Release:
    """Where ``assign`` put a lab's files."""

    lab: str
    folder: Path
    student: Path  # the student notebook inside the student release folder
    student_zip: Path
    autograder: Path
    solution: Path
    site_notebook: Path


def _merge(defaults, overrides):
    merged = copy.deepcopy(defaults)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _configure(nb, lab):
    """Give the master's ASSIGNMENT CONFIG cell the book's settings (the master's own keys win)."""
    import yaml

    for cell in nb.cells:
        if _raw_header(cell).startswith("# ASSIGNMENT CONFIG"):
            own = yaml.safe_load("\n".join(_lines(cell)[1:])) or {}
            if own.get("name") != lab:
                raise ValueError(f"{lab}: the ASSIGNMENT CONFIG must say `name: {lab}` (got {own.get('name')!r})")
            config = _merge(BOOK_ASSIGNMENT_CONFIG, own)
            cell.source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False)
            return
    raise ValueError(f"{lab}: no raw cell starting with `# ASSIGNMENT CONFIG` (see labs/README.md)")


def _grading_requirements():
    """requirements.txt without the book-building tools: what the autograder installs."""
    keep = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#")[0].strip()
        if not text or text.startswith("-"):
            continue
        if re.split(r"[=<>!~\[ ]", text, maxsplit=1)[0].lower() not in NOT_FOR_GRADING:
            keep.append(text)
    return "\n".join(keep) + "\n"


def _copy_package(target):
    """The ``book`` package's modules, bundled with a release so its tests import them anywhere."""
    target.mkdir(parents=True)
    for module in sorted((ROOT / "book").glob("*.py")):
        shutil.copy2(module, target / module.name)


def _zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder))


def assign(lab, run_tests=True, out=OUT, site=True):
    """Generate a lab's student release, autograder zip and solution notebook.

    Parameters
    ----------
    lab : str or Path
        The lab's name (``"lab_00_warmup"``) or master path.
    run_tests : bool
        Let otter run every test against the solution notebook (as ``otter assign`` does).
    out : Path
        Output root; the lab's files go to ``out/<lab>/``.
    site : bool
        Also copy the student notebook to ``labs/_student/`` for the website.

    Returns
    -------
    Release
    """
    import nbformat
    from otter.assign import main as otter_assign

    master = master_path(lab)
    name = master.stem
    nb = _read(master)
    nb.metadata.pop("jupytext", None)  # generated notebooks are not paired with a text file
    _configure(nb, name)

    folder = Path(out) / name
    source = folder / "src"
    shutil.rmtree(folder, ignore_errors=True)
    source.mkdir(parents=True)
    nbformat.write(nb, source / f"{name}.ipynb")
    (source / "requirements.txt").write_text(_grading_requirements())
    _copy_package(source / "book")

    with contextlib.redirect_stdout(sys.stderr):  # otter logs its progress to stdout
        otter_assign(str(source / f"{name}.ipynb"), str(folder), no_pdfs=True, no_run_tests=not run_tests)

    generated = sorted((folder / "autograder").glob(f"{name}-autograder_*.zip"))
    if not generated:
        raise RuntimeError(f"{name}: otter assign wrote no autograder zip")
    release = Release(lab=name, folder=folder, student=folder / "student" / f"{name}.ipynb",
                      student_zip=folder / f"{name}-student.zip", autograder=folder / f"{name}-autograder.zip",
                      solution=folder / f"{name}-solution.ipynb", site_notebook=STUDENT_SITE / f"{name}.ipynb")
    shutil.copy2(generated[-1], release.autograder)
    shutil.copy2(folder / "autograder" / f"{name}.ipynb", release.solution)
    _zip_folder(folder / "student", release.student_zip)
    if not site:
        return release
    STUDENT_SITE.mkdir(exist_ok=True)
    partial = release.site_notebook.with_name(f".{name}.{os.getpid()}.partial")
    shutil.copy2(release.student, partial)
    os.replace(partial, release.site_notebook)  # atomic: a build reading it never sees half a file
    return release


def student(lab):
    """Only the student notebook of a lab, into ``labs/_student/`` (built in a scratch folder, so
    builds running side by side do not collide); returns its path."""
    with tempfile.TemporaryDirectory(prefix="book-student-") as scratch:
        return assign(lab, run_tests=False, out=Path(scratch)).site_notebook


# --- grading --------------------------------------------------------------------------------


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


_EVENTS = []  # what the execution guards did, for the submission being graded in this process


def _first_line(source):
    line = next((text for text in source.splitlines() if text.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _install_execution_guards(cell_time_limit_s, output_limit_chars=OUTPUT_LIMIT_CHARS):
    """Make otter's notebook executor time-limit cells, survive hangs and kernel deaths, cap output.

    ``otter run`` builds ``nbconvert``'s ``ExecutePreprocessor`` with no time
    limit; this replaces that class (in this process only) before otter
    imports it. Checks inserted by otter are bounded by book.grading's own
    limits and get twenty times the cell limit.
    """
    from queue import Empty

    from nbclient.exceptions import DeadKernelError
    from nbclient.util import ensure_async, run_sync
    from nbconvert import preprocessors
    from nbformat.v4 import new_output
    from traitlets import Bool, Integer

    base = preprocessors.ExecutePreprocessor
    if getattr(base, "book_guarded", False):
        return

    class GuardedExecutePreprocessor(base):
        book_guarded = True
        timeout = Integer(int(cell_time_limit_s), allow_none=True).tag(config=True)
        interrupt_on_timeout = Bool(True).tag(config=True)

        def reset_execution_trackers(self):
            super().reset_execution_trackers()
            self._replay, self._timeouts, self._printed, self._truncated = [], 0, 0, False

        def _get_timeout(self, cell):
            if cell is not None and ("Checker" in cell.source or ".check(" in cell.source):
                return 20 * int(cell_time_limit_s)
            return int(cell_time_limit_s)

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self._timeouts, self._printed, self._truncated = 0, 0, False
            try:
                cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            except DeadKernelError:  # the kernel died, or was stopped after ignoring an interrupt
                if self._timeouts < 2:
                    _EVENTS.append(f"the kernel died in the cell starting {_first_line(cell.source)!r}; "
                                   "a new one re-ran the earlier cells")
                await asyncio.sleep(0)  # let nbclient's cancelled output poller finish
                await self._restart_and_replay()
                cell.outputs = [new_output("error", ename="DeadKernelError",
                                           evalue="stopped by the grader", traceback=[])]
                return cell
            if cell.cell_type == "code" and self._timeouts == 0 and cell.source.strip():
                self._replay.append(cell.source)
            return cell

        # nbclient binds the synchronous wrapper to its own coroutine; bind it to ours.
        execute_cell = run_sync(async_execute_cell)

        async def _async_handle_timeout(self, timeout, cell=None):
            self._timeouts += 1
            where = f"the cell starting {_first_line(cell.source)!r}" if cell is not None else "a cell"
            if self._timeouts == 1:
                _EVENTS.append(f"{where} ran past the {timeout} s time limit and was interrupted")
                await ensure_async(self.km.interrupt_kernel())
                return None  # wait (up to the limit again) for the interrupted cell to stop
            _EVENTS.append(f"{where} did not stop when interrupted (a compiled loop?); its kernel was "
                           "stopped and a new one re-ran the earlier cells")
            with contextlib.suppress(RuntimeError):  # restart=True keeps the manager's zmq context
                await ensure_async(self.km.shutdown_kernel(now=True, restart=True))
            raise DeadKernelError("stopped after the time limit")  # handled in async_execute_cell

        async def _restart_and_replay(self):
            """A new kernel and client (the old client's sockets may be mid-read), then the earlier
            cells again, so the questions after the lost cell are graded as usual."""
            with contextlib.suppress(RuntimeError):
                if await ensure_async(self.km.is_alive()):
                    await ensure_async(self.km.shutdown_kernel(now=True, restart=True))
            await ensure_async(self.kc.stop_channels())
            await self.async_start_new_kernel()
            await self.async_start_new_kernel_client()
            for source in self._replay:
                msg_id = self.kc.execute(source, store_history=False, stop_on_error=False)
                deadline = time.monotonic() + self._get_timeout(None)
                while True:
                    try:
                        reply = await ensure_async(self.kc.shell_channel.get_msg(
                            timeout=max(0.1, deadline - time.monotonic())))
                    except Empty:
                        _EVENTS.append("re-running the earlier cells timed out; later questions may score zero")
                        return
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break

        def output(self, outs, msg, display_id, cell_index):
            # The guard cell caps what Python prints; this caps the rest (C-level prints, displays).
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                content = json.dumps(msg.get("content", {}))
                self._printed += len(content)
                capped = self._printed > 2 * output_limit_chars
                if (capped or TRUNCATED in content) and not self._truncated:
                    self._truncated = True
                    _EVENTS.append(f"a cell printed more than {output_limit_chars:,} characters; the rest "
                                   "was discarded")
                if capped:
                    return None
            return super().output(outs, msg, display_id, cell_index)

    preprocessors.ExecutePreprocessor = GuardedExecutePreprocessor


TRUNCATED = "[further output discarded by the grader]"

OUTPUT_GUARD_CELL = """\
# Inserted by the grader (book.labs): keep at most {limit:,} printed characters.
import sys as _book_sys


class _BookGradingCap:
    def __init__(self, stream, limit):
        self._stream, self._left = stream, limit

    def write(self, text):
        if self._left > 0:
            self._stream.write(text[: self._left])
            if len(text) >= self._left:
                self._stream.write("\\n[further output discarded by the grader]\\n")
        self._left -= len(text)
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_book_sys.stdout = _BookGradingCap(_book_sys.stdout, {limit})
_book_sys.stderr = _BookGradingCap(_book_sys.stderr, {limit})
"""


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
    _EVENTS.clear()
    with tempfile.TemporaryDirectory(prefix="book-grade-") as workdir:
        log = Path(workdir) / "grading-log.jsonl"
        os.environ["BOOK_GRADING_LOG"] = str(log)
        try:
            notebook = _prepare(submission, workdir)
            _install_execution_guards(cell_time_limit_s)
            with contextlib.redirect_stdout(sys.stderr):
                results = otter_run(str(notebook), autograder=str(autograder), output_dir=None, no_logo=True)
            if results.catastrophic_error is not None:
                raise RuntimeError(f"otter could not grade it: {results.catastrophic_error}")
            for name, test_file in results.results.items():
                failures = [r for r in test_file.test_case_results if not r.passed]
                graded.questions[name] = {
                    "score": float(test_file.score), "possible": float(test_file.possible),
                    "reason": _reason(failures[0].message, failures[0].test_case.hidden) if failures else "",
                    "cases": [{"passed": bool(r.passed), "hidden": bool(r.test_case.hidden),
                               "message": r.message} for r in test_file.test_case_results],
                }
            graded.total = float(sum(q["score"] for q in graded.questions.values()))
            graded.possible = float(sum(q["possible"] for q in graded.questions.values()))
            graded.status = "graded"
        except Exception as exc:  # noqa: BLE001 - a submission must never stop the batch
            import traceback

            traceback.print_exc()  # into the grading log
            graded.notes.append(f"could not be graded: {type(exc).__name__}: {str(exc)[:300]}")
        if log.exists():
            for line in log.read_text().splitlines():
                record = json.loads(line)
                if record.get("check") == "speedup" and record.get("ratio") is not None:
                    graded.speedups[record["name"]] = record["ratio"]
    graded.notes = _EVENTS + graded.notes
    graded.seconds = round(time.monotonic() - started, 2)
    return graded


def _questions_of(autograder):
    """Question names and points of an autograder zip, from its test files."""
    found = {}
    with zipfile.ZipFile(autograder) as archive:
        for member in sorted(archive.namelist()):
            if member.startswith("tests/") and member.endswith(".py"):
                text = archive.read(member).decode()
                points = re.search(r"^points\s*=\s*([\d.]+)", text, re.M)
                found[Path(member).stem] = float(points.group(1)) if points else 1.0
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

    from concurrent.futures import ThreadPoolExecutor

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


# --- command line ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m book.labs", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_assign = commands.add_parser("assign", help="student release, autograder zip and solutions of labs")
    p_assign.add_argument("labs", nargs="*", help="lab names (default: every labs/lab_*.md)")
    p_assign.add_argument("--no-run-tests", action="store_true",
                          help="do not run the tests against the solutions (faster)")
    p_student = commands.add_parser("student", help="only the student notebooks, into labs/_student/")
    p_student.add_argument("labs", nargs="*")
    p_grade = commands.add_parser("grade", help="grade submissions into a CSV (no Docker)")
    p_grade.add_argument("autograder", help="a lab name or an autograder zip")
    p_grade.add_argument("submissions", nargs="+", help="notebooks, export zips, or folders of them")
    p_grade.add_argument("-o", "--output", default="grades.csv", help="CSV of scores (default grades.csv)")
    p_grade.add_argument("--feedback", help="folder for per-submission feedback (default <csv>_feedback)")
    p_grade.add_argument("--cell-time-limit", type=float, default=CELL_TIME_LIMIT_S)
    p_grade.add_argument("--submission-time-limit", type=float, default=SUBMISSION_TIME_LIMIT_S)
    p_grade.add_argument("--call-time-limit", type=float, help="the longest a test's call of student "
                         "code may run (default: the test's own limit, 10 s unless it sets one)")
    p_grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p_grade.add_argument("--full", action="store_true", help="run narrative cells at full size (BOOK_QUICK=0)")
    p_one = commands.add_parser("grade-one")  # internal: one submission, in a fresh process
    p_one.add_argument("autograder")
    p_one.add_argument("submission")
    p_one.add_argument("result_json")
    p_one.add_argument("--cell-time-limit", type=float, default=CELL_TIME_LIMIT_S)
    args = parser.parse_args(argv)

    if args.command in ("assign", "student"):
        for lab in args.labs or [p.stem for p in masters()]:
            started = time.monotonic()
            if args.command == "assign":
                shown = assign(lab, run_tests=not args.no_run_tests).folder
            else:
                shown = student(lab)
            shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
            print(f"{Path(lab).stem}: {shown} ({time.monotonic() - started:.1f} s)")
    elif args.command == "grade":
        graded = grade(args.autograder, args.submissions, args.output, args.feedback,
                       args.cell_time_limit, args.submission_time_limit, args.call_time_limit,
                       jobs=args.jobs, quick=not args.full)
        print(f"{len(graded)} submissions graded into {args.output}")
    elif args.command == "grade-one":
        graded = grade_one(args.autograder, args.submission, args.cell_time_limit)
        Path(args.result_json).write_text(json.dumps(asdict(graded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
