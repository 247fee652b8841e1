"""The book's shared small models (chapter 5; chapters 7 and 8 prune and quantise them).

Data: scikit-learn's bundled handwritten digits (8×8 images, 10 classes),
split once with a fixed seed. Models: an MLP wide enough that its layers'
time is arithmetic rather than call overhead, and a small CNN with a
BatchNormalization layer. Both train in NumPy in seconds, with a **mask** on
every weight: the update is masked and so are the weights after it, so a
pruned weight (mask 0) stays zero through fine-tuning. :func:`to_onnx`
writes either model as an ONNX graph with ``onnx.helper``.
"""

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0
OPSET = 13
PIXEL_MAX = 16.0  # the digits' pixel values run from 0 to 16


def digits(test_fraction=0.25):
    """The digits data, split with a fixed seed: ``(x_train, x_test, y_train, y_test)``.

    ``x`` are float32 raw pixels of shape (n, 64) in [0, 16]; ``y`` int64 labels.
    The split is stratified and the same on every call and every machine.
    """
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=test_fraction, random_state=SPLIT_SEED, stratify=y)
    return x_train, x_test, y_train, y_test


@dataclass
class Model:
    """A model's kind (``"mlp"`` or ``"cnn"``), parameters, masks and fixed buffers (float32 arrays).

    ``masks[name]`` (same shape as ``params[name]``, 0 or 1) exists for every
    weight matrix or kernel; training keeps ``params[name] * masks[name] == params[name]``.
    """

    kind: str
    params: dict
    masks: dict
    buffers: dict = field(default_factory=dict)


def _glorot(rng, fan_in, fan_out, shape):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def mlp(hidden=(1024, 512), seed=0):
    """An MLP 64 -> hidden... -> 10 with ReLU, standardising its input pixels inside the model."""
    rng = np.random.default_rng(seed)
    widths = (64, *hidden, 10)
    params = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        params[f"W{i}"] = _glorot(rng, a, b, (a, b))
        params[f"b{i}"] = np.zeros(b, np.float32)
    x_train = digits()[0]
    buffers = {"mean": x_train.mean(axis=0), "std": x_train.std(axis=0) + np.float32(1.0)}
    return Model("mlp", params, {k: np.ones_like(v) for k, v in params.items() if k.startswith("W")}, buffers)


