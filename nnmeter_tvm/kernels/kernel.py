"""The kernel record: the unit a backend really executes after its graph-level fusions."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Kernel:
    """A group of graph nodes that the backend runs as one kernel.

    ``type`` is built from the member ops in order (``conv-bn-relu``, ``add-relu``); ``anchor``
    is the member whose configuration defines the kernel's cost (its first compute op, else its
    first node).  A kernel the backend inserts on its own (onnxruntime's NCHWc reorders) has
    ``inserted=True``, no member nodes, and the tensor it converts in ``attrs["tensor"]`` with
    its shape in ``attrs["shape"]``.  ``rule`` names the fusion rule that formed the group.

    Keep it a plain record: the C++ partition (``cpp_ext/partition_py.cpp``) builds Kernels as
    this dataclass's ``__init__`` does (``object.__setattr__`` per field) without calling it.
    """

    name: str
    type: str
    nodes: tuple[str, ...]
    anchor: str | None
    ops: tuple[str, ...]
    inserted: bool = False
    rule: str | None = None
    attrs: dict = field(default_factory=dict)


REORDER_OPS = ("ReorderInput", "ReorderOutput")  # a backend's layout kernels (onnxruntime)


def reorder_direction(op_type: str) -> str:
    """The direction of a backend's reorder op: into its blocked layout (``ReorderInput``)
    or out of it."""
    return "to_blocked" if "Input" in op_type else "from_blocked"


def reorder_name(tensor: str, direction: str) -> str:
    """The name of the layout kernel converting ``tensor`` (``to_blocked`` or
    ``from_blocked``): predicted and executed reorders are matched by it."""
    return f"{'reorder_input' if direction == 'to_blocked' else 'reorder_output'}:{tensor}"


def reorder_kernel(tensor: str, shape, direction: str, block: int, rule: str | None = None):
    """An inserted layout kernel (onnxruntime's NCHWc ``ReorderInput``/``ReorderOutput``)."""
    return Kernel(name=reorder_name(tensor, direction), type="reorder", nodes=(), anchor=None,
                  ops=("reorder",), inserted=True, rule=rule,
                  attrs={"tensor": tensor, "shape": tuple(shape), "direction": direction,
                         "block": block, "dtype": "float32"})
