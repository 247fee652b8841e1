"""The hardware card: what machine a measurement was made on.

Every saved measurement and every measured plot carries the dictionary that
:func:`collect_metadata` returns. Each probe reads one source and tolerates
its absence (a Mac has no ``/proc``, a laptop has no GPU): a probe that fails
records why under ``probe_errors`` instead of stopping the measurement.
"""

import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import psutil

from book.units import format_bytes

# Features worth naming on a card, as LLVM calls them (LLVM is what numba
# compiles for, so these are the instructions the book's kernels can use).
ISA_FEATURES = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                "avx512vnni", "avx512fp16", "amx-tile", "neon", "sve", "sve2")

# Metadata that must agree before two runs may be merged or overlaid as one.
KEY_FIELDS = ("cpu_model", "machine", "logical_cpus", "python", "numpy", "numba", "blas", "quick")


def _read(path):
    return Path(path).read_text().strip()


def _sysctl(name):
    out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=True)
    return out.stdout.strip()


def _cpuinfo_field(*names):
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return None


def collect_cpu(meta):
    meta["machine"] = platform.machine()
    model = None
    if sys.platform.startswith("linux"):
        model = _cpuinfo_field("model name", "Hardware", "Model", "cpu model")
    elif sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
    meta["cpu_model"] = model or platform.processor() or "unknown"
    flags = _cpuinfo_field("flags", "Features") if sys.platform.startswith("linux") else None
    meta["hypervisor"] = bool(flags and "hypervisor" in flags.split())


def collect_isa(meta):
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    meta["llvm_cpu"] = llvm.get_host_cpu_name()
    meta["isa"] = [name for name in ISA_FEATURES if features.get(name)]


def collect_cores(meta):
    meta["logical_cpus"] = os.cpu_count()
    meta["physical_cores"] = psutil.cpu_count(logical=False)
    if hasattr(os, "sched_getaffinity"):
        meta["usable_cpus"] = len(os.sched_getaffinity(0))
    else:
        meta["usable_cpus"] = os.cpu_count()


def collect_frequency(meta):
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if path.exists():
        meta["cpu_max_mhz"] = int(_read(path)) / 1000
    elif sys.platform == "darwin" and platform.machine() == "x86_64":
        meta["cpu_max_mhz"] = int(_sysctl("hw.cpufrequency_max")) / 1e6
    else:
        # Virtual machines rarely expose a maximum; /proc/cpuinfo's "cpu MHz"
        # is the current clock, so it is recorded under its own name.
        meta["cpu_max_mhz"] = None
        current = _cpuinfo_field("cpu MHz") if sys.platform.startswith("linux") else None
        meta["cpu_current_mhz"] = float(current) if current else None


def collect_caches(meta):
    """Cache sizes in bytes, per core for L1/L2 and as reported for L3."""
    caches = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    if root.exists():
        for index in sorted(root.glob("index*")):
            kind = _read(index / "type")
            level = _read(index / "level")
            if kind == "Instruction":
                continue
            name = f"L{level}d" if kind == "Data" else f"L{level}"
            caches[name] = _parse_size(_read(index / "size"))
    elif sys.platform == "darwin":
        for name, key in (("L1d", "hw.l1dcachesize"), ("L2", "hw.l2cachesize"), ("L3", "hw.l3cachesize")):
            try:
                caches[name] = int(_sysctl(key))
            except (subprocess.CalledProcessError, ValueError):
                pass
    meta["cache_bytes"] = caches


def _parse_size(text):
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper()
    if text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def collect_memory(meta):
    meta["ram_bytes"] = psutil.virtual_memory().total


def collect_software(meta):
    meta["os"] = platform.platform()
    meta["python"] = platform.python_version()
    for package in ("numpy", "numba", "llvmlite"):
        meta[package] = importlib_metadata.version(package)
    timer = time.get_clock_info("perf_counter")
    meta["timer"] = timer.implementation
    meta["timer_resolution_s"] = timer.resolution


def collect_blas(meta):
    import numpy  # noqa: F401  (threadpoolctl only sees BLAS once numpy has loaded it)
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if not blas:
        meta["blas"] = None
        return
    pool = blas[0]
    meta["blas"] = f"{pool.get('internal_api')} {pool.get('version') or ''}".strip()
    meta["blas_threads"] = pool.get("num_threads")
    meta["blas_arch"] = pool.get("architecture")


def collect_numba(meta):
    import numba

    meta["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    meta["numba_threading_layer"] = numba.config.THREADING_LAYER


def collect_gpu(meta):
    meta["gpus"] = []
    if shutil.which("nvidia-smi") is None:
        return
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    for line in out.stdout.strip().splitlines():
        name, memory, driver = (part.strip() for part in line.split(","))
        meta["gpus"].append({"name": name, "memory": memory, "driver": driver})


def collect_run(meta):
    from book import quick

    meta["measured_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta["quick"] = quick.enabled()


COLLECTORS = (collect_cpu, collect_isa, collect_cores, collect_frequency, collect_caches,
              collect_memory, collect_software, collect_blas, collect_numba, collect_gpu, collect_run)


def collect_metadata():
    """Describe this machine and software stack (the hardware card).

    Returns
    -------
    dict
        JSON-serialisable metadata: CPU model, ISA features, caches, cores,
        RAM, OS, library versions, BLAS and its threads, GPUs, and the time.
        A probe whose source is missing leaves its fields out and records the
        reason in ``probe_errors``.

    Examples
    --------
    >>> meta = collect_metadata()
    >>> print(card(meta))  # doctest: +SKIP
    """
    meta = {"probe_errors": {}}
    for collector in COLLECTORS:
        try:
            collector(meta)
        except Exception as exc:  # a missing source must not stop a measurement
            meta["probe_errors"][collector.__name__] = f"{type(exc).__name__}: {exc}"
    return meta


def card(meta):
    """One line that names the machine behind a measurement (shown on every plot)."""
    caches = meta.get("cache_bytes") or {}
    parts = [
        meta.get("cpu_model", "unknown CPU") + (" (VM)" if meta.get("hypervisor") else ""),
        f"{meta.get('usable_cpus', '?')} CPUs",
        " ".join(f"{name} {format_bytes(size)}" for name, size in caches.items()),
        " ".join(feature.upper() for feature in meta.get("isa", [])),
        f"{format_bytes(meta['ram_bytes'])} RAM" if meta.get("ram_bytes") else "",
        f"NumPy {meta.get('numpy', '?')}, Numba {meta.get('numba', '?')}",
        f"{meta['blas']} ×{meta.get('blas_threads')}" if meta.get("blas") else "",
        ", ".join(gpu["name"] for gpu in meta.get("gpus", [])),
        (meta.get("measured_utc") or "")[:10] + (" (quick mode)" if meta.get("quick") else ""),
    ]
    return " · ".join(part for part in parts if part)


def key_differences(meta_a, meta_b):
    """The key fields on which two hardware cards disagree, as ``{field: (a, b)}``."""
    return {field: (meta_a.get(field), meta_b.get(field))
            for field in KEY_FIELDS if meta_a.get(field) != meta_b.get(field)}
