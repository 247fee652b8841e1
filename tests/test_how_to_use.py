"""How to use this book: the commands it (and the README) promise exist and do what they say."""

import re
import subprocess

from conftest import ROOT


def make_dry_run(target):
    return subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)


def commands_in(path):
    return set(re.findall(r"^make (\w+)", (ROOT / path).read_text(), re.MULTILINE))


def test_every_make_command_shown_exists():
    shown = commands_in("chapters/how_to_use.md") | commands_in("README.md")
    assert {"book", "test", "lab", "serve"} <= shown
    for target in shown:
        proc = make_dry_run(target)
        assert proc.returncode == 0, f"`make {target}` is documented but fails: {proc.stderr}"


def test_book_builds_with_warnings_as_errors_and_test_is_quick():
    assert "jupyter-book build . -W -n --keep-going" in make_dry_run("book").stdout
    assert "BOOK_QUICK=1" in make_dry_run("test").stdout


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.MULTILINE)
    assert "make test" in (ROOT / "README.md").read_text()


def test_binder_can_install_the_book():
    assert (ROOT / "runtime.txt").read_text().strip() == "python-3.11"
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-e ." in requirements  # `import book` from any folder
    assert not any(line.startswith(("pytest", "playwright")) for line in requirements)  # test tools live apart
