"""Map onnxruntime's optimised graph back to the ORIGINAL ONNX nodes: ground truth for ort-cpu.

onnxruntime (ORT_ENABLE_ALL, x86) rewrites a graph in two stages, and so does this mapping:

Stage A, levels 1-2 (the graph written with ``NchwcTransformer`` disabled, "G1"): fusions
that keep the boundary tensors' names.  ``conv0`` (FusedConv, activation=Relu) reads ``x`` and
writes ``r0`` exactly where Conv -> BatchNormalization -> Relu did; ``fused fc`` (FusedGemm),
``mm/MatMulAddFusion`` (Gemm), ``swish_mul/QuickGeluFusion/`` (QuickGelu).  So a G1 node's
members are the original nodes between its input and output tensors.  G1 nodes linked by a
tensor the original graph does not have (an inlined HardSwish becomes two unnamed nodes,
HardSigmoid and Mul) form one region and share its members.

Stage B, level 3 (the executed graph, "G2"): ``NchwcTransformer`` replaces a node by an NCHWc
one named ``<G1 output tensor>_nchwc`` (``_bn_nchwc`` for a BatchNormalization turned into a
depthwise NchwcConv), renames every tensor in the blocked layout (``reorder_token_N``), inserts
``ReorderInput`` / ``ReorderOutput`` nodes (kernels with no original node: ``inserted``) and
fuses Add (as the conv's 4th "Sum" input) and activations into NchwcConv.  A G1 node that no
G2 node replaces was fused into the G2 node whose output its consumers now read.

    original:  x -> Conv -> BN -> Relu -> r0 -> Conv -> Add(+r0) -> Relu -> r1
    G1:        x -> FusedConv[conv0](Relu) -> r0 -> Conv[conv1] -> Add[add1] -> Relu[relu1] -> r1
    G2:        x -> Conv[r0_nchwc] -> t0 -> Conv[c1_nchwc](sum=t0, Relu) -> t2
                 -> ReorderOutput -> r1

Every original node ends up in exactly one kernel or in ``eliminated`` (Identity, Dropout,
constant-folded shape arithmetic, dead code).  Kernels that share an original node (one
original node run as several ORT nodes) are merged into one kernel.

G1 is written with ``ConvAddActivationFusion`` disabled too (``G1_DISABLED_OPTIMIZERS``): with
the NCHWc stage on, onnxruntime skips that fusion for convs it will convert to NCHWc, and the
NCHWc stage may then leave the Add apart (e.g. its other input is in the plain layout).  A G1
FusedConv(Conv+Add+Relu) would then stand for three executed kernels, none replacing it by
name.  Without it G1 is finer than G2, and stage B's absorption re-fuses wherever G2 fused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: what the G1 session disables (names unknown to an onnxruntime build are ignored)
G1_DISABLED_OPTIMIZERS = ("NchwcTransformer", "ConvAddActivationFusion")
_NCHWC_NAME = re.compile(r"^(?P<tensor>.+?)(?:_bn|_mul)?_nchwc(?:_token_\d+)?$")
_SHAPE_OPS = {"Shape", "Size"}
_NO_OPS = {"Identity", "Dropout"}     # removed by onnxruntime at inference
_LAYOUT_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "ReorderInput",
               "ReorderOutput"}


@dataclass(frozen=True)
class MappedKernel:
    """One kernel of the executed graph: its G2 node indices and original node indices."""

    g2_nodes: tuple[int, ...]
    original: tuple[int, ...]
    inserted: bool


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _producers(graph) -> dict:
    return {t: i for i, n in enumerate(graph.node) for t in n.output if t}


def _constants(graph) -> set:
    """Tensors whose value is known before running: initializers, Constant outputs, and what
    constant folding computes from them (incl. Shape/Size of a statically shaped tensor)."""
    static = {v.name for v in list(graph.value_info) + list(graph.input) + list(graph.output)
              if v.type.tensor_type.HasField("shape")
              and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)}
    const = {t.name for t in graph.initializer}
    for n in graph.node:
        ins = [t for t in n.input if t]
        if all(t in const for t in ins) or (n.op_type in _SHAPE_OPS and ins[0] in static):
            const.update(t for t in n.output if t)
    return const


def _regions(original, g1):
    """Stage A: G1 node index -> region id (None: a layout node ORT inserted), region id ->
    original node indices."""
    o_prod = _producers(original)
    o_const = _constants(original)
    anchors = {v.name for v in original.input} | set(o_prod)
    anchors -= o_const
    g1_init = {t.name for t in g1.initializer}
    g1_prod = _producers(g1)
    # walks stop at tensors G1 still has, and at tensors CSE merged into one G1 still has
    in_g1 = (set(g1_prod) | {v.name for v in g1.input}) & anchors
    canon = _cse(original)
    kept = {canon[t] for t in in_g1 if t in canon}
    duplicate = {t for t, c in canon.items() if c in kept and t not in in_g1}
    uf = _UnionFind(len(g1.node))
    for j, node in enumerate(g1.node):
        for t in node.input:
            if t and t not in anchors and t not in g1_init and t in g1_prod:
                uf.union(g1_prod[t], j)
    groups: dict[int, list[int]] = {}
    for j in range(len(g1.node)):
        groups.setdefault(uf.find(j), []).append(j)
    members: dict[int, set[int]] = {}
    for root, nodes in groups.items():
        outs = {t for j in nodes for t in g1.node[j].output if t in anchors}
        mem = _between(original, o_prod, o_const, o_const | in_g1 | duplicate, outs)
        if not any(g1.node[j].op_type in _NO_OPS for j in nodes):   # removed, not fused
            mem = {i for i in mem if original.node[i].op_type not in _NO_OPS}
        members[root] = mem
    # an original node claimed by two regions makes them one
    owner: dict[int, int] = {}
    for root, mem in members.items():
        for i in mem:
            if i in owner:
                uf.union(owner[i], root)
            else:
                owner[i] = root
    region = {j: uf.find(j) for j in range(len(g1.node))}
    for root, nodes in groups.items():   # e.g. the Reshapes around a 3-D MatMulAddFusion Gemm
        ops = {original.node[i].op_type for i in members[root]}
        for j in nodes:
            op = g1.node[j].op_type
            if len(nodes) > 1 and op in _LAYOUT_OPS and op not in ops:
                region[j] = None
    merged: dict[int, set[int]] = {}
    for root, mem in members.items():
        merged.setdefault(uf.find(root), set()).update(mem)
    return region, merged


def _between(graph, prod, const, stop, outs) -> set[int]:
    """Original nodes on the paths into tensors ``outs`` from the ``stop`` tensors (walking
    backwards), less those that compute only constants."""
    seen, stack = set(), [prod[t] for t in outs if t in prod]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        for t in graph.node[i].input:
            if t and t not in stop and t in prod:
                stack.append(prod[t])
    return {i for i in seen if not all(t in const for t in graph.node[i].output if t)}


def _cse(graph) -> dict[str, str]:
    """Tensor -> the first tensor computed identically (same op, inputs and attributes), as
    onnxruntime's common-subexpression elimination merges them."""
    canon, seen = {}, {}
    for n in graph.node:
        ins = tuple(canon.get(t, t) for t in n.input)
        key = (n.domain, n.op_type, ins, tuple(a.SerializeToString() for a in n.attribute))
        first = seen.setdefault(key, n)
        for t, c in zip(n.output, first.output):
            canon[t] = canon.get(c, c)
    return canon


