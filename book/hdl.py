"""Hardware described in Python with PyRTL (chapter 3): three multiply–accumulate circuits.

The same job, ``acc += a * b`` over a stream of unsigned ``width``-bit pairs,
built three ways:

``"combinational"``
    One cycle does the whole multiply and add: one result per cycle, but the
    clock must wait for a multiplier and an adder in series.
``"pipelined"``
    Three stages separated by registers (half products; their sum; the
    accumulate): one result per cycle after a latency of three, and a clock
    set by the slowest stage alone.
``"multicycle"``
    One small adder reused for ``width`` cycles (shift-and-add): a short
    critical path, but a new pair only every ``width + 1`` cycles.

Counted in cycles the pipeline looks no better than the combinational
circuit; what matters is time per result = initiation interval × clock
period, and PyRTL's static timing analysis gives the clock period.
"""

from dataclasses import dataclass

import numpy as np
import pyrtl

from book import plots

DESIGNS = ("combinational", "pipelined", "multicycle")
ACC_BITS = 32


@dataclass
class Circuit:
    """A PyRTL block with inputs ``a``, ``b``, ``valid_in`` and outputs ``acc``, ``valid``, ``ready``."""

    design: str
    width: int
    block: pyrtl.Block


def _combinational(a, b, valid_in, width):
    acc = pyrtl.Register(ACC_BITS, "acc_reg")
    valid = pyrtl.Register(1, "valid_reg")
    acc.next <<= pyrtl.select(valid_in, (acc + a * b)[:ACC_BITS], acc)
    valid.next <<= valid_in
    return acc, valid, pyrtl.Const(1, 1)


def _pipelined(a, b, valid_in, width):
    half = width // 2
    # Stage 1: two half-width products, each a smaller (faster) multiplier than a * b.
    low = pyrtl.Register(width + half, "stage1_low")
    high = pyrtl.Register(2 * width, "stage1_high")
    v1 = pyrtl.Register(1, "stage1_valid")
    low.next <<= a * b[:half]
    high.next <<= a * b[half:]
    v1.next <<= valid_in
    # Stage 2: put the halves together.
    product = pyrtl.Register(2 * width, "stage2_product")
    v2 = pyrtl.Register(1, "stage2_valid")
    product.next <<= (low + pyrtl.concat(high, pyrtl.Const(0, half)))[:2 * width]
    v2.next <<= v1
    # Stage 3: accumulate.
    acc = pyrtl.Register(ACC_BITS, "acc_reg")
    valid = pyrtl.Register(1, "valid_reg")
    acc.next <<= pyrtl.select(v2, (acc + product)[:ACC_BITS], acc)
    valid.next <<= v2
    return acc, valid, pyrtl.Const(1, 1)


def _multicycle(a, b, valid_in, width):
    busy = pyrtl.Register(1, "busy")
    count = pyrtl.Register(width.bit_length() + 1, "count")
    shifted_a = pyrtl.Register(2 * width, "shifted_a")
    rest_b = pyrtl.Register(width, "rest_b")
    acc = pyrtl.Register(ACC_BITS, "acc_reg")
    valid = pyrtl.Register(1, "valid_reg")
    with pyrtl.conditional_assignment:
        with ~busy & valid_in:  # accept a pair
            busy.next |= 1
            count.next |= width
            shifted_a.next |= a
            rest_b.next |= b
        with busy:  # one bit of b per cycle: add a shifted copy of a when that bit is set
            acc.next |= pyrtl.select(rest_b[0], (acc + shifted_a)[:ACC_BITS], acc)
            shifted_a.next |= pyrtl.concat(shifted_a[:-1], pyrtl.Const(0, 1))
            rest_b.next |= rest_b[1:].zero_extended(width)
            count.next |= (count - 1)[:count.bitwidth]
            with count == 1:
                busy.next |= 0
    valid.next <<= busy & (count == 1)  # the last bit of b is being added this cycle
    return acc, valid, ~busy


