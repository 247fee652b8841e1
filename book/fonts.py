"""The site's Korean web font: Noto Sans CJK KR cut down to the characters the book uses.

The book is in English with the lecture note's Korean terms beside it. A
reader whose system has no CJK font would see those terms as empty boxes,
so the site ships its own font for them: a subset of Noto Sans CJK KR (SIL
Open Font License, from Debian's ``fonts-noto-cjk``) holding exactly the
Hangul and CJK characters of the book's sources, about a hundred glyphs
instead of sixty thousand. A stylesheet beside it declares the face with a
``unicode-range``, so browsers use it for Korean text only and keep the
theme's font for everything else.

When a page adds a Korean word, regenerate both files with one command::

    python -m book.fonts        # or: make fonts

``tests/test_fonts.py`` fails while a character of the sources is missing
from the shipped font.
"""

import argparse
import re
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

ROOT = Path(__file__).resolve().parent.parent
FONT_DIR = Path(__file__).resolve().parent / "static" / "fonts"
FONT_FILE = FONT_DIR / "noto-sans-kr-book.woff2"
CSS_FILE = FONT_DIR / "korean.css"
# The family name pages use in CSS; the font keeps its own (Noto is not a reserved font name).
FAMILY = "Book Korean"
SOURCE_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SOURCE_FAMILY = "Noto Sans CJK KR"
# The rendered pages (lab masters stand for their student versions) and the bibliography.
SOURCES = ("intro.md", "chapters/*.md", "labs/*.md", "references.bib")
# Unicode blocks the face serves: Hangul (jamo, compatibility jamo, syllables),
# CJK punctuation, Han ideographs (hanja) and full-width forms.
RANGES = ((0x1100, 0x11FF), (0x3000, 0x303F), (0x3130, 0x318F), (0x4E00, 0x9FFF),
          (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF), (0xFF00, 0xFFEF))
CHARACTER_CLASS = re.compile("[" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in RANGES) + "]")


def book_characters(root=ROOT, sources=SOURCES):
    """The characters of the font's Unicode blocks that the book's sources use.

    Parameters
    ----------
    root : str or Path
        The repository root.
    sources : sequence of str
        Glob patterns under ``root``.

    Returns
    -------
    set of str
        Single characters, e.g. ``{"가", "속"}``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    found = set()
    for pattern in sources:
        for path in sorted(root.glob(pattern)):
            found.update(CHARACTER_CLASS.findall(path.read_text(encoding="utf-8")))
    return found


def font_characters(path=FONT_FILE):
    """The characters a font file maps to glyphs (its ``cmap``), as a set of str."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no font at {path}; make it with `python -m book.fonts`")
    with TTFont(path) as font:
        return {chr(code) for code in font.getBestCmap()}


def _source_font(source, family):
    """The face named ``family`` from a font file or collection (.ttc)."""
    fonts = TTCollection(source).fonts if str(source).endswith(".ttc") else [TTFont(source)]
    for font in fonts:
        if font["name"].getDebugName(1) == family:
            return font
    raise ValueError(f"{source} has no face named {family!r}")


def make_subset(characters, source=SOURCE_FONT, family=SOURCE_FAMILY):
    """Cut the source font down to ``characters``.

    Parameters
    ----------
    characters : iterable of str
        Single characters to keep; each must be in the source font.
    source : str or Path
        A font file or collection (Debian's ``fonts-noto-cjk`` by default).
    family : str
        The face to take from a collection.

    Returns
    -------
    fontTools.ttLib.TTFont
        The subset, with the source's names and licence kept in its ``name`` table.
    """
    characters = set(characters)
    if not characters or any(len(c) != 1 for c in characters):
        raise ValueError("characters must be a non-empty collection of single characters")
    if not Path(source).exists():
        raise FileNotFoundError(f"no source font at {source}; on Debian: apt-get install fonts-noto-cjk")
    font = _source_font(source, family)
    missing = characters - {chr(code) for code in font.getBestCmap()}
    if missing:
        raise ValueError(f"{family} has no glyph for {''.join(sorted(missing))!r}")
    # Keep every name record: they carry the copyright and the OFL notice.
    options = subset.Options(name_IDs=["*"], name_languages=["*"], name_legacy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in characters])
    subsetter.subset(font)
    return font


def css(font_name=FONT_FILE.name):
    """The stylesheet: the ``@font-face`` and the theme's font stacks with it first.

    The face comes first in each stack because its ``unicode-range`` limits it
    to Korean: Latin text skips it and keeps the theme's font, while Korean
    text never depends on what the reader's system happens to have. The
    stacks are set on ``:root``, which outranks the theme's ``html`` rule
    whatever order the stylesheets load in. Korean wraps between words, as
    Korean is typeset, rather than between any two syllables (``keep-all``
    changes nothing for Latin text).
    """
    unicode_range = ", ".join(f"U+{lo:04X}-{hi:04X}" for lo, hi in RANGES)
    stacks = "\n".join(f"  --pst-font-family-{name}: \"{FAMILY}\", var(--pst-font-family-{system});"
                       for name, system in (("base", "base-system"), ("heading", "base-system"),
                                            ("monospace", "monospace-system")))
    return (f"/* Made by `python -m book.fonts`: do not edit. {SOURCE_FAMILY}, SIL OFL 1.1 (OFL.txt). */\n"
            f"@font-face {{\n  font-family: \"{FAMILY}\";\n  src: url(\"{font_name}\") format(\"woff2\");\n"
            f"  font-display: swap;\n  unicode-range: {unicode_range};\n}}\n"
            f":root {{\n{stacks}\n}}\nbody {{\n  word-break: keep-all;\n}}\n")


def write(characters, font_file=FONT_FILE, css_file=CSS_FILE, source=SOURCE_FONT):
    """Write the subset font (WOFF2) and its stylesheet; returns the font's path."""
    font = make_subset(characters, source)
    font.flavor = "woff2"
    font.recalcTimestamp = False  # the same characters give the same bytes: no spurious diff in git
    Path(font_file).parent.mkdir(parents=True, exist_ok=True)
    font.save(font_file)
    Path(css_file).write_text(css(Path(font_file).name))
    return Path(font_file)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m book.fonts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE_FONT, help="font file or collection to subset")
    args = parser.parse_args(argv)
    characters = book_characters()
    try:
        path = write(characters, source=args.source)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    print(f"{path.relative_to(ROOT)}: {len(characters)} characters, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
