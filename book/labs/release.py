"""Releases of a lab: the student notebook, the autograder zip and the solutions (``python -m book.labs
assign``), made with ``otter assign`` from the master as :mod:`book.labs.master` reads it."""

import contextlib
import copy
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from book.labs.master import LABS, ROOT, read

OUT = Path(os.environ.get("BOOK_ASSIGN_DIR") or ROOT / "_build" / "assign")  # where `assign` writes
STUDENT_SITE = LABS / "_student"

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


def _configure(master):
    """Give the master's ASSIGNMENT CONFIG cell the book's settings (the master's own keys win)."""
    import yaml

    if master.config_index is None:
        raise ValueError(f"{master.name}: no raw cell starting with `# ASSIGNMENT CONFIG` (see labs/README.md)")
    if master.config.get("name") != master.name:
        raise ValueError(f"{master.name}: the ASSIGNMENT CONFIG must say `name: {master.name}` "
                         f"(got {master.config.get('name')!r})")
    config = _merge(BOOK_ASSIGNMENT_CONFIG, master.config)
    master.notebook.cells[master.config_index].source = ("# ASSIGNMENT CONFIG\n"
                                                         + yaml.safe_dump(config, sort_keys=False))


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
    """The ``book`` package's modules, subpackages included, bundled with a release so its tests
    import them anywhere."""
    package = ROOT / "book"
    for module in sorted(package.rglob("*.py")):
        if "__pycache__" not in module.parts:
            destination = target / module.relative_to(package)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(module, destination)


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

    master = read(lab)
    name = master.name
    nb = master.notebook
    nb.metadata.pop("jupytext", None)  # generated notebooks are not paired with a text file
    _configure(master)

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
