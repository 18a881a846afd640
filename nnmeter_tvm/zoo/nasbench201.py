"""NAS-Bench-201 (Dong & Yang 2020): one searched cell repeated in a ResNet-like skeleton.

Input 32x32 (CIFAR), 10 classes.  Stem conv 3x3 (16) -> BN; three stages of N cells (widths
16, 32, 64) with a residual reduction block between stages (ReLU -> conv 3x3/2 -> BN, ReLU ->
conv 3x3 -> BN, plus a shortcut avg pool 2x2/2 -> conv 1x1, summed by Add); BN -> ReLU ->
global pool -> fc.

A cell is a DAG of 4 nodes: node j is the sum (Add) over i < j of op_ij(node i), each of the
6 edges an op from {none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}
(nor_conv = ReLU -> conv -> BN; avg_pool is 3x3/1, padded, not counting the padding).  Every
cell of a network has the same ops.  "none" edges are dropped, and so are the edges out of a
node that no edge reaches (the benchmark feeds them zeros); cells whose output node is
unreachable are drawn again (the benchmark's output would be all zeros); edges that cannot reach
the output node are dropped too.

Variant: the cell (uniform over the 5 ops per edge), each stage's width scaled, and *N drawn
from 1..5* (the benchmark fixes N = 5) to vary the depth and keep the model count cheap.
"""

from ._common import Family, width

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = [(i, j) for j in range(1, 4) for i in range(j)]  # (from, to) in the benchmark's order


def draw_cell(rng):
    """{(i, j): op} of the live, non-none edges of a cell whose node 3 is reachable."""
    while True:
        ops = {e: OPS[int(rng.integers(len(OPS)))] for e in EDGES}
        live, edges = {0}, {}
        for i, j in EDGES:  # sorted by j, so node i is settled before its edges are read
            if i in live and ops[i, j] != "none":
                live.add(j)
                edges[i, j] = ops[i, j]
        if 3 not in live:
            continue
        useful = {3}  # drop edges whose result never reaches node 3 (dead code)
        for i, j in reversed(EDGES):
            if (i, j) in edges and j in useful:
                useful.add(i)
        return {(i, j): op for (i, j), op in edges.items() if j in useful}


def _edge(b, x, op, cout):
    if op == "skip_connect":
        return x
    if op == "avg_pool_3x3":
        return b.avgpool(x, 3, 1, pad=1, name="avgpool")
    k = 1 if op == "nor_conv_1x1" else 3
    return b.bn(b.conv(b.relu(x, name="relu"), cout, k, bias=False, name="conv"), name="bn")


def _cell(b, x, edges):
    c, nodes = b.shape(x)[1], {0: x}
    for j in range(1, 4):
        ins = []
        for (i, jj), op in edges.items():
            if jj == j:
                with b.scope(f"edge{i}{j}"):
                    ins.append(_edge(b, nodes[i], op, c))
        if ins:
            total = ins[0]
            for n, y in enumerate(ins[1:], 1):
                total = b.add(total, y, name=f"node{j}.add{n}")
            nodes[j] = total
    return nodes[3]


def _reduction(b, x, cout):
    y = b.bn(b.conv(b.relu(x, name="relu_a"), cout, 3, 2, bias=False, name="conv_a"),
             name="bn_a")
    y = b.bn(b.conv(b.relu(y, name="relu_b"), cout, 3, bias=False, name="conv_b"), name="bn_b")
    if min(b.shape(x)[2:]) >= 2:  # ceil mode matches the padded 3x3/2 conv on odd sizes
        x = b.avgpool(x, 2, 2, ceil_mode=True, name="shortcut.pool")
    return b.add(b.conv(x, cout, 1, bias=False, name="shortcut.conv"), y, name="add")


def nasbench201(b, rng, x):
    edges, cells = draw_cell(rng), int(rng.integers(1, 6))
    widths = [width(rng, c) for c in (16, 32, 64)]
    with b.scope("stem"):
        x = b.bn(b.conv(x, widths[0], 3, bias=False, name="conv"), name="bn")
    for s, c in enumerate(widths, 1):
        if s > 1:
            with b.scope(f"reduction{s - 1}"):
                x = _reduction(b, x, c)
        for i in range(1, cells + 1):
            with b.scope(f"stage{s}.cell{i}"):
                x = _cell(b, x, edges)
    with b.scope("head"):
        x = b.relu(b.bn(x, name="bn"), name="relu")
    with b.scope("classifier"):
        x = b.flatten(b.global_avgpool(x, name="gap"), name="flatten")
        return b.fc(x, 10, name="fc")


FAMILIES = (Family("nasbench201", nasbench201, 32, classes=10),)
