"""The framework-neutral graph: a DAG of ops with normalized types and full attributes.

Adapters build it (``onnx_import`` from ONNX, ``passes.relax_graph`` from a Relax module); the
partition, features and predictors read it.  It holds no reference to ONNX, TVM or a runtime.

Only activation tensors are edges.  Weights, initializers and Constant nodes are folded into the
attributes of the node that reads them (``attrs["const_inputs"]`` keeps their input index and
shape), so a node's ``inputs`` are exactly the tensors produced by other nodes or fed by the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: Shape
    dtype: str = "float32"


@dataclass(frozen=True, eq=False)
class Node:
    """One op.  ``op`` is a name from :mod:`nnmeter_tvm.ops`; ``source_op`` the original one."""

    name: str
    op: str
    source_op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    dtype: str = "float32"
    attrs: dict = field(default_factory=dict)

    @property
    def output_shape(self) -> Shape:
        return self.output_shapes[0]

    @property
    def input_shape(self) -> Shape:
        return self.input_shapes[0] if self.input_shapes else ()


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in topological order, plus the graph's input and output tensors."""

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    _by_name: dict = field(default_factory=dict, repr=False)
    _producer: dict = field(default_factory=dict, repr=False)
    _consumers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for node in self.nodes:
            assert node.name not in self._by_name, f"duplicate node name {node.name!r}"
            self._by_name[node.name] = node
            for t in node.outputs:
                self._producer[t] = node.name
            for t in node.inputs:
                self._consumers.setdefault(t, []).append(node.name)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def producer(self, tensor: str) -> str | None:
        """Name of the node that produces ``tensor`` (None for a graph input)."""
        return self._producer.get(tensor)

    def consumers(self, tensor: str) -> list[str]:
        return list(self._consumers.get(tensor, ()))

    def predecessors(self, name: str) -> list[str]:
        preds = (self._producer.get(t) for t in self._by_name[name].inputs)
        return list(dict.fromkeys(p for p in preds if p is not None))

    def successors(self, name: str) -> list[str]:
        succ = (c for t in self._by_name[name].outputs for c in self._consumers.get(t, ()))
        return list(dict.fromkeys(succ))

    def tensor_shapes(self) -> dict[str, tuple]:
        """Shape of every tensor a node reads or writes, by name."""
        shapes = {x: s for n in self.nodes for x, s in zip(n.inputs, n.input_shapes)}
        shapes.update({x: s for n in self.nodes for x, s in zip(n.outputs, n.output_shapes)})
        return shapes

    def is_graph_output(self, tensor: str) -> bool:
        return any(o.name == tensor for o in self.outputs)

    def to_dict(self) -> dict:
        """JSON-ready view, used by ``nnmeter-tvm graph --json``."""
        return {
            "name": self.name,
            "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.inputs],
            "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.outputs],
            "nodes": [
                {
                    "name": n.name,
                    "op": n.op,
                    "source_op": n.source_op,
                    "inputs": list(n.inputs),
                    "outputs": list(n.outputs),
                    "input_shapes": [list(s) for s in n.input_shapes],
                    "output_shapes": [list(s) for s in n.output_shapes],
                    "dtype": n.dtype,
                    "attrs": _jsonable(n.attrs),
                }
                for n in self.nodes
            ],
        }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value
