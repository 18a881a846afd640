"""Small builders for hand-made ONNX models used across the tests, and the benchmarks' library."""
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(nodes, inputs, outputs, initializers=(), name="g", opset=17):
    """inputs/outputs: [(name, shape)]; initializers: {name: ndarray}."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
         for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def weights(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


_EVAL_LIB = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_lib"


def eval_lib(module):
    """Import ``benchmarks/eval_lib/<module>.py`` (benchmarks/ is not an installed package)."""
    if "eval_lib" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "eval_lib", _EVAL_LIB / "__init__.py", submodule_search_locations=[str(_EVAL_LIB)])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["eval_lib"] = pkg
        spec.loader.exec_module(pkg)
    return importlib.import_module(f"eval_lib.{module}")


def benchmark_script(name):
    """Import ``benchmarks/<name>.py`` as a module (after eval_lib, which the scripts import)."""
    eval_lib("report")
    path = _EVAL_LIB.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
