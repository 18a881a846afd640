"""The rules loader (schema validation, errors that name file and field) and the shipped files."""
import json

import pytest

from nnmeter_tvm.errors import RulesError
from nnmeter_tvm.rules import SCHEMA_VERSION, dump, from_dict, load, path_for


def minimal(**over):
    d = {"schema": "nnmeter-tvm/rules", "schema_version": SCHEMA_VERSION,
         "backend": {"name": "b", "version": "1"}, "machine": {}, "alpha": 0.5,
         "date": "2026-01-01", "layout": None,
         "rules": [{"name": "conv_relu", "kind": "pair", "ops": ["conv", "relu"],
                    "groups": [[0, 1]], "case": "conv+relu", "requires": [],
                    "origin": {"method": "timing"}, "evidence": [{"shape": {}}]}]}
    d.update(over)
    return d


def test_round_trip(tmp_path):
    rules = from_dict(minimal())
    path = dump(rules, tmp_path / "r.json")
    again = load(path)
    assert again.pair("conv", "relu").fused and again.pair("conv", "relu").case == "conv+relu"
    assert again.source == str(path)


@pytest.mark.parametrize("change, field", [
    ({"schema_version": 99}, "schema_version"),
    ({"alpha": -1}, "alpha"),
    ({"backend": {"version": "1"}}, "backend.name"),
    ({"rules": [{"name": "rule_1", "kind": "pair", "ops": ["a", "b"], "groups": [[0, 1]],
                 "origin": {"method": "timing"}, "evidence": [{}]}]}, "rules[0].name"),
    ({"rules": [{"name": "a_b", "kind": "pairs", "ops": ["a", "b"], "groups": [[0, 1]],
                 "origin": {"method": "timing"}}]}, "rules[0].kind"),
    ({"rules": [{"name": "a_b", "kind": "pair", "ops": ["a", "b"], "groups": [[0]],
                 "origin": {"method": "timing"}, "evidence": [{}]}]}, "rules[0].groups"),
    ({"rules": [{"name": "a_b", "kind": "pair", "ops": ["a", "b"], "groups": [[0, 1]],
                 "case": "a | b", "origin": {"method": "timing"}, "evidence": [{}]}]},
     "rules[0].case"),
    ({"rules": [{"name": "a_b", "kind": "pair", "ops": ["a", "b"], "groups": [[0, 1]],
                 "origin": {"method": "timing"}, "evidence": []}]}, "rules[0].evidence"),
    ({"layout": {"name": "nchwc", "block": 16, "starts": {"conv": {"bogus": 1}},
                 "origin": {}}}, "layout.starts.conv"),
])
def test_errors_name_the_file_and_the_field(tmp_path, change, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(minimal(**change)))
    with pytest.raises(RulesError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and "\n" not in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RulesError, match="no such rules file"):
        load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(RulesError, match="not valid JSON"):
        load(bad)
    assert isinstance(RulesError("x"), ValueError)


@pytest.mark.parametrize("backend", ["ort-cpu", "tvm-llvm"])
def test_shipped_rules_load_and_say_where_they_come_from(backend):
    rules = load(backend)
    assert rules.backend_name == backend and rules.detection.get("complete") is True
    for r in rules.rules:
        assert r.origin["method"] in ("timing", "observed") and r.origin.get("version")
        assert not r.name.startswith("rule_")
        if r.origin["method"] == "timing":
            assert r.evidence and all("shape" in e for e in r.evidence)
    assert path_for(backend).is_file()


def test_shipped_ort_rules_agree_with_onnxruntimes_documented_fusions():
    """onnxruntime fuses Conv+BatchNormalization, Conv+activation and Gemm+activation
    (docs: graph optimizations, "Conv BatchNorm Fusion", "Conv Activation Fusion", "Gemm
    Activation Fusion")."""
    rules = load("ort-cpu")
    for a, b in (("conv", "bn"), ("dwconv", "bn"), ("conv", "relu"), ("gemm", "relu")):
        rule = rules.pair(a, b)
        assert rule is not None and rule.fused, f"{a}_{b}: {rule and rule.case}"
    for ops in (("conv", "bn", "relu"), ("dwconv", "bn", "relu6")):
        chain = rules.chain(*ops)
        assert chain is not None and chain.groups == ((0, 1, 2),), (ops, chain and chain.case)
    assert not rules.pair("relu", "conv").fused
    assert rules.layout is not None and rules.layout.name == "nchwc"
