"""The capstone's shared pieces (chapter 8, Lab 8): the wide digits MLP trained once per process,
its float32 forward pass, and one-thread timing.

The capstone times a compressed model against its float32 self in one run.
Both must run on the same number of threads, or the ratio measures the
thread count instead of the compression: OpenBLAS would spread the float32
product over every core while a numba kernel runs on one. :func:`one_thread`
holds both BLAS and numba to one thread, so the ratio means the same on a
2-core VM and on a 64-core server.
"""

import contextlib
import copy
import functools

import numpy as np

from book import models

EPOCHS = 6
"""Training epochs of :func:`trained_mlp`: enough for the wide MLP to pass 0.95 held-out accuracy."""


@contextlib.contextmanager
def one_thread():
    """Run the block with BLAS and numba on one thread each; restore both afterwards."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        numba.set_num_threads(before)


@functools.cache
def _trained(epochs, seed):
    model = models.mlp(seed=seed)
    x_train, _, y_train, _ = models.digits()
    with one_thread():  # on a busy machine, BLAS threads spinning against each other cost more than they give
        models.train(model, x_train, y_train, epochs=epochs, seed=seed)
    return model


def trained_mlp(epochs=EPOCHS, seed=0):
    """The wide MLP of chapter 7 (``book.models.mlp()``, default widths) trained on the digits.

    Trained on the first call in a process and cached; every call returns a
    fresh copy, so a caller that prunes or retrains it changes nobody else's.

    Parameters
    ----------
    epochs : int
        Training epochs (the same ``epochs`` and ``seed`` give the same model).
    seed : int
        Initialisation and shuffling seed.

    Returns
    -------
    book.models.Model
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    return copy.deepcopy(_trained(epochs, seed))


def float32_forward(model):
    """The float32 logits function of an MLP: BLAS products, biases, ReLU; the capstone's baseline.

    The returned ``forward(x)`` maps raw pixels ``(n, 64)`` to logits
    ``(n, classes)`` exactly as ``book.models`` computes them, with copies
    of the weights taken now (later changes to ``model`` do not reach it).
    """
    if not isinstance(model, models.Model) or model.kind != "mlp":
        raise ValueError("float32_forward needs an MLP from book.models.mlp()")
    layers = len(model.params) // 2
    weights = [np.array(model.params[f"W{i}"], np.float32) for i in range(1, layers + 1)]
    biases = [np.array(model.params[f"b{i}"], np.float32) for i in range(1, layers + 1)]
    mean = np.array(model.buffers["mean"], np.float32)
    std = np.array(model.buffers["std"], np.float32)

    def forward(x):
        h = ((np.asarray(x, np.float32) - mean) / std).astype(np.float32)
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if i < layers - 1:
                h = np.maximum(h, np.float32(0))
        return h

    return forward


def block_sparse(w, density, block, seed=0):
    """A copy of ``w`` that keeps ``round(density × blocks)`` of its ``block`` blocks, chosen at random.

    Lab 8 times a block-sparse kernel at one density with several block
    shapes; random blocks give every shape the same share of nonzeros
    whatever the values, so the timing compares the shapes alone.

    Parameters
    ----------
    w : array_like
        A 2-D array whose shape ``block = (r, c)`` divides.
    density : float
        Fraction of the blocks kept, in [0, 1].
    block : (int, int)
        Block rows and columns, each at least 1.
    seed : int
        Which blocks (the same seed keeps the same blocks).

    Returns
    -------
    ndarray
        Same shape and dtype as ``w``; the blocks not kept are zero.
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D array, got shape {w.shape}")
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 <= density <= 1:
        raise ValueError(f"density must be a number in [0, 1], got {density!r}")
    if (not isinstance(block, tuple) or len(block) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in block)):
        raise ValueError(f"block must be a pair of positive ints, got {block!r}")
    r, c = block
    if w.shape[0] % r or w.shape[1] % c:
        raise ValueError(f"block {block} does not divide the shape {w.shape}")
    grid = (w.shape[0] // r, w.shape[1] // c)
    kept = np.zeros(grid[0] * grid[1], bool)
    kept[np.random.default_rng(seed).permutation(kept.size)[:round(density * kept.size)]] = True
    mask = np.kron(kept.reshape(grid), np.ones(block, bool))
    return np.where(mask, w, np.zeros((), w.dtype))
