"""The command line of :mod:`book.labs`: ``python -m book.labs assign|student|grade ...``."""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import book.labs
from book.labs.grade import CELL_TIME_LIMIT_S, SUBMISSION_TIME_LIMIT_S, grade, grade_one
from book.labs.master import ROOT, masters
from book.labs.release import assign, student


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m book.labs", description=book.labs.__doc__.split("\n\n")[0])
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
