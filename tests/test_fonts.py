"""The Korean web font: it covers every Korean character of the book, and only those blocks."""

import pytest

from book import fonts

SOURCE_INSTALLED = fonts.SOURCE_FONT.exists()


def test_shipped_font_has_every_korean_character_of_the_book():
    used = fonts.book_characters()
    assert len(used) > 50, "the glossary alone has more Korean characters: is the scan looking at the pages?"
    missing = used - fonts.font_characters()
    assert not missing, (f"{fonts.FONT_FILE.name} lacks {''.join(sorted(missing))}: "
                         "run `make fonts` (python -m book.fonts) and commit book/static/fonts/")


def test_stylesheet_is_the_one_the_module_writes():
    """Regenerating must not change the CSS: nobody edits it by hand."""
    assert fonts.CSS_FILE.read_text() == fonts.css()


def test_unicode_range_limits_the_face_to_korean():
    css = fonts.css()
    assert "U+AC00-D7AF" in css  # Hangul syllables
    assert "U+0000" not in css and "U+0020" not in css  # Latin keeps the theme's font
    assert css.count(f'"{fonts.FAMILY}", var(--pst-font-family-') == 3


def test_the_licence_ships_beside_the_font():
    licence = (fonts.FONT_DIR / "OFL.txt").read_text()
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence and fonts.FONT_FILE.name in licence


def test_book_characters_keeps_only_the_font_s_blocks(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "a.md").write_text("latency (지연 시간) × 2 → é 「」")
    (tmp_path / "notes.txt").write_text("처리량")  # not a source
    assert fonts.book_characters(tmp_path, ["chapters/*.md"]) == set("지연시간「」")


def test_book_characters_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        fonts.book_characters(tmp_path / "nowhere")


def test_font_characters_names_the_fix_for_a_missing_font(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m book.fonts"):
        fonts.font_characters(tmp_path / "none.woff2")


@pytest.mark.skipif(not SOURCE_INSTALLED, reason="needs Debian's fonts-noto-cjk")
def test_write_makes_a_font_with_exactly_the_characters(tmp_path):
    font_file = fonts.write(set("가속"), tmp_path / "f.woff2", tmp_path / "f.css")
    assert fonts.font_characters(font_file) == set("가속")
    assert 'url("f.woff2")' in (tmp_path / "f.css").read_text()


@pytest.mark.skipif(not SOURCE_INSTALLED, reason="needs Debian's fonts-noto-cjk")
def test_make_subset_refuses_bad_characters():
    with pytest.raises(ValueError, match="single characters"):
        fonts.make_subset(["가속"])
    with pytest.raises(ValueError, match="no glyph"):
        fonts.make_subset(["\U0001f600"])  # an emoji: not in Noto Sans CJK
