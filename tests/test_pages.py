"""book.pages: strings glued into prose show as written."""

import pytest

from book import pages


def test_glued_text_shows_without_quotes_as_text_and_markdown(monkeypatch):
    glued = {}
    monkeypatch.setattr(pages, "glue", lambda name, value, display: glued.update({name: (value, display)}))
    prose = pages.glue_text("l2_size", "1 MiB")
    value, display = glued["l2_size"]
    assert repr(value) == "1 MiB" and value._repr_markdown_() == "1 MiB" and display is False
    assert prose == "1 MiB"
    assert repr(pages.glue_text("ratio", 2.5)) == "2.5"


def test_glue_names_must_be_identifiers():
    with pytest.raises(ValueError, match="identifiers"):
        pages.glue_text("two words", "x")