def cnn(channels=16, seed=0):
    """A CNN: 3×3 Conv (pad 1) -> BatchNormalization -> ReLU -> 2×2 MaxPool -> Flatten -> Gemm (10)."""
    rng = np.random.default_rng(seed)
    params = {"conv_W": _glorot(rng, 9, 9 * channels, (channels, 1, 3, 3)), "conv_b": np.zeros(channels, np.float32),
              "bn_scale": np.ones(channels, np.float32), "bn_bias": np.zeros(channels, np.float32),
              "fc_W": _glorot(rng, 16 * channels, 10, (10, 16 * channels)), "fc_b": np.zeros(10, np.float32)}
    buffers = {"bn_mean": np.zeros(channels, np.float32), "bn_var": np.ones(channels, np.float32)}
    return Model("cnn", params, {"conv_W": np.ones_like(params["conv_W"]), "fc_W": np.ones_like(params["fc_W"])},
                 buffers)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _patches(images):
    """(N, 64, 9) 3×3 neighbourhoods of (N, 8, 8) images padded by one pixel."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    return windows.reshape(len(images), 64, 9)


BN_EPS = 1e-5


def _forward(model, x, training=False):
    """Class probabilities and, when training, what the backward pass needs."""
    p = model.params
    if model.kind == "mlp":
        h = (x - model.buffers["mean"]) / model.buffers["std"]
        acts, n = [h], len(p) // 2
        for i in range(1, n + 1):
            h = h @ p[f"W{i}"] + p[f"b{i}"]
            if i < n:
                h = np.maximum(h, 0)
            acts.append(h)
        return _softmax(h), acts
    images = x.reshape(-1, 8, 8) / np.float32(PIXEL_MAX)
    cols = _patches(images)
    c = p["conv_W"].shape[0]
    y = (cols @ p["conv_W"].reshape(c, 9).T + p["conv_b"]).transpose(0, 2, 1)  # (N, C, 64)
    if training:
        mean, var = y.mean(axis=(0, 2)), y.var(axis=(0, 2))
        model.buffers["bn_mean"] = (0.9 * model.buffers["bn_mean"] + 0.1 * mean).astype(np.float32)
        model.buffers["bn_var"] = (0.9 * model.buffers["bn_var"] + 0.1 * var).astype(np.float32)
    else:
        mean, var = model.buffers["bn_mean"], model.buffers["bn_var"]
    inv = 1.0 / np.sqrt(var + BN_EPS)
    yhat = (y - mean[:, None]) * inv[:, None]
    a = np.maximum(p["bn_scale"][:, None] * yhat + p["bn_bias"][:, None], 0).reshape(-1, c, 4, 2, 4, 2)
    pooled = a.max(axis=(3, 5))
    logits = pooled.reshape(len(x), -1) @ p["fc_W"].T + p["fc_b"]
    return _softmax(logits), (cols, yhat, inv, a, pooled)


def predict(model, x):
    """Class probabilities (N, 10) of raw-pixel inputs (N, 64), computed in NumPy."""
    return _forward(model, np.asarray(x, np.float32))[0]


def accuracy(model, x, y):
    """Fraction of ``x`` whose most probable class is ``y``."""
    return float(np.mean(predict(model, x).argmax(axis=1) == y))


def _gradients(model, x, probs, cache, y):
    p, grads = model.params, {}
    dz = probs.copy()
    dz[np.arange(len(y)), y] -= 1
    dz /= len(y)
    if model.kind == "mlp":
        acts, n = cache, len(p) // 2
        for i in range(n, 0, -1):
            grads[f"W{i}"], grads[f"b{i}"] = acts[i - 1].T @ dz, dz.sum(axis=0)
            if i > 1:
                dz = (dz @ p[f"W{i}"].T) * (acts[i - 1] > 0)
        return grads
    cols, yhat, inv, a, pooled = cache
    c = p["conv_W"].shape[0]
    flat = pooled.reshape(len(x), -1)
    grads["fc_W"], grads["fc_b"] = dz.T @ flat, dz.sum(axis=0)
    dpool = (dz @ p["fc_W"]).reshape(pooled.shape)
    # The gradient goes to one maximum of each window (flat image regions tie), then through the ReLU.
    windows = a.transpose(0, 1, 2, 4, 3, 5).reshape(*pooled.shape, 4)
    first_max = np.eye(4, dtype=a.dtype)[windows.argmax(axis=-1)] * dpool[..., None]
    da = first_max.reshape(*pooled.shape, 2, 2).transpose(0, 1, 2, 4, 3, 5) * (a > 0)
    dout = da.reshape(len(x), c, 64)
    grads["bn_scale"], grads["bn_bias"] = (dout * yhat).sum(axis=(0, 2)), dout.sum(axis=(0, 2))
    dyhat = dout * p["bn_scale"][:, None]
    m = dyhat.shape[0] * dyhat.shape[2]
    dy = inv[:, None] / m * (m * dyhat - dyhat.sum(axis=(0, 2))[:, None]
                              - yhat * (dyhat * yhat).sum(axis=(0, 2))[:, None])
    grads["conv_W"] = np.einsum("ncp,npk->ck", dy, cols).reshape(p["conv_W"].shape)
    grads["conv_b"] = dy.sum(axis=(0, 2))
    return grads


def train(model, x, y, epochs=10, batch=64, lr=None, seed=0):
    """Train in place with Adam on cross-entropy, masks held: pruned weights stay zero.

    Parameters
    ----------
    model : Model
    x, y : arrays
        Raw pixels (n, 64) and labels (n,).
    epochs, batch, lr, seed : training settings (the same seed gives the same model);
        ``lr`` defaults to 2e-3 for the MLP and 1e-2 for the CNN.

    Returns
    -------
    list of float
        The mean training loss of each epoch.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"train needs as many labels as inputs, at least one: got {len(x)} and {len(y)}")
    lr = lr or (2e-3 if model.kind == "mlp" else 1e-2)
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in model.params.items()}
    losses, t = [], 0
    for _ in range(epochs):
        order, total = rng.permutation(len(x)), 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            probs, cache = _forward(model, x[idx], training=True)
            total += -np.log(probs[np.arange(len(idx)), y[idx]] + 1e-12).sum()
            t += 1
            for name, g in _gradients(model, x[idx], probs, cache, y[idx]).items():
                mask = model.masks.get(name)
                g = g if mask is None else g * mask
                m, v = moments[name]
                m[...] = 0.9 * m + 0.1 * g
                v[...] = 0.999 * v + 0.001 * g * g
                step = lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
                model.params[name] = (model.params[name] - step).astype(np.float32)
                if mask is not None:
                    model.params[name] *= mask
        losses.append(total / len(x))
    return losses


