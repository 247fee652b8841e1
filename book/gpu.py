"""The GPU execution model on a machine without a GPU (chapter 3).

Two tools: :func:`use_simulator` switches numba's CUDA target to its
simulator, which runs each GPU thread as a Python thread (good for checking
indexing, shared memory and barriers; useless for timing), and a model of the
memory transactions a warp's loads cost (:func:`warp_sectors`,
:func:`strided_access`), which explains coalescing without a GPU.

Importing this module changes nothing; the kernels themselves are in
:mod:`book.kernels.cuda`, which must be imported after :func:`use_simulator`.
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

WARP_SIZE = 32  # threads that issue one instruction together on NVIDIA GPUs
SECTOR_BYTES = 32  # the unit in which an NVIDIA L1/L2 cache moves data to and from memory


def use_simulator():
    """Run ``numba.cuda`` kernels in numba's CUDA simulator, and return ``numba.cuda``.

    numba decides at the first ``import numba.cuda`` whether that module is
    the real target or the simulator, from ``numba.config.ENABLE_CUDASIM``
    (the environment variable ``NUMBA_ENABLE_CUDASIM``, read when numba is
    imported). This call sets both, so it works after ``import numba``, and it
    leaves numba's CPU compiler alone. Call it before the first import of
    ``numba.cuda`` (or of :mod:`book.kernels.cuda`).

    Raises
    ------
    RuntimeError
        When ``numba.cuda`` was already imported as the real target: the
        choice cannot be undone in that process; restart it.
    """
    import numba

    loaded = sys.modules.get("numba.cuda")
    if loaded is not None and not numba.config.ENABLE_CUDASIM:
        raise RuntimeError("numba.cuda was already imported for a real GPU in this process; call "
                           "book.gpu.use_simulator() before anything imports numba.cuda (restart the kernel)")
    numba.config.ENABLE_CUDASIM = 1
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # for child processes
    from numba import cuda

    return cuda


def warp_sectors(byte_addresses, itemsize, sector_bytes=SECTOR_BYTES):
    """The distinct memory sectors one warp-wide load touches.

    Parameters
    ----------
    byte_addresses : array_like of int
        The first byte each thread of the warp reads (one per thread).
    itemsize : int
        Bytes each thread reads (4 for float32).
    sector_bytes : int
        Size of the unit of transfer (32 bytes on recent NVIDIA GPUs).

    Returns
    -------
    ndarray of int
        Sorted sector numbers (address // sector_bytes) touched; an element
        that straddles a sector boundary touches both.
    """
    addresses = np.asarray(byte_addresses, dtype=np.int64).ravel()
    if itemsize < 1 or sector_bytes < 1:
        raise ValueError(f"itemsize and sector_bytes must be positive, got {itemsize} and {sector_bytes}")
    if addresses.size and addresses.min() < 0:
        raise ValueError("byte addresses must be non-negative")
    first, last = addresses // sector_bytes, (addresses + itemsize - 1) // sector_bytes
    spans = [np.arange(lo, hi + 1) for lo, hi in zip(first, last)]
    return np.unique(np.concatenate(spans)) if spans else np.zeros(0, np.int64)


@dataclass(frozen=True)
class WarpAccess:
    """The cost of one warp-wide load: sectors moved against bytes the threads asked for."""

    sectors: int
    bytes_moved: int
    bytes_used: int

    @property
    def efficiency(self):
        """Bytes used ÷ bytes moved: 1 for a perfectly coalesced load."""
        return self.bytes_used / self.bytes_moved


def strided_access(stride, *, itemsize=4, offset=0, warp_size=WARP_SIZE, sector_bytes=SECTOR_BYTES):
    """Model thread ``t`` of a warp reading element ``offset + t * stride`` of an array.

    Examples
    --------
    >>> strided_access(1).sectors, strided_access(32).sectors   # float32, 32 threads
    (4, 32)
    """
    if not isinstance(stride, (int, np.integer)) or stride < 0:
        raise ValueError(f"stride must be a non-negative integer (elements), got {stride!r}")
    if warp_size < 1:
        raise ValueError(f"warp_size must be positive, got {warp_size}")
    addresses = (offset + np.arange(warp_size) * stride) * itemsize
    sectors = warp_sectors(addresses, itemsize, sector_bytes)
    distinct = np.unique(addresses).size  # threads reading the same element share it (a broadcast)
    return WarpAccess(sectors=int(sectors.size), bytes_moved=int(sectors.size) * sector_bytes,
                      bytes_used=distinct * itemsize)
