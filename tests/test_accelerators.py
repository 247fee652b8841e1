"""Chapter 3 (accelerators): its cited table, the GPU recording script's file format, its reference data."""

import json
import os
import subprocess
import sys

import pytest

from book import data

from conftest import ROOT

SPECS = json.loads(data.path("ch03", "cited", "specs.json").read_text())


def test_every_kind_of_accelerator_the_note_names_has_a_cited_row():
    kinds = {row["kind"].split(" ")[0] for row in SPECS["chips"]}
    assert {"GPU", "ASIC", "IPU", "SoC", "FPGA"} <= kinds
    for row in SPECS["chips"]:
        assert row["source"].strip() and row["memory_gbs"] > 0, row["name"]
        assert any(row[key] for key in ("fp32_tflops", "fp16_tflops", "int8_tops")), row["name"]


def test_the_ipu_figures_are_flagged_as_the_vendor_s():
    ipu = next(row for row in SPECS["chips"] if row["kind"] == "IPU")
    assert ipu["vendor_claim"] is True


def test_energy_table_shows_memory_costs_more_than_arithmetic():
    energy = {row["operation"]: row["pj"] for row in SPECS["energy_pj"]}
    assert energy["32-bit read, DRAM"] > 100 * energy["32-bit float multiply"]
    assert energy["32-bit read, 8 KB SRAM"] > energy["32-bit float add"]


def test_the_gpu_script_writes_a_file_the_book_loads(tmp_path):
    """record_gpu.py runs on a GPU machine without the book; its file must still be the book's format."""
    out = tmp_path / "gpu.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    subprocess.run([sys.executable, str(ROOT / "data" / "ch03" / "record_gpu.py"), "--simulate", "-o", str(out)],
                   check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    run = data.load(out)
    frame = run.to_frame()
    kernels = set(frame.kernel)
    assert {"vector add", "shared-memory reduction", "naive matmul", "tiled matmul (shared memory)"} <= kernels
    assert {"copy host→device (pinned)", "copy host→device (pageable)"} <= kernels
    assert (frame.median_s > 0).all() and (frame.bytes_per_call > 0).all()
    assert run.meta["cpu_model"] and run.meta["measured_utc"] and "gpus" in run.meta
    # A simulated run must never pass for the reference (test_data_files requires quick to be False there).
    assert run.meta["quick"] is True and run.meta["cuda_simulator"] is True
    assert '"ch03/gpu.json"' in (ROOT / run.provenance["source"]).read_text()


def test_reference_memcpy_is_slowest_from_dram():
    path = data.path("ch03", "memcpy.json")
    if not path.exists():
        pytest.skip("data/ch03/memcpy.json has not been made yet (make data)")
    frame = data.load(path).to_frame().sort_values("n")
    gbs = 2 * frame.n / frame.median_s / 1e9
    assert gbs.iloc[-1] < gbs.max()  # the largest copy runs from DRAM, below the best in-cache copy


def test_reference_gpu_run_when_recorded():
    path = data.path("ch03", "gpu.json")
    if not path.exists():
        pytest.skip("no GPU run has been recorded (data/ch03/record_gpu.py on a GPU machine)")
    run = data.load(path)
    assert run.meta["gpus"] and not run.meta.get("cuda_simulator")
    frame = run.to_frame().set_index("kernel")
    # Shared-memory tiling reuses each loaded element TILE times: it must beat the naive kernel.
    assert frame.median_s["tiled matmul (shared memory)"] < frame.median_s["naive matmul"]


def test_arm_section_links_to_chapter_4_back_ends():
    page = (ROOT / "chapters" / "accelerators.md").read_text()
    arm = page[page.index("## ARM"):]
    arm = arm[:arm.index("\n## ", 1)]
    assert "{ref}`compilers-m-plus-n`" in arm
    assert "(compilers-m-plus-n)=\n## M + N" in (ROOT / "chapters" / "compilers.md").read_text()


def test_every_chip_row_is_cited_on_the_page():
    page = (ROOT / "chapters" / "accelerators.md").read_text()
    table = page[page.index("## Why accelerators"):page.index("### Energy")]
    for key in ("nvidia_h100_datasheet", "jouppi2023tpuv4", "graphcore_ipu", "apple_m1_newsroom",
                "xilinx_u280_ds963"):
        assert key in table, f"the roofline table's section cites {key}"


def test_page_occupancy_names_the_budget_that_runs_out_first():
    """The page's occupancy arithmetic, run from its own source, on launches with a known answer."""
    page = (ROOT / "chapters" / "accelerators.md").read_text()
    start = page.index("# Per SM on compute capability 9.0")
    namespace = {}
    exec(page[start:page.index("\n\n\noccupancy_cases", start)], namespace)
    occupancy = namespace["occupancy"]
    assert occupancy(256, 32, 0) == (1.0, "threads")
    assert occupancy(256, 128, 0) == (0.25, "registers")  # 32768 registers per block: two blocks
    assert occupancy(32, 16, 0) == (0.5, "blocks")  # 32 one-warp blocks fill half the 2048 slots
    assert occupancy(128, 16, 100 * 1024) == (0.125, "shared memory")  # (100 + 1) KiB per block: two fit
