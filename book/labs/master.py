"""The one reader of lab masters, ``labs/lab_NN_<topic>.md`` (format: ``labs/README.md``).

:func:`read` walks a master's cells once and returns a :class:`Master`: its
assignment config, its questions with their solution lines and test cells,
its planted answers, and every line the student release shows. Releases,
the grading tests and the leak tests all read masters through it.
"""

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABS = ROOT / "labs"

_PLANTED = re.compile(r"^#\s*(PLANTED|BASELINE)\s+(\w+)\s*:?\s*(.*)$", re.IGNORECASE)


@dataclass
class Planted:
    """A raw ``# IGNORE`` cell of a master planting an answer for the grading tests."""

    kind: str  # "PLANTED" (wrong, passes the public tests) or "BASELINE" (right, baseline speed)
    question: str
    note: str
    code: str


@dataclass
class Test:
    """One test cell of a question: one test function and one call to it."""

    source: str
    hidden: bool
    names: list  # the notebook names the test function takes

    @property
    def speed(self):
        """Whether the test grades speed (calls ``check_speedup``)."""
        return "check_speedup" in self.source


@dataclass
class Question:
    """One question of a master: its points, the lines otter strips from its solution, its tests
    (in the order of the master, which is the order of the autograder's test cases)."""

    name: str
    points: float  # the question's total; ``case_points`` splits it over the tests when the master does
    solution_lines: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    case_points: list = None  # ``points: [1, 2]`` in the question's config: one number per test, in order
    manual: bool = False  # ``manual: true``: a written answer, graded by hand, with no tests

    @property
    def public_tests(self):
        return [test.source for test in self.tests if not test.hidden]

    @property
    def hidden_tests(self):
        return [test.source for test in self.tests if test.hidden]

    @property
    def names(self):
        """The notebook names the question's tests take, in order of appearance."""
        return list(dict.fromkeys(name for test in self.tests for name in test.names))

    @property
    def speed_graded(self):
        return any(test.speed for test in self.tests)


@dataclass
class Master:
    """A lab master, read once (see :func:`read`)."""

    path: Path
    notebook: object  # the jupytext notebook, as written
    config: dict = field(default_factory=dict)  # the master's own ASSIGNMENT CONFIG keys
    config_index: int = None  # index of the ASSIGNMENT CONFIG cell
    questions: list = field(default_factory=list)
    planted: list = field(default_factory=list)
    public_lines: list = field(default_factory=list)  # every line the student release shows

    @property
    def name(self):
        return self.path.stem


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


def _raw_header(cell):
    return cell.source.splitlines()[0].strip().upper() if cell.cell_type == "raw" and cell.source.strip() else ""


def _yaml_body(cell):
    import yaml

    return yaml.safe_load("\n".join(cell.source.splitlines()[1:])) or {}


def solution_lines(source):
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
    tree = ast.parse(source)
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef)), None)
    if function is None:
        raise ValueError(f"a test cell must define one test function; this one does not:\n{source[:200]}")
    return [arg.arg for arg in function.args.args if arg.arg != "env"]


def _is_hidden(lines):
    return bool(lines) and lines[0].lstrip().startswith("#") and "hidden" in lines[0].lower()


def _planted(lines):
    """The Planted of a raw cell's lines, or None when it plants nothing."""
    if len(lines) >= 2 and re.match(r"^#\s*IGNORE\b", lines[0], re.I):
        match = _PLANTED.match(lines[1].strip())
        if match:
            return Planted(match.group(1).upper(), match.group(2), match.group(3).strip(),
                           "\n".join(lines[2:]).strip() + "\n")
    return None


def read(lab):
    """Read a lab master.

    Parameters
    ----------
    lab : str or Path
        The lab's name (``"lab_00_warmup"``) or its master's path.

    Returns
    -------
    Master
        Its config, questions (points, solution lines, tests), planted answers, and the lines
        students see: everything outside raw cells, except solution lines and hidden tests.
    """
    import jupytext

    path = master_path(lab)
    master = Master(path=path, notebook=jupytext.read(path))
    current, block = None, None
    for index, cell in enumerate(master.notebook.cells):
        header, lines = _raw_header(cell), cell.source.splitlines()
        if header.startswith("# ASSIGNMENT CONFIG"):
            master.config, master.config_index = _yaml_body(cell), index
        elif header.startswith("# BEGIN QUESTION"):
            config = _yaml_body(cell)
            points = config.get("points") or 1
            split = [float(p) for p in points] if isinstance(points, list) else None
            current = Question(str(config["name"]), sum(split) if split else float(points), case_points=split,
                               manual=bool(config.get("manual")))
            master.questions.append(current)
        elif header.startswith("# END QUESTION"):
            current = None
        elif header.startswith("# BEGIN SOLUTION") or header.startswith("# BEGIN TESTS"):
            block = header.split()[2]
        elif header.startswith("# END SOLUTION") or header.startswith("# END TESTS"):
            block = None
        elif cell.cell_type == "raw":  # planted answers and otter's other raw cells never reach students
            plant = _planted(lines)
            if plant is not None:
                master.planted.append(plant)
        elif block == "SOLUTION" and cell.cell_type == "code":
            stripped = solution_lines(cell.source)
            if current is not None:
                current.solution_lines += stripped
            master.public_lines += [line for line in lines if line not in stripped and "SOLUTION" not in line]
        elif block == "TESTS":
            hidden = _is_hidden(lines)
            if current is not None and cell.cell_type == "code":
                current.tests.append(Test(cell.source, hidden, _test_names(cell.source)))
            if not hidden:
                master.public_lines += lines
        else:
            master.public_lines += lines
    names = [q.name for q in master.questions]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{master.name}: questions named more than once: {repeated}")
    return master


def questions(lab):
    """The questions of a master, in order (see :func:`read`)."""
    return read(lab).questions


def planted(lab):
    """The planted answers of a master (see labs/README.md, "Planted answers")."""
    return read(lab).planted
