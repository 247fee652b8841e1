"""Where the book cites each work of its bibliography (the References page).

Pages cite with ``{cite:p}`key``` (or ``{cite:t}``, ``{cite}``); sphinxcontrib-bibtex
links each citation to its entry on the References page, but links back
only within one page. :func:`cited_in` finds, for every key, the pages of the
table of contents that cite it, and :func:`markdown` lists them as links, so
that the References page shows where each work is used.
"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# {cite}`a,b`, {cite:p}`a`, {cite:t}`a`, {cite:ps}`a` ...
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
ENTRY = re.compile(r"^@\w+\{([^,\s]+),", re.MULTILINE)


def bib_keys(bib=ROOT / "references.bib"):
    """The keys of a BibTeX file, in file order."""
    return ENTRY.findall(Path(bib).read_text())


def cited_keys(text):
    """The keys a page's source cites, in order of first use, each once."""
    keys = [key.strip() for group in CITE.findall(text) for key in group.split(",")]
    return list(dict.fromkeys(key for key in keys if key))


def toc_pages(root=ROOT):
    """``(document, source)`` of every page of ``_toc.yml``, in the book's order.

    ``document`` is the name the site builds (``chapters/accelerators``); ``source``
    the file that holds its text: the page itself, or for a lab's generated
    student notebook (``labs/_student/<lab>``) the lab's master ``labs/<lab>.md``.
    """
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    documents = [toc["root"]] + [entry["file"] for part in toc.get("parts", [])
                                 for entry in part.get("chapters", [])]
    pages = []
    for document in documents:
        if document.startswith("labs/_student/"):
            source = Path(root) / "labs" / (document.removeprefix("labs/_student/") + ".md")
        else:
            source = Path(root) / (document + ".md")
        pages.append((document, source))
    return pages


def title(source):
    """A page's title: its first level-one heading, else its file name."""
    found = re.search(r"^# (.+)$", Path(source).read_text(), re.MULTILINE)
    return found.group(1).strip() if found else Path(source).stem


def cited_in(root=ROOT, bib=None):
    """For every key of the bibliography, the documents that cite it, in the book's order.

    Returns
    -------
    dict
        ``{key: [document, ...]}`` over every key of ``references.bib`` (an
        empty list for a work listed but not cited on any page).
    """
    keys = bib_keys(bib or Path(root) / "references.bib")
    where = {key: [] for key in keys}
    for document, source in toc_pages(root):
        if source.exists():
            for key in cited_keys(source.read_text()):
                where.setdefault(key, []).append(document)
    return where


def labels(bib=ROOT / "references.bib"):
    """``{key: "Title (Author et al., year)"}``: how the list names each work (from the BibTeX fields)."""
    from pybtex.database import parse_file  # sphinxcontrib-bibtex's own BibTeX reader

    found = {}
    for key, entry in parse_file(str(bib)).entries.items():
        people = entry.persons.get("author", [])
        if people:
            who = " ".join(people[0].last_names).strip("{}") + (" et al." if len(people) > 1 else "")
        else:
            who = ""
        when = ", ".join(part for part in (who, entry.fields.get("year", "")) if part)
        name = re.sub(r"\\texttt\{([^}]*)\}", r"\1", entry.fields.get("title", key))  # LaTeX markup off
        name = name.replace("\\&", "&").replace("---", "—").replace("--", "–").replace("{", "").replace("}", "")
        found[key] = f"{name} ({when})" if when else name
    return found


def _href(document, here):
    """The built page of ``document`` relative to the built page of ``here`` (both are ``.html``)."""
    depth = here.count("/")
    return "../" * depth + document + ".html"


def markdown(where, titles, names=None, here="chapters/references"):
    """A Markdown list: each work's key and links to the pages that cite it.

    Parameters
    ----------
    where : dict
        ``{key: [document, ...]}``, as from :func:`cited_in`.
    titles : dict
        ``{document: title}`` for the link texts.
    names : dict, optional
        ``{key: text}`` naming each work (as from :func:`labels`); the key by default.
    here : str
        The document the list is shown on (links are relative to it).

    Returns
    -------
    str
        One line per cited work, in the bibliography's order; works no page
        cites are named together at the end.
    """
    names = names or {}
    lines = [f"- {names.get(key, key)} `{key}`: "
             + ", ".join(f"[{titles.get(d, d)}]({_href(d, here)})" for d in documents)
             for key, documents in where.items() if documents]
    unused = [f"`{key}`" for key, documents in where.items() if not documents]
    if unused:
        lines.append("- listed, not cited on a page: " + ", ".join(unused))
    return "\n".join(lines)
