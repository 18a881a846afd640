"""ONNX -> Relax with provenance: which ONNX node each binding of ``main`` comes from.

TVM's Relax ONNX frontend keeps no spans or node names.  :func:`import_onnx` runs that frontend
exactly as ``from_onnx(model, keep_params_in_input=False)`` does (same module, binding for
binding) and keeps the importer's table from each ONNX tensor to the expression that computes
it: a variable, or a call the block builder binds when a later node first uses it.  The
provenance is then recovered from dataflow: the bindings of ONNX node *i* are those reached
backwards from its output variables, stopping at variables that earlier nodes own.  So a node
whose converter emits several bindings (Conv with bias: conv2d, reshape of the bias, add) owns
all of them, and a node that emits none (Identity returns its input) owns nothing.

Reusable by any adapter that must relate a Relax module to the ONNX graph it came from.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

# before TVM's thread pool starts: one thread, and no pinning of its own (the protocol pins)
os.environ["TVM_NUM_THREADS"] = "1"
os.environ["TVM_BIND_THREADS"] = "0"

from ..errors import BackendError  # noqa: E402
from .base import LoadedModel, load  # noqa: E402


@dataclass(frozen=True, eq=False)
class RelaxImport:
    """``mod``: the Relax module.  ``var_node``: binding variable name in ``main`` -> ONNX node
    name (names as :func:`~.base.onnx_node_names` gives them); ``node_vars``: the reverse.
    Passes may reuse names, so after a pass ask :meth:`node_of` (by variable identity, which
    LegalizeOps, FoldConstant, FuseOps (inside the fused functions) and FuseTIR preserve)."""

    mod: object
    var_node: dict
    node_vars: dict
    label: str
    by_id: dict

    def node_of(self, var) -> str | None:
        """The ONNX node whose work the Relax variable ``var`` (this object, or the same
        object in a later module) does; None for a variable the import did not create."""
        return self.by_id.get(var_id(var))


def var_id(var) -> int:
    """Identity of a Relax variable (its C++ object), stable across Python wrappers."""
    return var.__chandle__()


def _opset(proto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def import_onnx(model, *, input_shapes: dict | None = None,
                backend: str = "tvm-llvm") -> RelaxImport:
    """Import an ONNX model (path, ModelProto or LoadedModel) into Relax, with provenance.

    Raises BackendError naming the model and the unsupported op(s) when the frontend refuses.
    """
    import tvm

    from tvm.relax.frontend.onnx.onnx_frontend import ONNXGraphImporter

    loaded: LoadedModel = load(model, input_shapes)
    importer = ONNXGraphImporter(None, "float32", keep_params_in_input=False, sanitize=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importer.from_onnx(loaded.proto.graph, _opset(loaded.proto))
    except tvm.error.OpNotImplemented as exc:
        ops = str(exc).split(":", 1)[-1].strip().splitlines()[0]
        raise BackendError(f"{backend}: {loaded.label}: TVM's Relax ONNX frontend does not "
                           f"support op {ops}") from None
    except Exception as exc:
        raise BackendError(f"{backend}: {loaded.label}: TVM's Relax ONNX frontend failed: "
                           f"{_first_line(exc)}") from None
    by_id, var_node = _provenance(mod["main"], loaded, importer._nodes)
    node_vars: dict[str, list[str]] = {}
    for var, node in var_node.items():
        node_vars.setdefault(node, []).append(var)
    return RelaxImport(mod, var_node, {k: tuple(v) for k, v in node_vars.items()}, loaded.label,
                       by_id)


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def bindings(func) -> list:
    """All bindings of a Relax function body, in order."""
    return [b for block in func.body.blocks for b in block.bindings]


def used_vars(expr) -> list:
    """The Relax variables ``expr`` reads."""
    from tvm import relax

    return list(relax.analysis.free_vars(expr))


def _provenance(main, loaded: LoadedModel, tensor_exprs: dict) -> tuple[dict, dict]:
    from tvm import relax

    value = {var_id(b.var): b for b in bindings(main)}
    bound_to = {b.value.__chandle__(): b.var for b in bindings(main)}

    def as_vars(expr):
        """The variables holding a converter's result (bound now, or when first used)."""
        if isinstance(expr, relax.Var):
            return [expr]
        if isinstance(expr, relax.Tuple):
            return [v for f in expr.fields for v in as_vars(f)]
        var = bound_to.get(expr.__chandle__()) if expr is not None else None
        return [var] if var is not None else []

    owner: dict[int, str] = {}
    graph = loaded.proto.graph
    for name, node in zip(loaded.node_names, graph.node):
        stack = [v for t in node.output for v in as_vars(tensor_exprs.get(t))]
        while stack:
            v = var_id(stack.pop())
            if v in owner or v not in value:
                continue
            owner[v] = name
            stack.extend(used_vars(value[v].value))
    # leftovers (unused TupleGetItems, the output binding): the owner of what they read
    for b in bindings(main):
        if var_id(b.var) not in owner:
            readers = [owner[var_id(v)] for v in used_vars(b.value) if var_id(v) in owner]
            if readers:
                owner[var_id(b.var)] = readers[0]
    by_name = {b.var.name: owner[var_id(b.var)] for b in bindings(main) if var_id(b.var) in owner}
    return owner, by_name