def _initializers(arrays):
    return [numpy_helper.from_array(np.asarray(v, np.float32), name) for name, v in arrays.items()]


def to_onnx(model, batch=1):
    """The model as an ONNX graph (opset 13, static batch size), built with ``onnx.helper``.

    The MLP reads ``x`` (batch, 64) raw pixels and standardises them in the
    graph (Sub, Div), then MatMul + Add + Relu per layer, as framework
    exporters write it; the CNN reads ``input.1`` (batch, 1, 8, 8) and
    divides by a ``Constant``. Both end in ``Softmax`` and output ``probs``.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    f32 = onnx.TensorProto.FLOAT
    p = model.params
    if model.kind == "mlp":
        n = len(p) // 2
        nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"], name="standardise_sub"),
                 helper.make_node("Div", ["centred", "std"], ["h0"], name="standardise_div")]
        for i in range(1, n + 1):
            nodes.append(helper.make_node("MatMul", [f"h{i - 1}", f"W{i}"], [f"mm{i}"], name=f"matmul{i}"))
            last = i == n
            out = "logits" if last else f"pre{i}"
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out], name=f"bias{i}"))
            if not last:
                nodes.append(helper.make_node("Relu", [f"pre{i}"], [f"h{i}"], name=f"relu{i}"))
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"))
        inputs = [helper.make_tensor_value_info("x", f32, [batch, 64])]
        inits = _initializers({**p, **model.buffers})
    else:
        scale = numpy_helper.from_array(np.array(PIXEL_MAX, np.float32), "pixel_max_value")
        nodes = [helper.make_node("Constant", [], ["pixel_max"], value=scale, name="pixel_max"),
                 helper.make_node("Div", ["input.1", "pixel_max"], ["scaled"], name="scale"),
                 helper.make_node("Conv", ["scaled", "conv_W", "conv_b"], ["conv"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1], strides=[1, 1], name="conv"),
                 helper.make_node("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                                  ["bn"], epsilon=BN_EPS, name="bn"),
                 helper.make_node("Relu", ["bn"], ["relu"], name="relu"),
                 helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
                 helper.make_node("Flatten", ["pool"], ["flat"], axis=1, name="flatten"),
                 helper.make_node("Gemm", ["flat", "fc_W", "fc_b"], ["logits"], transB=1, name="fc"),
                 helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax")]
        inputs = [helper.make_tensor_value_info("input.1", f32, [batch, 1, 8, 8])]
        inits = _initializers({**p, **model.buffers})
    graph = helper.make_graph(nodes, f"digits_{model.kind}", inputs,
                              [helper.make_tensor_value_info("probs", f32, [batch, 10])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="book.models")
    onnx_model.ir_version = 8  # what opset 13 needs; readable by every ONNX Runtime of the last years
    onnx.checker.check_model(onnx_model)
    return onnx_model


def input_name(model):
    """The name of the ONNX graph's input: ``x`` for the MLP, ``input.1`` for the CNN (as PyTorch names it)."""
    return "x" if model.kind == "mlp" else "input.1"


def as_input(model, x):
    """Raw pixels (n, 64) shaped as the ONNX graph's input."""
    x = np.asarray(x, np.float32)
    return x if model.kind == "mlp" else x.reshape(-1, 1, 8, 8)
