"""Split a :class:`~nnmeter_tvm.graph.Graph` into the kernels a backend runs, driven by its rules.

One algorithm for every backend; only the rules file (``rules/<backend>.json``) differs.

Nodes are visited in topological order and grouped with a union-find.  For each node ``v`` the
edges from its producers ``u`` are decided:

- ``u`` feeds only ``v`` (and is no graph output): the *chain* rule ``(lead, u, v)`` decides when
  ``u``'s group is led by another op (its anchor, or its first node), else the *pair* rule
  ``(u, v)``.  No rule: separate.
- ``u`` feeds several consumers: only a *multi_output* rule fuses across that tensor (a
  ``diamond`` when ``v`` also reads ``u``'s other consumer, else a ``fork``); none: separate.
- ``v`` has several fusable producers: the *multi_input* rule says which of them join ``v``
  (no rule: the first).  With a layout model, producers that stay plain come first, in graph
  order (onnxruntime fuses them before its layout pass), then blocked ones in input order.

A rule's ``requires`` conditions (``blocked``, ``plain``, ``compatible``: SCHEMA.md) are checked
against the layout model; ``const_operand`` against the consumer's folded constants.  A merge
that would make the kernel graph cyclic is refused.  With a layout model (onnxruntime's NCHWc)
the partition also places the reorder kernels the backend inserts: one to-blocked reorder per
plain tensor read by a blocked ``starts`` op, one from-blocked reorder per blocked tensor read by
a plain kernel or returned by the graph.
Rewrites run first (``cse``: of identical weightless ops on one tensor only one runs);
the ops they remove, and lone ops with a ``view`` rule, become kernels with
``attrs["view"] = True`` (no work), so every node is still in exactly one kernel.

What it does not model: fusions across more than one multi-consumer tensor at once, and
rewrites that change the ops themselves (e.g. a Transpose folded into a MatMul is a pair rule,
but the kernel keeps both nodes).

This module is the specification and the readable reference.  :func:`partition` runs its C++
port (``cpp_ext/partition.cpp`` through :mod:`.native`: the fast path, no Python fallback);
:func:`partition_with_decisions` and ``_Partitioner`` (explanations, the rule tester) run the
Python below.  ``tests/test_partition_cpp.py`` checks that both give the same kernels: change
them together.
"""
from __future__ import annotations

from typing import NamedTuple

from ..graph import Graph, Node, _jsonable
from ..ops import category
from .kernel import Kernel, reorder_kernel

ANCHOR_CATEGORIES = ("compute",)


UNTESTED = "default:untested_"  # the rule of an edge no rule covers: + "<op1>_<op2>"


class Decision(NamedTuple):
    """Why an edge ``producer -> consumer`` is inside one kernel or crosses two (a named tuple:
    one is made for every edge)."""

    producer: str
    consumer: str
    fused: bool
    rule: str          # the rule that decided, or "default:<why>"
    reason: str = ""


def kernel_type(ops) -> str:
    """The kernel type name: its member ops in order, joined by ``-`` (``conv-bn-relu``)."""
    return "-".join(ops)


def anchor_of(nodes: list[Node]) -> Node:
    """The member that defines a kernel's cost: its first compute op, else its first node."""
    for n in nodes:
        if category(n.op) in ANCHOR_CATEGORIES:
            return n
    return nodes[0]


def partition(graph: Graph, rules) -> list[Kernel]:
    """The kernels of ``graph`` under ``rules`` (a :class:`nnmeter_tvm.rules.Rules` or a path):
    ``partition_with_decisions(graph, rules)[0]``, computed by the C++ port."""
    from nnmeter_tvm.rules import load

    from .native import partition as native_partition

    return native_partition(graph, load(rules))


def partition_with_decisions(graph: Graph, rules) -> tuple[list[Kernel], list[Decision]]:
    """Like :func:`partition`, plus the decision taken on every edge between two nodes."""
    from nnmeter_tvm.rules import load

    rules = load(rules)
    dups: dict[str, str] = {}
    work = graph
    cse = rules.rewrites_named("cse")
    if cse is not None:
        work, dups = eliminate_common_subexpressions(graph, cse.get("keep", "first"))
    p = _Partitioner(work, rules)
    kernels = p.run()
    for dup, kept in dups.items():
        node = graph.node(dup)
        kernels.append(Kernel(name=dup, type=node.op, nodes=(dup,), anchor=dup, ops=(node.op,),
                              rule="cse", attrs={"view": True, "duplicate_of": kept,
                                                 "rules": ["cse"]}))
    return kernels, p.decisions


