"""nnmeter-tvm: kernel-level DNN latency prediction inside the compiler.

Importing the package imports no compiler or runtime; those load where they are used.
"""
__version__ = "0.1.0"


def load_predictor(name_or_dir="ort-cpu"):
    """A trained predictor: a shipped bundle by backend name (``"ort-cpu"``) or a bundle folder."""
    from .predictors import load_predictor as _load

    return _load(name_or_dir)


def load_graph(model, input_shapes=None):
    """An ONNX model (path or ModelProto) as the framework-neutral :class:`Graph`."""
    from .onnx_import import load_graph as _load

    return _load(model, input_shapes)
