"""Helpers for the pages' prose: numbers and sentences computed from measurements.

A page never types a measured number into its text. It computes a string and
glues it (myst-nb's ``glue``); the prose shows it with ``{glue:text}`` (plain)
or ``{glue:md}`` (a sentence with Markdown in it).
"""

from myst_nb import glue


class Prose(str):
    """A string that displays as itself: no quotes as text, rendered as Markdown."""

    def __repr__(self):
        return str(self)

    def _repr_markdown_(self):
        return str(self)


def glue_text(name, text):
    """Glue a string for the prose, shown as written.

    Parameters
    ----------
    name : str
        The key the prose uses: ``{glue:text}`name``` or ``{glue:md}`name```.
    text : str or number
        What to show. Format numbers before gluing (``f"{x:.2g}"``): only
        the page knows how many digits its measurement supports.

    Returns
    -------
    Prose
        The glued string, so a page can use it again.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue names must be identifiers (letters, digits, _), got {name!r}")
    prose = Prose(text)
    glue(name, prose, display=False)
    return prose
