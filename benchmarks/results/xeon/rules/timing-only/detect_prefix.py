"""A timing-only detection with the observed mode's test-model design: every input through a 1x1
MaxPool and every output read by a one-element Slice, and the launch probe at 16x2, but no
kernel list read (observe=False).  Run as: python detect_prefix.py OUT.json STORE.sqlite
(min_time_s 0.5 here, against detect-rules' 0.05: 2,484 of 2,727 test models were reused from
the store of the observed run)."""
import sys
from nnmeter_tvm import zoo
from nnmeter_tvm.backends import ProtocolConfig, get_backend
from nnmeter_tvm.backends.store import Store
from nnmeter_tvm.builder.rules_tester import RuleTester
from nnmeter_tvm.builder.testcases import CaseShape, collect_patterns
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.rules import dump
graphs = [load_graph(m) for f in zoo.FAMILIES for m in zoo.variants(f, 2)]
patterns = collect_patterns(graphs)
config = ProtocolConfig(min_time_s=0.5, warmup_s=0.02, min_runs=10, max_time_s=3.0)
backend = get_backend("ort-cpu", config=config)
t = RuleTester(backend, store=Store(sys.argv[2]), config=config, budget_s=1500, observe=False,
               prefix="maxpool1", launch=CaseShape(16, 2))
t.bench.suffix = "slice1"
rules = t.detect(patterns, graphs)
print(dump(rules, sys.argv[1]), t.measurer.report)