def _g2_to_g1(g1, g2) -> dict[int, int]:
    """Which G1 node each G2 node replaces (by name, NCHWc name, or output tensor)."""
    by_name: dict[str, list[int]] = {}
    for j, n in enumerate(g1.node):
        if n.name:
            by_name.setdefault(n.name, []).append(j)
    g1_prod = _producers(g1)
    mapping = {}
    for k, n in enumerate(g2.node):
        if n.name and len(by_name.get(n.name, ())) == 1:
            mapping[k] = by_name[n.name][0]
            continue
        m = _NCHWC_NAME.match(n.name or "")
        if m and m["tensor"] in g1_prod and n.domain.endswith("nchwc"):
            mapping[k] = g1_prod[m["tensor"]]
            continue
        for t in n.output:
            j = g1_prod.get(t)
            if j is not None and g1.node[j].op_type == n.op_type:
                mapping[k] = j
                break
    return mapping


def map_kernels(original, g1, g2) -> tuple[list[MappedKernel], set[int]]:
    """The executed graph ``g2`` as kernels of original node indices, plus the eliminated ones.

    ``original``: the model as given (GraphProto, shape-inferred); ``g1`` / ``g2``: the graphs
    onnxruntime wrote without / with its NCHWc layout stage (``g1 is g2`` is fine).
    """
    region, members = _regions(original, g1)
    to_g1 = _g2_to_g1(g1, g2)
    g1_prod = _producers(g1)
    g2_prod = _producers(g2)
    g1_init = {t.name for t in g1.initializer}
    g2_init = {t.name for t in g2.initializer}
    # eq: output of a replacing G2 node -> the G1 tensor its G1 node wrote (in any layout)
    eq = {v.name: v.name for v in g1.input}
    for k, j in to_g1.items():
        eq.update(zip(g2.node[k].output, g1.node[j].output))

    def source(tensor):
        """Skip inserted (layout) nodes back to the tensor a real kernel or the user wrote."""
        k = g2_prod.get(tensor)
        while k is not None and k not in to_g1 and g2.node[k].input:
            tensor = g2.node[k].input[0]
            k = g2_prod.get(tensor)
        return tensor

    absorbed: dict[int, set[int]] = {k: {j} for k, j in to_g1.items()}
    g1_cons = _consumers(g1)
    for k in sorted(to_g1):  # G2 order: a Sum input is mapped before the conv reading it
        sum_tensor = eq.get(source(_sum_input(g2.node[k])))
        fused = _sum_fused(g1, g1_cons, g2.node[k], to_g1[k], sum_tensor)
        if fused:
            absorbed[k].update(fused)
            eq.update(zip(g2.node[k].output, g1.node[fused[-1]].output))
    mapped_g1 = set().union(*absorbed.values()) if absorbed else set()
    claimed = set(mapped_g1)
    # (G2 consumer inputs, G1 tensors it needs): nodes in between were fused upstream
    needs = [([u for u in n.input if u and u not in g2_init], [t for t in g1.node[to_g1[k]].input
             if t and t not in g1_init]) for k, n in enumerate(g2.node) if k in to_g1]
    needs += [([o.name], [o.name]) for o in g2.output]
    for g2_inputs, g1_inputs in needs:
        have = {eq[source(u)]: source(u) for u in g2_inputs if source(u) in eq}
        for t in g1_inputs:
            if t in have:
                continue
            path, reached = _walk_back(g1, g1_prod, t, have, mapped_g1)
            owners = [g2_prod.get(have[e]) for e in reached]
            owners = [k for k in owners if k is not None]
            if owners:
                absorbed[max(owners)].update(path - claimed)
                claimed |= path

    uf = _UnionFind(len(g2.node))
    first_of_region: dict[int, int] = {}
    for k, g1_nodes in absorbed.items():
        for j in g1_nodes:
            r = region[j]
            if r is None:
                continue
            if r in first_of_region:
                uf.union(first_of_region[r], k)
            else:
                first_of_region[r] = k
    nodeless = {k for k in range(len(g2.node))
                if all(region[j] is None for j in absorbed.get(k, ()))}
    for k, j in _gemm_reshapes(g2, nodeless, g2_prod):
        uf.union(j, k)
    groups: dict[int, list[int]] = {}
    for k in range(len(g2.node)):
        groups.setdefault(uf.find(k), []).append(k)
    kernels, used = [], set()
    for root in sorted(groups):
        ks = groups[root]
        regions = {region[j] for k in ks for j in absorbed.get(k, ())} - {None}
        orig = set().union(*(members[r] for r in regions)) if regions else set()
        used |= orig
        kernels.append(MappedKernel(tuple(ks), tuple(sorted(orig)), inserted=not regions))
    eliminated = set(range(len(original.node))) - used
    return kernels, eliminated


