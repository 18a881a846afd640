"""The C++ partition: the fast path behind :func:`nnmeter_tvm.kernels.partition`.

:mod:`.partition` is the specification: the same algorithm in readable Python, with the
decision taken on every edge (``partition_with_decisions``, used by ``nnmeter-tvm kernels
--explain`` and the rule tester).  ``cpp_ext/partition.cpp`` ports it step by step, and
``tests/test_partition_cpp.py`` checks that both give the same kernels.  This module compiles a
:class:`~nnmeter_tvm.rules.Rules` object into the extension's lookup tables, once per object
(rules are immutable), and runs the extension.  There is no pure-Python fallback: without the
extension :func:`partition` raises.
"""
from __future__ import annotations

import weakref
from dataclasses import fields

from ..extension import load_extension
from ..ops import VOCAB, category
from .kernel import Kernel

# the codes of partition.h's Cond
_CONDITION_CODES = {"blocked": 0, "plain": 1, "compatible": 2, "const_operand": 3}
# partition_py.cpp sets these fields of a Kernel, in this order, without calling __init__
_KERNEL_FIELDS = ("name", "type", "nodes", "anchor", "ops", "inserted", "rule", "attrs")
_BINARY_OPS = ("add", "sub", "mul", "div", "pow")  # as _Partitioner.follows lists them

_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Rules -> PartitionRules
_ext = None


def _extension():
    """The compiled module, checked once for the partition."""
    global _ext
    if _ext is not None:
        return _ext
    ext = load_extension("kernel partition", "partition")
    if tuple(f.name for f in fields(Kernel)) != _KERNEL_FIELDS or hasattr(Kernel, "__post_init__"):
        raise ImportError(
            "nnmeter_tvm.kernels.Kernel changed: cpp_ext/partition_py.cpp builds Kernels from "
            f"the fields {', '.join(_KERNEL_FIELDS)} without __init__; update it and "
            "_KERNEL_FIELDS together.")
    _ext = ext
    return ext


def partition(graph, rules) -> list[Kernel]:
    """The kernels of ``graph`` under ``rules`` (a loaded :class:`~nnmeter_tvm.rules.Rules`)."""
    return (_ext or _extension()).partition(graph, compiled(rules))


def compiled(rules):
    """``rules`` as the extension's ``PartitionRules`` (built on first use, then cached)."""
    table = _tables.get(rules)
    if table is None:
        table = _tables[rules] = (_ext or _extension()).PartitionRules(_spec(rules))
    return table


def _spec(rules) -> dict:
    """What PartitionRules reads: ops as ids, rules as (kind, topology, op ids, together bits,
    condition codes, name) in file order, the layout's conditions as flat tuples."""
    from .partition import cse_attrs_key

    layout = rules.layout
    ops = list(VOCAB)
    named = [op for r in rules.rules for op in r.ops]
    if layout is not None:
        named += list(layout.starts) + list(layout.follows)
    ops += [op for op in dict.fromkeys(named) if op not in VOCAB]
    ids = {op: i for i, op in enumerate(ops)}
    entries = [(r.kind, r.topology, [ids[o] for o in r.ops], _together_bits(r),
                [_CONDITION_CODES[c] for c in r.requires], r.name) for r in rules.rules]
    cse = rules.rewrites_named("cse")
    return {
        "ops": ops,
        "compute": [ids[op] for op in ops if category(op) == "compute"],
        "binary": [ids[op] for op in _BINARY_OPS],
        "concat": ids["concat"],
        "rules": entries,
        "layout": None if layout is None else {
            "name": layout.name, "block": layout.block, "rule": f"layout_{layout.name}",
            "starts": {ids[op]: _conds(c) for op, c in layout.starts.items()},
            "follows": {ids[op]: _conds(c) for op, c in layout.follows.items()}},
        "cse_keep_first": None if cse is None else cse.get("keep", "first") == "first",
        "kernel": Kernel,
        "attrs_key": cse_attrs_key,
    }


def _together_bits(rule) -> int:
    """Bit 3 * i + j set when roles i and j run in one kernel (``Rule.together``)."""
    return sum(1 << (3 * i + j) for i in range(3) for j in range(3) if rule.together(i, j))


def _conds(conds: dict) -> tuple:
    """A layout op's conditions as _Partitioner reads them: presence and value of plain_below,
    multiple and group_multiple; same_shape and const_operand as booleans."""
    return ("plain_below" in conds, conds.get("plain_below", 0),
            "multiple" in conds, conds.get("multiple", 0),
            "group_multiple" in conds, conds.get("group_multiple", 0),
            bool(conds.get("same_shape")), bool(conds.get("const_operand", False)))
