"""book.kernels.cpu against plain NumPy/Python references, over edge sizes."""

import sys

import numpy as np
import pytest

from book import asm
from book.kernels import cpu
from book.kernels.memory import LINE, chase


def follow(buffer, start, steps):
    """The reference pointer chase, in Python."""
    i = int(start)
    for _ in range(steps):
        i = int(buffer[i])
    return i


@pytest.mark.parametrize("count", [1, 2, 7, 64])
@pytest.mark.parametrize("stride", [8, LINE, cpu.PAGE + LINE])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_visit_order_places_count_words_stride_apart(count, stride, order):
    positions = cpu.visit_order(count, stride, order=order, seed=count)
    assert positions.dtype == np.uint64 and positions.size == count
    assert sorted(positions.tolist()) == [k * stride // 8 for k in range(count)]
    if order == "sequential":
        assert positions.tolist() == sorted(positions.tolist())


@pytest.mark.parametrize("pages", [1, 2, 9, 500])
def test_one_line_per_page_puts_one_word_in_each_page_on_a_line_boundary(pages):
    positions = cpu.one_line_per_page(pages, seed=pages)
    assert positions.dtype == np.uint64 and positions.size == pages
    page_of = positions.astype(np.int64) * 8 // cpu.PAGE
    assert sorted(page_of.tolist()) == list(range(pages))
    assert (positions % (LINE // 8) == 0).all()
    assert 0 in positions.tolist(), "memory.chase starts at buffer[0]: word 0 must be on the cycle"
    if pages >= 500:  # spread over the lines of a page, so over the cache's sets
        assert np.unique(positions * 8 % cpu.PAGE).size > 32
    with pytest.raises(ValueError):
        cpu.one_line_per_page(0)


def test_random_order_is_not_address_order():
    positions = cpu.visit_order(1000, LINE, seed=1)
    assert positions.tolist() != sorted(positions.tolist())


@pytest.mark.parametrize("count, stride, order", [(0, 64, "random"), (4, 0, "random"), (4, 12, "random"),
                                                  (4, 64, "backwards"), (True, 64, "random"), (2.0, 64, "random")])
def test_visit_order_rejects_bad_arguments(count, stride, order):
    with pytest.raises(ValueError):
        cpu.visit_order(count, stride, order=order)


@pytest.mark.parametrize("count", [1, 2, 5, 1000])
def test_link_cycle_visits_every_position_once_per_lap(count):
    positions = cpu.visit_order(count, cpu.PAGE + LINE, seed=3)
    buffer = cpu.link_cycle(positions)
    assert buffer.dtype == np.uint64 and buffer.size % (LINE // 8) == 0 and buffer.size > positions.max()
    visited, i = [], int(positions[0])
    for _ in range(count):
        visited.append(i)
        i = int(buffer[i])
    assert visited == positions.tolist() and i == int(positions[0])
    assert int(chase(buffer, count)) == follow(buffer, 0, count + 1)  # numba's chase (from buffer[0]) agrees


def test_link_cycle_fills_a_given_buffer_and_rejects_bad_positions():
    out = np.zeros(64, dtype=np.uint64)
    assert cpu.link_cycle(np.array([8, 0]), out=out) is out and out[0] == 8 and out[8] == 0
    for bad in ([], [1, 1], [-1, 2], [[0, 8]], [0.0, 8.0]):
        with pytest.raises(ValueError):
            cpu.link_cycle(np.array(bad))
    with pytest.raises(ValueError):
        cpu.link_cycle(np.array([0, 64]), out=out)  # too short
    with pytest.raises(ValueError):
        cpu.link_cycle(np.array([0, 8]), out=np.zeros(64))  # not uint64


@pytest.mark.parametrize("huge", [False, True])
def test_page_backed_zeros_is_an_aligned_writable_zero_buffer(huge):
    buffer = cpu.page_backed_zeros(3 * cpu.HUGE_PAGE + 8, huge)
    assert buffer.dtype == np.uint64 and buffer.size == (3 * cpu.HUGE_PAGE + 8) // 8
    assert not buffer.any() and buffer.flags.writeable
    if sys.platform.startswith("linux"):
        assert buffer.ctypes.data % cpu.HUGE_PAGE == 0
    buffer[:] = 1
    granted = cpu.huge_page_bytes(buffer)
    if granted is not None:
        assert granted >= 0
        if not huge:
            assert granted == 0, "MADV_NOHUGEPAGE was ignored"
        elif "[never]" not in open("/sys/kernel/mm/transparent_hugepage/enabled").read():
            assert granted > 0, "MADV_HUGEPAGE on a private mapping should get huge pages where THP is enabled"
    with pytest.raises(ValueError):
        cpu.page_backed_zeros(4, huge)


@pytest.mark.parametrize("chains", [1, 2, 3, 8])
@pytest.mark.parametrize("steps", [0, 1, 7, 100])
def test_chase_chains_follows_each_chain_like_the_reference(chains, steps):
    positions = cpu.visit_order(37, LINE, seed=chains)
    buffer = cpu.link_cycle(positions)
    starts = positions[:chains].copy()
    reached = cpu.chase_chains(buffer, starts, steps)
    assert reached.tolist() == [follow(buffer, s, steps) for s in starts]
    assert starts.tolist() == positions[:chains].tolist(), "the starts must not be modified"


def test_chase_chains_with_no_chains_and_bad_steps():
    buffer = cpu.link_cycle(cpu.visit_order(4, LINE))
    assert cpu.chase_chains(buffer, np.zeros(0, dtype=np.uint64), 5).size == 0
    with pytest.raises(ValueError):
        cpu.chase_chains(buffer, np.zeros(1, dtype=np.uint64), -1)


@pytest.mark.parametrize("steps", [0, 1, 5, 33])
@pytest.mark.parametrize("adds", [0, 1, 6])
def test_chase_with_adds_chases_and_adds(steps, adds):
    buffer = cpu.link_cycle(cpu.visit_order(9, LINE, seed=2))
    index, total = cpu.chase_with_adds(buffer, steps, adds)
    assert total == steps * adds
    assert int(index) == (follow(buffer, 0, steps) if steps else 0)
    with pytest.raises(ValueError):
        cpu.chase_with_adds(buffer, -1, adds)


def threshold_data(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1001])
def test_sum_above_matches_numpy(n):
    x = threshold_data(n, seed=n)
    assert cpu.sum_above(x, 128) == x[x >= 128].sum()
    assert cpu.sum_above(x[::3], 128) == x[::3][x[::3] >= 128].sum()  # a strided view


@pytest.mark.parametrize("kernel", [cpu.keep_above, cpu.keep_above_branchless])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1001])
def test_keep_above_matches_numpy_boolean_indexing(kernel, n):
    x = threshold_data(n, seed=n)
    for data in (x, np.sort(x), x[::2]):
        out = np.full(data.size, -1)
        count = kernel(data, 128, out)
        np.testing.assert_array_equal(out[:count], data[data >= 128])


@pytest.mark.parametrize("kernel", [cpu.keep_above, cpu.keep_above_branchless])
def test_keep_above_needs_room_for_every_value(kernel):
    with pytest.raises(ValueError):
        kernel(np.arange(4), 2, np.zeros(3, dtype=np.int64))


def conditional_jumps(kernel):
    """Conditional jumps in the hottest loop of a compiled kernel, besides the loop's own back edge."""
    loop = asm.hottest_loop(kernel.inspect_asm(kernel.signatures[0]))
    return [line for line in loop.splitlines() if line.strip().startswith("j") and "jmp" not in line][1:]


@pytest.mark.skipif(not sys.platform.startswith("linux") or "x86" not in __import__("platform").machine()
                    and "AMD64" not in __import__("platform").machine(), reason="reads x86 assembly")
def test_only_keep_above_branches_on_the_data():
    """The claim the chapter makes from the assembly: the filter branches, the other two do not."""
    x = threshold_data(100)
    out = np.empty_like(x)
    cpu.sum_above(x, 128), cpu.keep_above(x, 128, out), cpu.keep_above_branchless(x, 128, out)
    assert conditional_jumps(cpu.keep_above)
    assert not conditional_jumps(cpu.keep_above_branchless)
    assert not conditional_jumps(cpu.sum_above)