def _gemm_reshapes(g2, nodeless, g2_prod):
    """(reshape, gemm) G2 index pairs: the Reshapes onnxruntime's MatMulAddFusion puts around
    the Gemm that runs a MatMul + bias Add over a 3-D input (to 2-D before it, back after it).
    They replace no node of the model; the partition's kernel (gemm-add) is all three."""
    cons = _consumers(g2)
    for k, node in enumerate(g2.node):
        if node.op_type != "Reshape" or k not in nodeless:
            continue
        after = [j for j in cons.get(node.output[0], ()) if g2.node[j].op_type == "Gemm"]
        before = g2_prod.get(node.input[0])
        if len(after) == 1 and cons.get(node.output[0]) == after:
            yield k, after[0]
        elif before is not None and g2.node[before].op_type == "Gemm":
            yield k, before


def _consumers(graph) -> dict:
    out: dict[str, list[int]] = {}
    for i, n in enumerate(graph.node):
        for t in n.input:
            if t:
                out.setdefault(t, []).append(i)
    return out


def _sum_input(node) -> str:
    """The tensor a fused conv adds to its result (its 4th input: NCHWc Conv, FusedConv), or ""."""
    return node.input[3] if node.op_type in ("Conv", "FusedConv") and len(node.input) > 3 else ""