def build(design, width=8):
    """Build one MAC circuit as its own PyRTL block.

    Parameters
    ----------
    design : {"combinational", "pipelined", "multicycle"}
    width : int
        Bits of each unsigned input, an even number from 2 to 16.
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    if not isinstance(width, int) or width < 2 or width > 16 or width % 2:
        raise ValueError(f"width must be an even integer from 2 to 16, got {width!r}")
    block = pyrtl.Block()
    with pyrtl.set_working_block(block):
        a, b, valid_in = pyrtl.Input(width, "a"), pyrtl.Input(width, "b"), pyrtl.Input(1, "valid_in")
        acc, valid, ready = {"combinational": _combinational, "pipelined": _pipelined,
                             "multicycle": _multicycle}[design](a, b, valid_in, width)
        for name, bits, wire in (("acc", ACC_BITS, acc), ("valid", 1, valid), ("ready", 1, ready)):
            out = pyrtl.Output(bits, name)
            out <<= wire
    return Circuit(design, width, block)


def simulate(circuit, a_values, b_values, cycles=None):
    """Simulate cycle by cycle, offering the next pair whenever the circuit is ready.

    Returns
    -------
    dict of str -> ndarray
        One value per cycle for the inputs and outputs (``a``, ``b``,
        ``valid_in``, ``ready``, ``valid``, ``acc``) and ``cycle``.
    """
    a_values, b_values = list(a_values), list(b_values)
    if len(a_values) != len(b_values):
        raise ValueError(f"a_values and b_values differ in length ({len(a_values)} vs {len(b_values)})")
    limit = 1 << circuit.width
    if any(not 0 <= int(v) < limit for v in a_values + b_values):
        raise ValueError(f"inputs must be unsigned {circuit.width}-bit integers (0 ≤ v < {limit})")
    if cycles is None:
        cycles = (circuit.width + 1) * len(a_values) + 5
    sim = pyrtl.Simulation(tracer=None, block=circuit.block)  # we record the signals ourselves
    names = ("a", "b", "valid_in", "ready", "valid", "acc")
    rows, nxt = [], 0
    for _ in range(cycles):
        offer = nxt < len(a_values)
        inputs = {"a": int(a_values[nxt]) if offer else 0, "b": int(b_values[nxt]) if offer else 0,
                  "valid_in": int(offer)}
        sim.step(inputs)
        rows.append([sim.inspect(name) for name in names])
        if offer and sim.inspect("ready"):  # ready during this cycle: the pair was taken
            nxt += 1
    out = {name: np.array(column, dtype=np.int64) for name, column in zip(names, zip(*rows))}
    out["cycle"] = np.arange(cycles)
    return out


def initiation_interval(trace):
    """Cycles between successive results (``valid`` pulses) in a simulation trace: the median gap."""
    when = np.flatnonzero(trace["valid"])
    if when.size < 2:
        raise ValueError("the trace holds fewer than two results; simulate more pairs or more cycles")
    return float(np.median(np.diff(when)))


def timing(circuit, tech_nm=130):
    """PyRTL's static timing analysis: the critical path (ps) and the clock it allows (MHz)."""
    analysis = pyrtl.TimingAnalysis(block=circuit.block)
    return {"critical_path_ps": float(analysis.max_length()), "max_clock_mhz": float(analysis.max_freq(tech_nm))}


def to_verilog(circuit):
    """The circuit as Verilog text (what an FPGA or ASIC flow would read)."""
    import io

    buffer = io.StringIO()
    pyrtl.output_to_verilog(buffer, block=circuit.block, module_name=f"mac_{circuit.design}")
    return buffer.getvalue()


def waveform(trace, signals=("valid_in", "ready", "valid", "acc"), title=None, first=0, last=None):
    """Draw a simulation trace as a waveform (one step line per signal) with plotly."""
    missing = [s for s in signals if s not in trace]
    if missing:
        raise ValueError(f"the trace has no signals {missing}; it has {sorted(trace)}")
    end = len(trace["cycle"]) if last is None else last
    cycles = trace["cycle"][first:end]
    fig = plots.figure(title, "clock cycle", None, height=120 + 70 * len(signals))
    for i, name in enumerate(signals):
        values = trace[name][first:end]
        one_bit = set(np.unique(values)) <= {0, 1}
        # Each signal gets a lane; one-bit signals are drawn as 0/1 steps, wider ones scaled into the lane.
        span = max(1, int(values.max() - values.min())) if values.size else 1
        shown = values if one_bit else (values - values.min()) / span
        fig.add_scatter(x=cycles, y=-1.5 * i + 0.8 * shown, mode="lines", name=name, customdata=values,
                        line={"shape": "hv", "color": plots.color(i)},
                        hovertemplate=f"{name} = %{{customdata}} at cycle %{{x}}<extra></extra>")
    fig.update_yaxes(tickvals=[-1.5 * i + 0.4 for i in range(len(signals))], ticktext=list(signals),
                     showgrid=False, zeroline=False)
    fig.update_layout(showlegend=False)
    return fig