def adjacency(graph: Graph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``{node: producers}`` and ``{node: consumers}``, each list as ``Graph.predecessors`` /
    ``Graph.successors`` gives it, built in one pass: the partition asks for them many times."""
    producer, readers = {}, {}
    for n in graph.nodes:
        for t in n.outputs:
            producer[t] = n.name
        for t in n.inputs:
            readers.setdefault(t, []).append(n.name)
    preds, succs = {}, {}
    for n in graph.nodes:
        ps = [producer[t] for t in n.inputs if t in producer]
        preds[n.name] = ps if len(ps) < 2 else list(dict.fromkeys(ps))
        cs = [c for t in n.outputs for c in readers.get(t, ())]
        succs[n.name] = cs if len(cs) < 2 else list(dict.fromkeys(cs))
    return preds, succs


def reverse_dfs_order(graph: Graph) -> list[Node]:
    """Nodes in onnxruntime's topological order (``Graph::PerformTopologicalSortAndCheckIsAcyclic``):
    nodes reading no other node first, in graph order; then a depth-first walk up from the
    leaves (last leaf first), each node after its producers, producers pushed in graph order so
    the last one is visited first."""
    nodes = list(graph.nodes)
    idx = {n.name: i for i, n in enumerate(nodes)}
    pred_names, succ_names = adjacency(graph)
    preds = [sorted({idx[p] for p in pred_names[n.name]}) for n in nodes]
    order, added, seen = [], set(), set()
    for i in range(len(nodes)):
        if not preds[i]:
            order.append(i)
            added.add(i)
            seen.add(i)
    stack = [i for i, n in enumerate(nodes) if not succ_names[n.name]]
    while stack:
        cur = stack.pop()
        if cur in added:
            continue
        if cur in seen:
            order.append(cur)
            added.add(cur)
            continue
        seen.add(cur)
        stack.append(cur)
        stack.extend(p for p in preds[cur] if p not in seen)
    return [nodes[i] for i in order]


def eliminate_common_subexpressions(graph: Graph, keep: str = "first") -> tuple[Graph, dict[str, str]]:
    """The graph without nodes that repeat another node (same op, same attributes, same
    inputs, no weights), and {removed: kept}.  Of each set of repeats the one first in
    onnxruntime's topological order is kept (``keep="first"``; :func:`reverse_dfs_order`), or
    the last in graph order (``keep="last"``); the readers of the others read it."""
    import heapq

    outputs = {t.name for t in graph.outputs}
    if not _may_repeat(graph, outputs):
        return graph, {}
    canon: dict[str, str] = {}       # tensor -> canonical tensor (after merging repeats)
    groups: dict = {}
    walk = reverse_dfs_order(graph) if keep == "first" else list(graph.nodes)
    for n in walk:
        inputs = tuple(canon.get(t, t) for t in n.inputs)
        if n.attrs.get("const_inputs") or outputs & set(n.outputs):
            continue
        key = (n.op, n.source_op, inputs, cse_attrs_key(n.attrs), n.output_shapes)
        groups.setdefault(key, []).append(n)
        first = groups[key][0]
        canon.update(zip(n.outputs, first.outputs))
    dups: dict[str, str] = {}
    rename: dict[str, str] = {}
    for members in groups.values():
        kept = members[0] if keep == "first" else members[-1]
        for n in members:
            if n is not kept:
                dups[n.name] = kept.name
                rename.update(zip(n.outputs, kept.outputs))
    if not dups:
        return graph, {}
    nodes = []
    for n in graph.nodes:
        if n.name in dups:
            continue
        inputs = tuple(rename.get(t, t) for t in n.inputs)
        nodes.append(Node(n.name, n.op, n.source_op, inputs, n.outputs, n.input_shapes,
                          n.output_shapes, n.dtype, n.attrs) if inputs != n.inputs else n)
    # the kept node may come after readers of a removed one: sort again (stable)
    producer = {t: i for i, n in enumerate(nodes) for t in n.outputs}
    deps = [{producer[t] for t in n.inputs if t in producer} for n in nodes]
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    waiting = [len(ds) for ds in deps]
    heap = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        i = heapq.heappop(heap)
        order.append(nodes[i])
        for u in users.get(i, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, u)
    return Graph(graph.name, tuple(order), graph.inputs, graph.outputs), dups


def cse_attrs_key(attrs: dict) -> str:
    """A node's attributes as one comparable string, for the CSE key."""
    return repr(_jsonable(attrs))


def _may_repeat(graph: Graph, outputs: set[str]) -> bool:
    """Whether two weightless nodes share op, inputs and output shapes.  Without such a pair
    no node repeats another (merging starts from such a pair), so most graphs skip the walk."""
    seen = set()
    for n in graph.nodes:
        if n.attrs.get("const_inputs") or not outputs.isdisjoint(n.outputs):
            continue
        key = (n.op, n.source_op, n.inputs, n.output_shapes)
        if key in seen:
            return True
        seen.add(key)
    return False


class _Partitioner:
    def __init__(self, graph: Graph, rules):
        self.g = graph
        self.rules = rules
        self.layout = rules.layout
        self.node = {n.name: n for n in graph.nodes}
        self.order = {n.name: i for i, n in enumerate(graph.nodes)}
        self.preds, self.succs = adjacency(graph)
        self.graph_outputs = {t.name for t in graph.outputs}
        self.single = {n.name: len(self.succs[n.name]) == 1
                       and self.graph_outputs.isdisjoint(n.outputs) for n in graph.nodes}
        self.parent = {n.name: n.name for n in graph.nodes}
        self.members = {n.name: [n.name] for n in graph.nodes}
        self.leads = {n.name: n for n in graph.nodes}   # group root -> anchor_of(its members)
        self.rules_used = {n.name: [] for n in graph.nodes}
        self.blocked: dict[str, bool] = {t.name: False for t in graph.inputs}
        self.decided: dict[tuple[str, str], Decision] = {}  # (producer, consumer) -> decision
        self._single: dict[tuple, tuple] = {}  # (lead op or None, u op, v op) -> (rule, fused, case)
        self._cases: dict[str, str] = {}       # rule name -> its case label

    @property
    def decisions(self) -> list[Decision]:
        return list(self.decided.values())

    # ---- union-find ---------------------------------------------------------------------
    def find(self, x: str) -> str:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def group(self, x: str) -> list[str]:
        return self.members[self.find(x)]

    def merge(self, a: str, b: str, rule: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self._creates_cycle(ra, rb):
            return False
        keep, drop = (ra, rb) if self.order[ra] <= self.order[rb] else (rb, ra)
        self.parent[drop] = keep
        members = sorted(self.members[keep] + self.members.pop(drop), key=self.order.__getitem__)
        self.members[keep] = members
        self.leads[keep] = self._joint_lead(self.leads[keep], self.leads.pop(drop), members[0])
        self.rules_used[keep] += self.rules_used.pop(drop) + [rule]
        return True

    def _joint_lead(self, a: Node, b: Node, first: str) -> Node:
        """``anchor_of`` the union of two groups led by a and b, whose first member is first:
        the earlier of their compute anchors, else the first member."""
        a_leads = category(a.op) in ANCHOR_CATEGORIES
        b_leads = category(b.op) in ANCHOR_CATEGORIES
        if a_leads and b_leads:
            return a if self.order[a.name] < self.order[b.name] else b
        return a if a_leads else b if b_leads else self.node[first]

    def _creates_cycle(self, ra: str, rb: str) -> bool:
        """Whether a path leaves group ra or rb and comes back into their union."""
        order, succs = self.order, self.succs
        union = set(self.members[ra]).union(self.members[rb])
        limit = max(order[self.members[ra][-1]], order[self.members[rb][-1]])
        stack = [s for n in union for s in succs[n] if s not in union and order[s] <= limit]
        seen = set()
        while stack:
            n = stack.pop()
            if n in seen or order[n] > limit:
                continue
            seen.add(n)
            for s in succs[n]:
                if s in union:
                    return True
                stack.append(s)
        return False

    # ---- helpers ------------------------------------------------------------------------
    def consumers_of(self, node: Node) -> list[str]:
        return self.succs[node.name]

    def single_consumer(self, u: Node) -> bool:
        """Whether u's output is read by one node only (and is no graph output)."""
        return self.single[u.name]

    def lead(self, name: str) -> Node:
        return self.leads[self.find(name)]

    def inputs_blocked(self, v: Node) -> bool:
        return bool(v.inputs) and all(self.blocked.get(t, False) for t in v.inputs)

    def case(self, rule) -> str:
        """``rule.case``, formatted once per rule."""
        text = self._cases.get(rule.name)
        if text is None:
            text = self._cases[rule.name] = rule.case
        return text

    def conditions_hold(self, rule, u: Node, v: Node) -> tuple[bool, str]:
        """A rule's ``requires`` for the edge u -> v (SCHEMA.md, "Conditions")."""
        if not rule.requires:
            return True, ""
        blocked = self.inputs_blocked(v)
        for cond in rule.requires:
            if cond == "blocked" and not blocked:
                return False, "its inputs are not in the blocked layout"
            if cond == "plain" and any(self.blocked.get(t, False) for t in v.inputs):
                return False, "its inputs are in the blocked layout"
            if cond == "compatible" and self.blocked.get(u.outputs[0], False) and not blocked:
                return False, "a blocked producer, but not all of the consumer's inputs are blocked"
            if cond == "const_operand" and not v.attrs.get("const_inputs"):
                return False, "the consumer reads no constant"
        return True, ""

    def decide_single(self, u: Node, v: Node) -> Decision:
        """The edge u -> v where u's output is read by v alone."""
        lead = self.lead(u.name)
        key = (lead.op if lead.name != u.name else None, u.op, v.op)
        found = self._single.get(key)
        if found is None:
            found = self._single[key] = self.single_rule(*key)
        rule, fused, case = found
        if rule is None:
            return Decision(u.name, v.name, False, f"{UNTESTED}{u.op}_{v.op}",
                            "no rule for this pair; kept apart")
        if fused:
            ok, why = self.conditions_hold(rule, u, v)
            if not ok:
                return Decision(u.name, v.name, False, rule.name, f"condition failed: {why}")
        return Decision(u.name, v.name, fused, rule.name, case)

    def single_rule(self, lead_op: str | None, u_op: str, v_op: str) -> tuple:
        """(rule, fused, case) for u -> v when u's group is led by another op (``lead_op``;
        None when u leads it): the chain rule if there is one, else the pair rule, else None.
        Few op triples recur in a graph, so ``decide_single`` keeps the answers."""
        rule = self.rules.chain(lead_op, u_op, v_op) if lead_op is not None else None
        if rule is not None:
            return rule, rule.together(1, 2), rule.case
        rule = self.rules.pair(u_op, v_op)
        if rule is None:
            return None, False, ""
        return rule, rule.fused, rule.case

    def decide_multi_output(self, u: Node, v: Node) -> Decision:
        """The edge u -> v where u's output has other readers too."""
        preds, succs = self.preds, self.succs
        cons = [c for c in succs[u.name] if c != v.name]
        if len(cons) != 1 or not self.graph_outputs.isdisjoint(u.outputs):
            return Decision(u.name, v.name, False, "default:multi_output",
                            f"{u.op} feeds {len(cons) + 1} consumers; no rule fuses across it")
        w = self.node[cons[0]]
        # diamond: one consumer b reads only u and feeds only c, c reads u and b
        for b, c, vrole in ((w, v, 2), (v, w, 1)):
            if (preds[b.name] == [u.name] and succs[b.name] == [c.name]
                    and set(preds[c.name]) >= {u.name, b.name}):
                rule = self.rules.multi_output(u.op, b.op, c.op, "diamond")
                if rule is not None:
                    return Decision(u.name, v.name, rule.together(0, vrole), rule.name,
                                    self.case(rule))
                break
        else:
            first, second = succs[u.name]
            role = 1 if v.name == first else 2
            f, s = self.node[first], self.node[second]
            for ops, vrole in (((u.op, f.op, s.op), role), ((u.op, s.op, f.op), 3 - role)):
                rule = self.rules.multi_output(*ops, "fork")
                if rule is not None:
                    return Decision(u.name, v.name, rule.together(0, vrole), rule.name,
                                    self.case(rule))
        return Decision(u.name, v.name, False, f"default:multi_output_{u.op}",
                        f"{u.op} feeds two consumers; no multi_output rule")

    def diamond_inner(self, b: Node, c: Node) -> Decision | None:
        """The edge b -> c inside a diamond u -> b -> c <- u: its multi_output rule decides."""
        preds = self.preds[b.name]
        if len(preds) != 1 or self.succs[b.name] != [c.name]:
            return None
        u = self.node[preds[0]]
        if u.name not in self.preds[c.name] or len(self.succs[u.name]) != 2:
            return None
        rule = self.rules.multi_output(u.op, b.op, c.op, "diamond")
        if rule is None:
            return None
        return Decision(b.name, c.name, rule.together(1, 2), rule.name, self.case(rule))

    # ---- the pass -----------------------------------------------------------------------
    def run(self) -> list[Kernel]:
        for v in self.g.nodes:
            self.visit(v)
        return self.kernels()

    def visit(self, v: Node):
        candidates = []
        for pname in self.preds[v.name]:
            u = self.node[pname]
            if self.single[pname]:
                d = self.diamond_inner(u, v)
                if d is None:
                    d = self.decide_single(u, v)
            else:
                d = self.decide_multi_output(u, v)
            self.decided[pname, v.name] = d
            if d.fused:
                candidates.append((u, d))
        chosen = candidates
        if len(candidates) >= 2:
            chosen = self.choose_inputs(candidates, v)
        fused_layout = None
        for u, d in chosen:
            if self.merge(u.name, v.name, d.rule):
                fused_layout = self.blocked.get(u.outputs[0], False) if fused_layout is None \
                    else fused_layout
            else:
                self._refuse(u, v, "merging would make the kernel graph cyclic")
        for u, d in candidates:
            if (u, d) not in chosen:
                self._refuse(u, v, "another producer took the consumer (multi_input rule)")
        self.set_layout(v, fused_layout)

    def _refuse(self, u: Node, v: Node, why: str):
        d = self.decided[u.name, v.name]
        self.decided[u.name, v.name] = Decision(u.name, v.name, False, d.rule, why)

    def choose_inputs(self, candidates, v: Node):
        if self.layout is not None:
            # the layout model: plain producers take a consumer first (graph order, before the
            # layout pass), blocked ones after (input order)
            blocked = lambda u: self.blocked.get(u.outputs[0], False)  # noqa: E731
            plain = sorted((c for c in candidates if not blocked(c[0])),
                           key=lambda c: self.order[self.lead(c[0].name).name])
            candidates = plain + [c for c in candidates if blocked(c[0])]
        a, b = candidates[0][0], candidates[1][0]
        rule = self.rules.multi_input(self.lead(a.name).op, self.lead(b.name).op, v.op) or \
            self.rules.multi_input(a.op, b.op, v.op)
        if rule is None:
            return candidates[:1]
        first, second = rule.together(0, 2), rule.together(1, 2)
        if first and second:
            return candidates
        if first:
            return candidates[:1]
        if second:
            return candidates[1:2]
        return []

    # ---- layout -------------------------------------------------------------------------
    def set_layout(self, v: Node, fused_layout: bool | None):
        if self.layout is None:
            return
        if v.op in self.layout.starts:
            state = self.starts(v)
        elif fused_layout is not None:
            state = fused_layout
        else:
            state = self.follows(v)
        for t in v.outputs:
            self.blocked[t] = state

    def _channels(self, shape) -> int | None:
        return shape[1] if len(shape) == 4 else None

    def starts(self, v: Node) -> bool:
        conds = self.layout.starts.get(v.op)
        if conds is None or not v.input_shapes:
            return False
        return self._eligible(v, conds, self._channels(v.input_shapes[0]))

    def follows(self, v: Node) -> bool:
        conds = self.layout.follows.get(v.op)
        if conds is None or not self.inputs_blocked(v):
            return False
        binary = v.op in ("add", "sub", "mul", "div", "pow")
        if binary and v.attrs.get("const_inputs") and not conds.get("const_operand", False):
            return False            # a constant operand (weights of bn, conv... are fine)
        if conds.get("same_shape") and len(set(v.input_shapes)) > 1:
            return False
        if v.op == "concat" and v.attrs.get("axis") not in (1, -3):
            return False
        for shape in v.input_shapes:
            if not self._eligible(v, conds, self._channels(shape)):
                return False
        return True

    def _eligible(self, v: Node, conds: dict, channels: int | None) -> bool:
        if channels is None:
            return False
        if "plain_below" in conds and channels < conds["plain_below"]:
            return True
        if "multiple" in conds and channels % conds["multiple"]:
            return False
        if "group_multiple" in conds:
            groups = v.attrs.get("group", 1)
            cout = v.attrs.get("cout", channels)
            m = conds["group_multiple"]
            if (channels // groups) % m or (cout // groups) % m:
                return False
        return True

    def reads_plain_directly(self, v: Node) -> bool:
        conds = self.layout.starts.get(v.op, {})
        ch = self._channels(v.input_shapes[0]) if v.input_shapes else None
        return ch is not None and "plain_below" in conds and ch < conds["plain_below"]

    # ---- output -------------------------------------------------------------------------
    def kernels(self) -> list[Kernel]:
        roots = self.kernel_order()
        kernels: list[Kernel] = []
        reordered_in: set[str] = set()
        group_of = {m: r for r in roots for m in self.members[r]}
        for r in roots:
            names = self.members[r]
            nodes = [self.node[n] for n in names]
            anchor = self.leads[r]
            ops = tuple(n.op for n in nodes)
            used = [x for x in self.rules_used.get(r, []) if x]
            blocked = self.layout is not None and all(
                self.blocked.get(t, False) for t in nodes[-1].outputs)
            if self.layout is not None:
                kernels += self._reorders_in(nodes, names, reordered_in)
            attrs = {"rules": used}
            view = self.rules.view(ops[0]) if len(ops) == 1 else None
            if view is not None and not self.graph_outputs.isdisjoint(nodes[0].outputs):
                view = None     # a view cannot be a graph output: the backend copies it
            if view is not None:
                attrs["view"] = True
                used.append(view.name)
            if self.layout is not None:
                attrs["layout"] = self.layout.name if blocked else "plain"
                if blocked:
                    attrs["block"] = self.layout.block
            kernels.append(Kernel(name=_kernel_name(names), type=kernel_type(ops),
                                  nodes=tuple(names), anchor=anchor.name, ops=ops,
                                  rule=used[-1] if used else None, attrs=attrs))
            if self.layout is not None:
                kernels += self._reorders_out(nodes, set(names), group_of)
        return kernels

    def kernel_order(self) -> list[str]:
        """Group roots in a topological order of the kernel graph (ties: earliest member first)."""
        import heapq

        root_of = {n: self.find(n) for n in self.order}
        deps = {r: set() for r in root_of.values()}
        for n, rn in root_of.items():
            for p in self.preds[n]:
                rp = root_of[p]
                if rp != rn:
                    deps[rn].add(rp)
        users = {r: [] for r in deps}
        for r, ds in deps.items():
            for d in ds:
                users[d].append(r)
        waiting = {r: len(ds) for r, ds in deps.items()}
        heap = [(self.order[r], r) for r, k in waiting.items() if k == 0]
        heapq.heapify(heap)
        out = []
        while heap:
            _, r = heapq.heappop(heap)
            out.append(r)
            for u in users[r]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(heap, (self.order[u], u))
        assert len(out) == len(deps), "kernel graph has a cycle"
        return out

    def _reorders_in(self, nodes, names, done: set[str]) -> list[Kernel]:
        """To-blocked reorders of the plain tensors read (up to) the group's blocked start op."""
        start = next((i for i, n in enumerate(nodes) if n.op in self.layout.starts), None)
        if start is None:
            return []
        s = nodes[start]
        if not self.blocked.get(s.outputs[0], False) or self.reads_plain_directly(s):
            return []
        out = []
        for n in nodes[:start + 1]:
            for t, shape in zip(n.inputs, n.input_shapes):
                if self.g.producer(t) in names or self.blocked.get(t, False) or t in done:
                    continue
                done.add(t)
                out.append(self._reorder(t, shape, "to_blocked"))
        return out

    def _reorders_out(self, nodes, names: set[str], group_of) -> list[Kernel]:
        out = []
        for n in nodes:
            for t, shape in zip(n.outputs, n.output_shapes):
                if not self.blocked.get(t, False):
                    continue
                readers = [c for c in self.g.consumers(t) if c not in names]
                plain = [c for c in readers if not self._reads_blocked(self.node[c], t)]
                if plain or t in self.graph_outputs:
                    out.append(self._reorder(t, shape, "from_blocked"))
        return out

    def _reads_blocked(self, c: Node, t: str) -> bool:
        """Whether consumer c reads blocked tensor t as is (no reorder back): it runs blocked
        and is not a conv that reads its (narrow) input in the plain layout."""
        if c.op in self.layout.starts and self.reads_plain_directly(c):
            return False
        return all(self.blocked.get(o, False) for o in c.outputs)

    def _reorder(self, tensor: str, shape, direction: str) -> Kernel:
        return reorder_kernel(tensor, shape, direction, self.layout.block,
                              rule=f"layout_{self.layout.name}")


def _kernel_name(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