def _sum_fused(g1, g1_cons, node, j, sum_tensor) -> list[int]:
    """G1 nodes a fused conv ``node`` (replacing G1 node ``j``) runs through its Sum input:
    the Add of the conv's G1 output and ``sum_tensor``, then the activation it applies.  Its
    output then stands for that Add's (or activation's), not the plain conv's: in
    ``(a + b) + c`` the conv of ``a`` writes the first sum, the conv of ``c`` the second."""
    if not sum_tensor or len(g1.node[j].output) != 1:
        return []
    adds = [a for a in g1_cons.get(g1.node[j].output[0], ())
            if g1.node[a].op_type == "Add" and sum_tensor in g1.node[a].input]
    if len(adds) != 1:
        return []
    fused = [adds[0]]
    act = _activation(node)
    after = g1_cons.get(g1.node[adds[0]].output[0], ())
    if act and len(after) == 1 and g1.node[after[0]].op_type == act:
        fused.append(after[0])
    return fused


def _activation(node) -> str | None:
    """The activation an onnxruntime fused node applies (its ``activation`` attribute)."""
    return next((a.s.decode() for a in node.attribute if a.name == "activation"), None)


def _walk_back(g1, g1_prod, tensor, have, mapped):
    """G1 nodes (not replaced by a G2 node) between the tensors in ``have`` and ``tensor``."""
    path, reached, stack, seen = set(), set(), [tensor], set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in have:
            reached.add(t)
            continue
        j = g1_prod.get(t)
        if j is None or j in mapped:
            continue
        path.add(j)
        stack.extend(u for u in g1.node[j].input if u)
    return path, reached


#: the plain-layout side of each reorder onnxruntime inserts: a ReorderInput reads a plain
#: tensor, a ReorderOutput writes one
PLAIN_SIDE = {"ReorderInput": "input", "ReorderOutput": "output"}


def reorder_tensor(nodes) -> str:
    """The plain-layout tensor an inserted ``ReorderInput`` reads or ``ReorderOutput`` writes
    (an original tensor's name: stage B keeps the plain-layout names), "" for other nodes."""
    for node in nodes:
        names = getattr(node, PLAIN_SIDE[node.op_type]) if node.op_type in PLAIN_SIDE else ()
        if names:
            return names[0]
    return ""


def node_detail(node) -> str:
    """Domain, fused activation and fused Sum input of an executed node, for ``detail``."""
    parts = [f"domain={node.domain}"] if node.domain else []
    act = _activation(node)
    if act:
        parts.append(f"activation={act}")
    if _sum_input(node):
        parts.append("sum")
    return " ".join(parts)
