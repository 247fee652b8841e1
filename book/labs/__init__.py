"""Lab releases and batch grading (lab format: ``labs/README.md``; guide: "Teaching with this book").

Command line::

    python -m book.labs assign [LAB ...] [--no-run-tests]  # student release, autograder zip, solutions
    python -m book.labs student [LAB ...]                  # only the student notebooks (website, Binder)
    python -m book.labs grade LAB_OR_AUTOGRADER_ZIP SUBMISSION_OR_FOLDER ... [-o grades.csv]

Modules, each one job: :mod:`~book.labs.master` (the one reader of lab
masters), :mod:`~book.labs.release` (``assign``, ``student``),
:mod:`~book.labs.grade` (batch grading), :mod:`~book.labs.guard` (the
execution guard around ``otter run``) and ``__main__`` (this command line).

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

from book.labs.grade import CELL_TIME_LIMIT_S, SUBMISSION_TIME_LIMIT_S, Graded, grade, grade_one
from book.labs.guard import OUTPUT_LIMIT_CHARS
from book.labs.master import Master, Planted, Question, Test, master_path, masters, planted, questions, read
from book.labs.release import OUT, STUDENT_SITE, Release, assign, student

__all__ = ["CELL_TIME_LIMIT_S", "OUTPUT_LIMIT_CHARS", "OUT", "STUDENT_SITE", "SUBMISSION_TIME_LIMIT_S", "Graded",
           "Master", "Planted", "Question", "Release", "Test", "assign", "grade", "grade_one", "master_path",
           "masters", "planted", "questions", "read", "student"]
