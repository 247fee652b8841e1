"""The English–Korean glossary: well-formed, sorted, bilingual."""

import re

from conftest import ROOT

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def rows():
    lines = (ROOT / "chapters" / "glossary.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")][2:]  # skip header and rule
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table]


def test_rows_have_four_cells_and_both_languages():
    for row in rows():
        assert len(row) == 4, row
        english, korean, meaning, _ = row
        assert english and meaning, row
        assert HANGUL.search(korean), f"{english}: no Korean term"


def test_rows_are_in_alphabetical_order():
    english = [row[0].lower() for row in rows()]
    assert english == sorted(english)


def test_the_note_s_key_terms_are_present():
    korean = " ".join(row[1] for row in rows())
    for term in ("경량화", "지연 시간", "처리량", "참조 지역성", "양자화", "가지치기", "중간 표현", "타일링"):
        assert term in korean, term
