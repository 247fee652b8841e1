"""Chapter 1, lists vs arrays: the reference data is a full-size run of the page and tells the
chapter's story; the built page has its figures and widget.

The reference files are one full-size run of the page (``make data``), so the ratios checked here
were measured within one run; the thresholds leave wide slack for another quiet machine.
"""

import re

import pytest

from book import data

from conftest import ROOT

PAGE = "chapters/lists_vs_arrays.md"
FILES = {
    "scaling.json": ({"list comprehension", "NumPy x * y", "numba loop (array)", "numba loop (typed.List)"},
                     [int(m * 10**k) for k in range(1, 7) for m in (1, 3)] + [10**7]),
    "pointer_chasing.json": ({"sum(list), objects in list order", "sum(list), objects in random order",
                              "np.sum(array)"}, [10**k for k in range(3, 8)]),
    "dtypes.json": ({"int8", "int16", "int32", "int64", "float32", "float64"}, [10**k for k in range(3, 8)]),
}


def reference(name):
    return data.load(data.path("ch01", name))


@pytest.mark.parametrize("name", FILES)
def test_reference_was_published_by_the_page_at_full_size(name):
    dataset = reference(name)
    assert dataset.provenance["source"] == PAGE
    assert dataset.meta["quick"] is False
    kernels, sizes = FILES[name]
    frame = dataset.to_frame()
    assert set(frame.kernel) == kernels
    assert sorted(set(frame.n)) == sizes
    page = (ROOT / PAGE).read_text()
    assert f'"ch01/{name}"' in page, f"{PAGE} does not publish ch01/{name}"
    assert f'data.path("ch01", "{name}")' in page, f"{PAGE} does not load ch01/{name}"


def test_readme_documents_every_file():
    readme = (ROOT / "data" / "ch01" / "README.md").read_text()
    for name, (kernels, _) in FILES.items():
        assert f"`{name}`" in readme
        for kernel in kernels:
            assert f"`{kernel}`" in readme, f"README.md does not explain kernel {kernel!r} of {name}"
    assert "make data" in readme


def test_scaling_reference_tells_the_chapter_story():
    result = reference("scaling.json")
    ratio = result.speedup("list comprehension")
    # At 10^6 both compiled versions beat the interpreter by far more than the note's 5x.
    assert ratio.loc[10**6, "NumPy x * y"] > 20
    assert ratio.loc[10**6, "numba loop (array)"] > 20
    # The typed list is compiled but not an array: between the two.
    assert 1 < ratio.loc[10**5, "numba loop (typed.List)"] < ratio.loc[10**5, "numba loop (array)"]

    def per_element(kernel, n):
        return result.median(kernel, n) / n

    # Fixed costs dominate small n; memory (and page faults) large n.
    assert per_element("NumPy x * y", 10) > 10 * per_element("NumPy x * y", 10**5)
    assert per_element("NumPy x * y", 10**7) > 1.5 * per_element("NumPy x * y", 10**5)


def test_pointer_chasing_reference_shows_locality():
    result = reference("pointer_chasing.json")
    n = 10**7
    in_order = result.median("sum(list), objects in list order", n)
    assert result.median("sum(list), objects in random order", n) > 2 * in_order
    assert result.median("np.sum(array)", n) * 3 < in_order


def test_dtype_reference_scales_with_bytes():
    result = reference("dtypes.json")
    n = 10**7
    assert result.median("float64", n) > 3 * result.median("int8", n)
    assert result.median("int32", n) < result.median("int64", n)


def test_lab_has_the_questions_the_issue_asks_for():
    """Bytes per element, a speed-graded @njit kernel, a timing repair, predict-then-measure
    (tests/test_labs.py checks that each grades as designed)."""
    lab = (ROOT / "labs" / "lab_01_lists_vs_arrays.md").read_text()
    questions = re.findall(r"# BEGIN QUESTION\nname: (q\d+)", lab)
    assert len(questions) >= 4
    for name in ("list_bytes_per_element", "check_speedup(multiply", "def time_call(", "predicted_ratio",
                 "def make_lists("):
        assert name in lab, f"Lab 1 lost its question about {name}"


@pytest.mark.build
def test_built_page_has_its_figures_and_a_kernel_only_widget(site):
    html = (site.html / "chapters" / "lists_vs_arrays.html").read_text()
    assert html.count('class="plotly-graph-div"') >= 10
    assert "inert" in html  # the note beside the widget that needs a kernel
    assert "application/vnd.jupyter.widget-state+json" in html
    assert "0.1292" in html and "0.0247" in html  # the note's numbers, quoted


def test_page_runs_the_notes_code_as_written_and_the_list_version_beside_it():
    page = (ROOT / PAGE).read_text()
    note_cell = page.index("lst = range(1_000_000)")
    assert "zip(lst, lst)" in page[note_cell:note_cell + 200]
    assert page.index("lst = list(range(1_000_000))") > note_cell
    assert "lst = range(1_000_000)" in page[page.index("NOTE_SCRIPT"):], "the fresh-process script runs the note"


def test_core_idea_comes_before_the_first_call_forensics():
    page = (ROOT / PAGE).read_text()
    order = [page.index(f"({label})=") for label in ("lists-vs-arrays-note", "lists-vs-arrays-harness",
                                                      "lists-vs-arrays-memory", "lists-vs-arrays-pointer",
                                                      "lists-vs-arrays-first-call", "lists-vs-arrays-scaling")]
    assert order == sorted(order)


def test_dtype_reference_is_bandwidth_bound_in_cache():
    """At n = 10^5 every dtype moves bytes at about one rate (the page's sentence says so when true)."""
    result = reference("dtypes.json")
    n = 10**5
    rates = [3 * {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4, "float64": 8}[k] * n
             / result.median(k, n) for k in FILES["dtypes.json"][0]]
    assert max(rates) < 1.5 * min(rates)
    page = (ROOT / PAGE).read_text()
    assert "the limit is the SIMD units" not in page
    assert "fits_in(" in page  # cache levels come from the card, not from a sentence
