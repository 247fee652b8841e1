"""ONNX Runtime, the production compiler chapter 5 holds the book's against."""

import numba
import onnxruntime as ort

LEVELS = {"off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(model, optimization="all", threads=None, optimized_path=None):
    """An ONNX Runtime CPU session for an ``onnx.ModelProto``.

    Parameters
    ----------
    optimization : {"off", "basic", "all"}
        ORT's graph optimisation level.
    threads : int, optional
        ``intra_op_num_threads``; default numba's thread count, so both
        compilers get the same cores.
    optimized_path : str, optional
        Where ORT writes the graph after its optimisations (to read what it fused).
    """
    if optimization not in LEVELS:
        raise ValueError(f"optimization must be one of {sorted(LEVELS)}, got {optimization!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[optimization]
    options.intra_op_num_threads = threads or numba.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if optimized_path:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model, inputs, **options):
    """Outputs of ``model`` on ``inputs`` (dict) with ONNX Runtime, as {output name: array}."""
    sess = session(model, **options)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))
