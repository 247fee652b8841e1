"""Record chapter 3's GPU measurements on a machine with an NVIDIA GPU: writes ch03/gpu.json.

This script runs on the GPU machine's own Python (it needs numpy and
numba-cuda, or numba's built-in CUDA target, and nothing of the book), so it
repeats the few things it needs: the kernels of book/kernels/cuda.py at a
real GPU's tile size, a timing loop (median of repeats, the first call timed
apart) and a hardware card. The file it writes is in the book's data format
(schema_version, meta, provenance, records), so book.data.load reads it.

    python data/ch03/record_gpu.py                  # on the GPU machine: writes data/ch03/gpu.json
    python data/ch03/record_gpu.py --simulate -o x  # anywhere: tiny sizes in numba's CUDA simulator (a test)
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIMULATE = "--simulate" in sys.argv
if SIMULATE:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba.cuda is imported

import numba
import numpy as np
from numba import cuda

NAME = "ch03/gpu.json"  # the file under data/ this script makes
# The simulator runs every GPU thread as a Python thread: its smoke test uses small blocks.
THREADS = 32 if SIMULATE else 256
TILE = 4 if SIMULATE else 16


@cuda.jit
def vector_add(a, b, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] + b[i]


@cuda.jit
def block_sum(x, partial):
    cache = cuda.shared.array(THREADS, dtype=np.float32)
    tid = cuda.threadIdx.x
    i = cuda.grid(1)
    cache[tid] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:
        if tid < half:
            cache[tid] += cache[tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = cache[0]


@cuda.jit
def matmul_naive(a, b, c):
    col, row = cuda.grid(2)
    if row < c.shape[0] and col < c.shape[1]:
        total = 0.0
        for s in range(a.shape[1]):
            total += a[row, s] * b[s, col]
        c[row, col] = total


@cuda.jit
def matmul_tiled(a, b, c):
    a_tile = cuda.shared.array((TILE, TILE), dtype=np.float32)
    b_tile = cuda.shared.array((TILE, TILE), dtype=np.float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    col, row = cuda.grid(2)
    total = 0.0
    for start in range(0, a.shape[1], TILE):
        a_tile[ty, tx] = a[row, start + tx] if row < a.shape[0] and start + tx < a.shape[1] else 0.0
        b_tile[ty, tx] = b[start + ty, col] if start + ty < b.shape[0] and col < b.shape[1] else 0.0
        cuda.syncthreads()
        for s in range(TILE):
            total += a_tile[ty, s] * b_tile[s, tx]
        cuda.syncthreads()
    if row < c.shape[0] and col < c.shape[1]:
        c[row, col] = total


def card():
    """The hardware card, with the fields book.data and book.hardware.card read."""
    meta = {"probe_errors": {}, "machine": platform.machine(), "os": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    try:
        meta["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration) as exc:
        meta["cpu_model"] = platform.processor() or "unknown CPU"
        meta["probe_errors"]["cpu"] = repr(exc)
    meta["gpus"] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True)
            for line in out.stdout.strip().splitlines():
                name, memory, driver = (part.strip() for part in line.split(","))
                meta["gpus"].append({"name": name, "memory": memory, "driver": driver})
        except (OSError, subprocess.SubprocessError) as exc:
            meta["probe_errors"]["nvidia-smi"] = repr(exc)
    try:
        device = cuda.get_current_device()
        meta["gpu_compute_capability"] = list(device.compute_capability)
        meta["gpu_multiprocessors"] = device.MULTIPROCESSOR_COUNT
        if not meta["gpus"]:
            name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
            meta["gpus"].append({"name": name})
    except Exception as exc:  # the simulator has no real device attributes
        meta["probe_errors"]["cuda_device"] = repr(exc)
    meta["cuda_simulator"] = bool(numba.config.ENABLE_CUDASIM)
    meta["measured_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta["quick"] = bool(numba.config.ENABLE_CUDASIM)  # a simulated run must never be taken for the reference
    return meta


def timed(name, n, call, repeats, min_sample_s, **fields):
    """Time ``call`` (which must synchronize): first call apart, then repeats of an auto-ranged loop."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        if time.perf_counter() - start >= min_sample_s or loops >= 1 << 16:
            break
        loops *= 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        times.append((time.perf_counter() - start) / loops)
    print(f"{name}: median {np.median(times) * 1e3:.3f} ms", flush=True)
    return {"kernel": name, "n": int(n), "loops": loops, "times_s": times, "first_call_s": first,
            "compile_s": None} | fields


