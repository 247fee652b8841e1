"""Measuring honestly: its reference data is a full-size run of the page itself."""

from book import data

from conftest import ROOT

REFERENCE = data.path("harness", "sum_scaling.json")


def test_reference_was_published_by_the_page_at_full_size():
    reference = data.load(REFERENCE)
    assert reference.provenance["source"] == "chapters/measuring_honestly.md"
    assert reference.meta["quick"] is False
    frame = reference.to_frame()
    assert set(frame.kernel) == {"Python sum(list)", "np.sum(array)", "numba loop"}
    assert sorted(set(frame.n)) == [10**k for k in range(1, 8)]


def test_reference_tells_the_chapter_story():
    """At 10^7 elements NumPy's vectorised sum beats the compiled one-accumulator loop,
    which beats the interpreter (the page's prose explains both gaps)."""
    result = data.load(REFERENCE)
    speedup = result.speedup("Python sum(list)").loc[10**7]
    assert speedup["np.sum(array)"] > speedup["numba loop"] > 2


def test_page_uses_the_harness_and_publishes_what_it_loads():
    page = (ROOT / "chapters" / "measuring_honestly.md").read_text()
    assert 'data.publish(result, "harness/sum_scaling.json"' in page
    assert 'data.load(data.path("harness", "sum_scaling.json"))' in page


def test_page_names_the_harness_exceptions_it_admits():
    page = (ROOT / "chapters" / "measuring_honestly.md").read_text()
    chapter1 = (ROOT / "chapters" / "lists_vs_arrays.md").read_text()
    for label in ("lists-vs-arrays-note", "lists-vs-arrays-first-call"):
        assert f"{{ref}}`{label}`" in page
        assert f"({label})=" in chapter1


def test_page_cites_timeit_and_has_the_measured_sections():
    page = (ROOT / "chapters" / "measuring_honestly.md").read_text()
    bib = (ROOT / "references.bib").read_text()
    assert "{cite:p}`python_timeit`" in page and "@misc{python_timeit," in bib
    for heading in ("## Between processes", "## The clock: frequency and turbo", "## Dead code"):
        assert heading in page


def test_sort_exercise_gives_each_kernel_its_own_array():
    """An in-place sort on a shared input would hand every other kernel sorted data."""
    page = (ROOT / "chapters" / "measuring_honestly.md").read_text()
    exercise = page[page.index(":label: measuring_honestly_ex1"):]
    assert "lambda a, b, c: a.sort(kind=\"stable\")" in exercise
    assert "lambda a, b, c: np.sort(b, kind=\"stable\")" in exercise
