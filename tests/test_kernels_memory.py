"""book.kernels.memory against plain NumPy/Python references, over edge sizes and layouts."""

import math

import numpy as np
import pytest

from book.kernels import memory

SIZES = [0, 1, 2, 7, 8, 9, 1003]


def values(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("n", SIZES)
def test_sum_chain_adds_in_order(n):
    x = values(n)
    expected = 0.0
    for v in x:  # the same order, so the same rounding: exact
        expected += v
    assert memory.sum_chain(x) == expected


def test_sum_chain_on_a_strided_view():
    x = values(3001)[::3]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(memory.sum_chain(x), math.fsum(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("n", SIZES)
def test_sum_with_accumulators_matches_the_exact_sum(k, n):
    x = values(n, seed=n)
    np.testing.assert_allclose(memory.sum_with_accumulators(k)(x), math.fsum(x), rtol=1e-12, atol=1e-12)


def test_sum_with_accumulators_on_a_strided_view_leaves_its_input_alone():
    base = values(2003)
    x = base[::2]
    before = x.copy()
    np.testing.assert_allclose(memory.sum_with_accumulators(8)(x), math.fsum(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(x, before)


def test_accumulator_kernels_belong_to_the_book_and_keep_the_order_of_additions():
    kernel = memory.sum_with_accumulators(4)
    assert kernel.__name__ == "sum_4_accumulators"
    assert kernel.py_func.__module__ == "book.kernels.memory"  # so a lab can tell it from a student's
    assert not kernel.targetoptions.get("fastmath")
    source = memory.accumulator_source(4)
    assert [f"a{j} += x[i + {j}]" in source for j in range(5)] == [True] * 4 + [False]


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "4"])
def test_accumulator_count_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="positive integer"):
        memory.accumulator_source(k)


def follow(buffer, start, steps):
    """The reference pointer chase, in Python."""
    i = int(start)
    for _ in range(steps):
        i = int(buffer[i])
    return i


@pytest.mark.parametrize("n_bytes, lines", [(1, 2), (64, 2), (64 * 3, 3), (64 * 5 + 63, 5), (64 * 1000, 1000)])
def test_random_cycle_is_one_cycle_through_every_line(n_bytes, lines):
    buffer = memory.random_cycle(n_bytes, seed=3)
    assert buffer.dtype == np.uint64 and buffer.size == lines * memory.WORDS_PER_LINE
    visited, i = [], 0
    for _ in range(lines):
        visited.append(i)
        i = int(buffer[i])
    assert i == 0, "the chain does not come back to its start after visiting every line once"
    assert sorted(visited) == list(range(0, buffer.size, memory.WORDS_PER_LINE))


def test_random_cycle_depends_on_its_seed_only():
    np.testing.assert_array_equal(memory.random_cycle(64 * 100, seed=1), memory.random_cycle(64 * 100, seed=1))
    assert not np.array_equal(memory.random_cycle(64 * 100, seed=1), memory.random_cycle(64 * 100, seed=2))


@pytest.mark.parametrize("n_bytes", [0, -64, 64.0, None])
def test_random_cycle_needs_a_positive_byte_count(n_bytes):
    with pytest.raises(ValueError, match="n_bytes must be a positive integer"):
        memory.random_cycle(n_bytes)


@pytest.mark.parametrize("steps", [0, 1, 2, 37, 1000])
def test_chase_follows_the_chain(steps):
    buffer = memory.random_cycle(64 * 37, seed=5)
    assert int(memory.chase(buffer, steps)) == follow(buffer, buffer[0], steps)


def test_chase_rejects_an_empty_buffer_and_negative_steps():
    with pytest.raises(ValueError, match="non-empty buffer"):
        memory.chase(np.zeros(0, dtype=np.uint64), 1)
    with pytest.raises(ValueError, match="steps >= 0"):
        memory.chase(memory.random_cycle(128), -1)
