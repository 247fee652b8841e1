"""Where the book's reference measurements came from, read from ``data/`` itself.

Every data set under ``data/`` is a folder with a README (what the files
hold, how they were made) and JSON data files that carry the hardware card of
the machine that measured them and their provenance (the page, the command,
when). :func:`catalog` joins the two into one table, which the page "How the
data was measured" shows (:func:`markdown`), so that page can never
disagree with the files.
"""

import re
from pathlib import Path

import pandas as pd

from book import data
from book.hardware import card

# "## `scaling.json`": a README section that describes one file.
FILE_HEADING = re.compile(r"^##\s+`([^`]+)`\s*$")


def readme_descriptions(readme):
    """A data folder's README as ``(title, {file name: first sentence of its section})``.

    Parameters
    ----------
    readme : str or Path
        A ``data/<folder>/README.md``: a ``# title`` line, and optionally one
        ``## `file.json` `` section per file.

    Returns
    -------
    tuple of (str, dict)
        The title, and the first sentence of each file's section (Markdown,
        as written), keyed by file name.
    """
    lines = Path(readme).read_text(encoding="utf-8").splitlines()
    titles = [line[2:].strip() for line in lines if line.startswith("# ")]
    if not titles:
        raise ValueError(f"{readme}: no '# title' line")
    descriptions, current, paragraph = {}, None, []
    for line in lines + [""]:
        heading = FILE_HEADING.match(line)
        if heading:
            current, paragraph = heading.group(1), []
        elif current and line.strip():
            paragraph.append(line.strip())
        elif current and paragraph:  # the blank line that ends the section's first paragraph
            text = " ".join(paragraph)
            descriptions[current] = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
            current = None
    return titles[0], descriptions


def catalog(data_dir=data.DATA_DIR):
    """Every data file of the book: what it holds, the page and command that made it, the machine, the date.

    Parameters
    ----------
    data_dir : str or Path
        The folder of data sets (the book's ``data/`` by default). Each
        sub-folder with JSON data files must have a ``README.md``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``data set`` (the file's path under ``data_dir``), with
        columns ``what`` (its README's description, or the README's title),
        ``made by`` (the page), ``command``, ``measured (UTC)``,
        ``machine`` (the hardware card, :func:`book.hardware.card`) and
        ``records``.

    Examples
    --------
    >>> catalog().loc["ch02/stream.json", "made by"]  # doctest: +SKIP
    'chapters/what_makes_computation_fast.md'
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no data folder at {data_dir}")
    rows = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.json"))
        if not files:
            continue
        readme = folder / "README.md"
        if not readme.exists():
            raise FileNotFoundError(f"{folder} has data files but no README.md saying how they were made")
        title, descriptions = readme_descriptions(readme)
        for file in files:
            result = data.load(file)
            provenance = result.provenance
            measured = result.meta.get("measured_utc") or provenance.get("saved_utc") or ""
            rows.append({
                "data set": file.relative_to(data_dir).as_posix(),
                "what": descriptions.get(file.name, title),
                "made by": provenance.get("source", "not recorded"),
                "command": provenance.get("command", "not recorded"),
                "measured (UTC)": measured[:16].replace("T", " "),
                "machine": card(result.meta),
                "records": len(result.records),
            })
    columns = ["data set", "what", "made by", "command", "measured (UTC)", "machine", "records"]
    return pd.DataFrame(rows, columns=columns).set_index("data set")


def markdown(table):
    """A :func:`catalog` table as a Markdown list, one entry per data set (narrower than a table).

    Parameters
    ----------
    table : pandas.DataFrame
        The result of :func:`catalog`.

    Returns
    -------
    str
        Markdown: the data set, what it holds, the command and date, the machine.
    """
    missing = {"what", "command", "measured (UTC)", "records", "machine"} - set(table.columns)
    if missing:
        raise ValueError(f"not a catalog() table: no column {sorted(missing)}")
    return "\n".join(
        f"- **`{name}`**: {row['what']}  \n"
        f"  Made by `{row['command']}` on {row['measured (UTC)']} UTC; {row['records']} records.  \n"
        f"  Machine: {row['machine']}."
        for name, row in table.iterrows())
