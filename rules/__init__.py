"""Fusion rules: which ops a backend runs as one kernel, detected by timing test cases.

A rules file (``rules/<backend>.json``, schema in ``rules/SCHEMA.md``) is data: every rule names
the pattern it decides (``conv_bn_relu``), the winning *case* (how the pattern's ops group into
kernels), the conditions under which it holds, its origin (timing or observation; backend,
version, date) and its evidence.  This module loads and validates such a file into
:class:`Rules`, the read-only object :func:`nnmeter_tvm.kernels.partition` queries, and writes
one back (:func:`dump`).  Every problem is a :class:`~nnmeter_tvm.errors.RulesError` whose
message names the file and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nnmeter_tvm.errors import RulesError

SCHEMA = "nnmeter-tvm/rules"
SCHEMA_VERSION = 1
KINDS = ("pair", "chain", "multi_output", "multi_input", "view")
TOPOLOGIES = ("fork", "diamond")
# conditions a rule may require (see SCHEMA.md, "Conditions")
CONDITIONS = ("blocked", "plain", "compatible", "const_operand")
ORIGINS = ("timing", "observed")
# graph rewrites a backend applies before it runs anything (see SCHEMA.md, "Rewrites")
REWRITES = ("cse",)
# conditions of an op in the layout model (see SCHEMA.md, "Layout")
LAYOUT_CONDITIONS = ("multiple", "plain_below", "group_multiple", "same_shape", "perm",
                     "const_operand")
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Rule:
    """One detected rule.

    ``ops``: the pattern's ops by role (pair ``a -> b``; chain ``a -> b -> c``; multi_output
    ``a -> b, a -> c`` (``diamond``: ``c`` also reads ``b``); multi_input ``a -> c <- b``;
    view ``a``: runs as no kernel when not fused).
    ``groups``: the winning case, a partition of the role indexes into kernels, e.g.
    ``((0,), (1, 2))`` for ``conv | bn+relu``.  ``requires``: conditions (SCHEMA.md).
    """

    name: str
    kind: str
    ops: tuple[str, ...]
    groups: tuple[tuple[int, ...], ...]
    requires: tuple[str, ...] = ()
    topology: str | None = None
    origin: dict = field(default_factory=dict)
    evidence: tuple = ()
    note: str = ""

    @property
    def case(self) -> str:
        """The winning case as text: kernels separated by `` | ``, members joined by ``+``."""
        return case_label(self.ops, self.groups)

    def together(self, i: int, j: int) -> bool:
        """Whether roles ``i`` and ``j`` run in the same kernel in the winning case."""
        return any(i in g and j in g for g in self.groups)

    @property
    def fused(self) -> bool:
        """For a pair: its two ops run as one kernel."""
        return self.together(0, 1)


def case_label(ops, groups) -> str:
    return " | ".join("+".join(ops[i] for i in g) for g in groups)


@dataclass(frozen=True)
class Layout:
    """A blocked activation layout the backend switches to on its own (onnxruntime's NCHWc).

    ``block``: channels per block.  ``starts``: ops that convert a plain input to the blocked
    layout (a reorder-to-blocked kernel is inserted before them); ``follows``: ops that stay
    blocked when all their activation inputs are blocked; ``absorbs``: ops that, reading a
    blocked tensor, become the reorder back themselves.  Each maps an op to its conditions
    (``multiple``, ``plain_below``, ``group_multiple``, ``same_shape``, ``perm``; SCHEMA.md).
    """

    name: str
    block: int
    starts: dict
    follows: dict
    absorbs: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    evidence: tuple = ()


@dataclass(frozen=True, eq=False)
class Rules:
    """A loaded rules file; ``pair``/``chain``/``multi_output``/``multi_input`` look rules up."""

    backend: dict
    machine: dict
    alpha: float
    date: str
    rules: tuple[Rule, ...]
    layout: Layout | None = None
    detection: dict = field(default_factory=dict)
    rewrites: tuple = ()
    source: str = "<memory>"
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for r in self.rules:
            key = (r.kind, r.topology, r.ops)
            self._index.setdefault(key, r)

    @property
    def backend_name(self) -> str:
        return self.backend.get("name", "?")

    def rewrites_named(self, name: str) -> dict | None:
        return next((r for r in self.rewrites if r.get("name") == name), None)

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def pair(self, a: str, b: str) -> Rule | None:
        return self._index.get(("pair", None, (a, b)))

    def chain(self, a: str, b: str, c: str) -> Rule | None:
        return self._index.get(("chain", None, (a, b, c)))

    def multi_output(self, a: str, b: str, c: str, topology: str) -> Rule | None:
        """The rule for ``a`` feeding ``b`` and ``c`` (roles of ``b``/``c`` as given)."""
        return self._index.get(("multi_output", topology, (a, b, c)))

    def view(self, op: str) -> Rule | None:
        """The rule saying ``op`` runs as no kernel when it is not fused, if any."""
        return self._index.get(("view", None, (op,)))

    def multi_input(self, a: str, b: str, c: str) -> Rule | None:
        """The rule for producers ``a`` (input 0) and ``b`` (input 1) into ``c``."""
        return self._index.get(("multi_input", None, (a, b, c)))

    def to_dict(self) -> dict:
        out = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "backend": dict(self.backend),
            "machine": dict(self.machine),
            "alpha": self.alpha,
            "date": self.date,
            "detection": dict(self.detection),
            "rules": [_rule_dict(r) for r in self.rules],
            "rewrites": [dict(r) for r in self.rewrites],
            "layout": None if self.layout is None else {
                "name": self.layout.name, "block": self.layout.block,
                "starts": dict(self.layout.starts), "follows": dict(self.layout.follows),
                "absorbs": dict(self.layout.absorbs), "origin": dict(self.layout.origin),
                "evidence": list(self.layout.evidence)},
        }
        return out


def _rule_dict(r: Rule) -> dict:
    d = {"name": r.name, "kind": r.kind, "ops": list(r.ops)}
    if r.topology:
        d["topology"] = r.topology
    d.update({"case": r.case, "groups": [list(g) for g in r.groups],
              "requires": list(r.requires), "origin": dict(r.origin)})
    if r.note:
        d["note"] = r.note
    d["evidence"] = list(r.evidence)
    return d


# ---- loading and validation ---------------------------------------------------------------------

def path_for(backend: str) -> Path:
    """The shipped rules file of ``backend`` (``rules/<backend>.json``)."""
    return _HERE / f"{backend}.json"


def check_backend(rules: Rules, backend: str, source) -> Rules:
    """``rules`` when they were detected on ``backend``; else a RulesError naming both (another
    backend's rules form its kernels, which would be priced silently wrong)."""
    found = (rules.backend or {}).get("name")
    if found and found != backend:
        raise RulesError(f"{source}: rules detected on backend {found!r}, not {backend!r}; give "
                         f"rules of {backend} (rules/{backend}.json, or `nnmeter-tvm "
                         f"detect-rules --backend {backend}`)")
    return rules


def load(source) -> Rules:
    """Load and validate a rules file: a path, a backend name with a shipped file, or a dict."""
    if isinstance(source, Rules):
        return source
    if isinstance(source, dict):
        return from_dict(source, "<dict>")
    path = Path(source)
    if not path.suffix and not path.exists() and path_for(str(source)).exists():
        path = path_for(str(source))
    if not path.is_file():
        shipped = sorted(p.stem for p in _HERE.glob("*.json"))
        raise RulesError(f"{path}: no such rules file; give a path or one of the shipped backends "
                         f"({', '.join(shipped) or 'none'})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RulesError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return from_dict(data, str(path))


def from_dict(data: dict, source: str = "<dict>") -> Rules:
    """Validate the JSON form (see SCHEMA.md) and build :class:`Rules`."""
    v = _Validator(source)
    v.check(isinstance(data, dict), "", "a JSON object", type(data).__name__)
    v.check(data.get("schema") == SCHEMA, "schema", repr(SCHEMA), repr(data.get("schema")))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RulesError(f"{source}: field 'schema_version' is {version!r}, this nnmeter-tvm reads "
                         f"version {SCHEMA_VERSION}; re-run `nnmeter-tvm detect-rules`")
    backend = v.field(data, "backend", dict)
    v.field(backend, "name", str, "backend.name")
    v.field(backend, "version", str, "backend.version")
    machine = v.field(data, "machine", dict)
    alpha = v.field(data, "alpha", (int, float))
    v.check(alpha > 0, "alpha", "a positive number", repr(alpha))
    date = v.field(data, "date", str)
    rules_raw = v.field(data, "rules", list)
    rules, names = [], set()
    for i, raw in enumerate(rules_raw):
        rule = _rule(v, raw, f"rules[{i}]")
        if rule.name in names:
            raise RulesError(f"{source}: field 'rules[{i}].name': duplicate rule name {rule.name!r}")
        names.add(rule.name)
        rules.append(rule)
    layout = None
    if data.get("layout") is not None:
        layout = _layout(v, data["layout"])
    detection = data.get("detection") or {}
    v.check(isinstance(detection, dict), "detection", "an object", type(detection).__name__)
    rewrites = data.get("rewrites") or []
    v.check(isinstance(rewrites, list), "rewrites", "a list", type(rewrites).__name__)
    for i, rw in enumerate(rewrites):
        v.check(isinstance(rw, dict) and rw.get("name") in REWRITES, f"rewrites[{i}].name",
                f"one of {', '.join(REWRITES)}", repr(rw.get("name") if isinstance(rw, dict) else rw))
        v.field(rw, "origin", dict, f"rewrites[{i}].origin")
    return Rules(backend=backend, machine=machine, alpha=float(alpha), date=date,
                 rules=tuple(rules), layout=layout, detection=detection,
                 rewrites=tuple(rewrites), source=source)


def _rule(v: "_Validator", raw, where: str) -> Rule:
    v.check(isinstance(raw, dict), where, "an object", type(raw).__name__)
    name = v.field(raw, "name", str, f"{where}.name")
    v.check(name and not name.startswith("rule_"), f"{where}.name",
            "a name that says the pattern, e.g. 'conv_bn_relu'", repr(name))
    kind = v.field(raw, "kind", str, f"{where}.kind")
    v.check(kind in KINDS, f"{where}.kind", f"one of {', '.join(KINDS)}", repr(kind))
    ops = v.field(raw, "ops", list, f"{where}.ops")
    n = {"pair": 2, "view": 1}.get(kind, 3)
    v.check(len(ops) == n and all(isinstance(o, str) and o for o in ops), f"{where}.ops",
            f"{n} op names", repr(ops))
    topology = raw.get("topology")
    if kind == "multi_output":
        v.check(topology in TOPOLOGIES, f"{where}.topology", f"one of {', '.join(TOPOLOGIES)}",
                repr(topology))
    else:
        v.check(topology is None, f"{where}.topology", "absent (only multi_output has one)",
                repr(topology))
    groups = v.field(raw, "groups", list, f"{where}.groups")
    flat = sorted(i for g in groups if isinstance(g, list) for i in g)
    v.check(all(isinstance(g, list) and g for g in groups) and flat == list(range(n)),
            f"{where}.groups", f"a partition of the roles 0..{n - 1}, e.g. [[0], [1, 2]]",
            repr(groups))
    groups_t = tuple(tuple(sorted(g)) for g in groups)
    case = raw.get("case")
    if case is not None:
        v.check(case == case_label(ops, groups_t), f"{where}.case",
                repr(case_label(ops, groups_t)) + " (it must agree with 'groups')", repr(case))
    requires = raw.get("requires") or []
    v.check(isinstance(requires, list) and all(c in CONDITIONS for c in requires),
            f"{where}.requires", f"a list of conditions from {', '.join(CONDITIONS)}", repr(requires))
    origin = v.field(raw, "origin", dict, f"{where}.origin")
    v.check(origin.get("method") in ORIGINS, f"{where}.origin.method",
            f"one of {', '.join(ORIGINS)}", repr(origin.get("method")))
    evidence = raw.get("evidence") or []
    v.check(isinstance(evidence, list), f"{where}.evidence", "a list", type(evidence).__name__)
    if origin.get("method") == "timing":
        v.check(bool(evidence), f"{where}.evidence", "the measurements behind a timing verdict",
                "an empty list")
    return Rule(name=name, kind=kind, ops=tuple(ops), groups=groups_t, requires=tuple(requires),
                topology=topology, origin=origin, evidence=tuple(evidence),
                note=str(raw.get("note", "")))


def _layout(v: "_Validator", raw) -> Layout:
    v.check(isinstance(raw, dict), "layout", "an object or null", type(raw).__name__)
    name = v.field(raw, "name", str, "layout.name")
    v.check(name == "nchwc", "layout.name", "'nchwc' (the only layout model implemented)",
            repr(name))
    block = v.field(raw, "block", int, "layout.block")
    v.check(block > 1, "layout.block", "an integer > 1", repr(block))
    lists = {}
    for key in ("starts", "follows", "absorbs"):
        value = raw.get(key, {})
        v.check(isinstance(value, dict) and all(isinstance(c, dict) for c in value.values()),
                f"layout.{key}", "an object {op: {condition: value}}", repr(value)[:80])
        for op, conds in value.items():
            bad = set(conds) - set(LAYOUT_CONDITIONS)
            v.check(not bad, f"layout.{key}.{op}",
                    f"conditions from {', '.join(LAYOUT_CONDITIONS)}", ", ".join(sorted(bad)))
        lists[key] = dict(value)
    origin = v.field(raw, "origin", dict, "layout.origin")
    return Layout(name=name, block=block, origin=origin, evidence=tuple(raw.get("evidence", [])),
                  **lists)


class _Validator:
    def __init__(self, source: str):
        self.source = source

    def check(self, ok: bool, where: str, expected: str, got: str):
        if not ok:
            place = f"field '{where}'" if where else "top level"
            raise RulesError(f"{self.source}: {place}: expected {expected}, got {got}")

    def field(self, obj: dict, key: str, types, where: str | None = None):
        where = where or key
        if key not in obj:
            raise RulesError(f"{self.source}: field '{where}' is missing")
        value = obj[key]
        if isinstance(value, bool) and types is not bool:
            ok = False
        else:
            ok = isinstance(value, types)
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        self.check(ok, where, f"a {names}", type(value).__name__)
        return value


def dump(rules: Rules, path) -> Path:
    """Write ``rules`` as JSON (validated by reloading it)."""
    path = Path(path)
    text = json.dumps(rules.to_dict(), indent=1)
    from_dict(json.loads(text), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path