def measure(simulate):
    repeats, min_sample_s = (1, 0.0) if simulate else (7, 0.05)
    n = THREADS + 1 if simulate else 1 << 26  # two blocks, the second one overhanging
    side = TILE + 1 if simulate else 2048
    copy_bytes = 1 << 12 if simulate else 1 << 28
    rng = np.random.default_rng(0)
    records = []

    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    da, db, dout = cuda.to_device(a), cuda.to_device(b), cuda.device_array(n, np.float32)
    blocks = math.ceil(n / THREADS)
    vector_add[blocks, THREADS](da, db, dout)
    assert np.allclose(dout.copy_to_host(), a + b)
    records.append(timed("vector add", n, lambda: (vector_add[blocks, THREADS](da, db, dout), cuda.synchronize()),
                         repeats, min_sample_s, flops_per_call=n, bytes_per_call=12 * n))
    partial = cuda.device_array(blocks, np.float32)
    block_sum[blocks, THREADS](da, partial)
    assert np.isclose(partial.copy_to_host().sum(dtype=np.float64), a.sum(dtype=np.float64), rtol=1e-3)
    records.append(timed("shared-memory reduction", n, lambda: (block_sum[blocks, THREADS](da, partial),
                                                               cuda.synchronize()),
                         repeats, min_sample_s, flops_per_call=n, bytes_per_call=4 * n))

    x, y = rng.random((side, side), dtype=np.float32), rng.random((side, side), dtype=np.float32)
    dx, dy, dz = cuda.to_device(x), cuda.to_device(y), cuda.device_array((side, side), np.float32)
    grid = (math.ceil(side / TILE), math.ceil(side / TILE))
    for name, kernel in (("naive matmul", matmul_naive), ("tiled matmul (shared memory)", matmul_tiled)):
        kernel[grid, (TILE, TILE)](dx, dy, dz)
        assert np.allclose(dz.copy_to_host(), x @ y, rtol=1e-3, atol=1e-3)
        records.append(timed(name, side, lambda k=kernel: (k[grid, (TILE, TILE)](dx, dy, dz), cuda.synchronize()),
                             repeats, min_sample_s, flops_per_call=2 * side**3, bytes_per_call=12 * side**2))

    pageable = np.ones(copy_bytes // 4, np.float32)
    pinned = cuda.pinned_array(copy_bytes // 4, np.float32)
    pinned[:] = 1
    device = cuda.device_array(copy_bytes // 4, np.float32)
    for label, host in (("pageable", pageable), ("pinned", pinned)):
        records.append(timed(f"copy host→device ({label})", copy_bytes,
                             lambda h=host: (device.copy_to_device(h), cuda.synchronize()),
                             repeats, min_sample_s, bytes_per_call=copy_bytes))
        records.append(timed(f"copy device→host ({label})", copy_bytes,
                             lambda h=host: (device.copy_to_host(h), cuda.synchronize()),
                             repeats, min_sample_s, bytes_per_call=copy_bytes))
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="tiny sizes in numba's CUDA simulator")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parent.parent / NAME)
    args = parser.parse_args(argv)
    meta = card()
    records = measure(args.simulate)
    document = {"schema_version": 1, "meta": meta, "records": records,
                "provenance": {"source": "data/ch03/record_gpu.py",
                               "command": "python data/ch03/record_gpu.py" + (" --simulate" if args.simulate else ""),
                               "saved_utc": meta["measured_utc"]}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
