"""Helpers (no tests) shared by the pass tests: zoo models as Relax modules, predictors."""
from __future__ import annotations

import functools
import warnings

import numpy as np


def fuse(mod):
    """The default CPU pipeline's legalize passes up to FuseOps (FuseTIR not yet run)."""
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FoldConstant(), relax.transform.FuseOps()])
    with tvm.target.Target("llvm"):
        return seq(mod)


@functools.lru_cache(maxsize=None)
def zoo_model(family: str, size: int = 32):
    from nnmeter_tvm import zoo

    return zoo.generate(family, 0, 0, input_size=size)


@functools.lru_cache(maxsize=None)
def relax_module(family: str, stage: str = "pre", size: int = 32):
    """The ONNX frontend's module of a zoo model, as is (``pre``) or after FuseOps (``post``)."""
    from tvm.relax.frontend.onnx import from_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frontend warns about every renamed tensor
        mod = from_onnx(zoo_model(family, size), keep_params_in_input=False)
    return fuse(mod) if stage == "post" else mod


def minimal_rules(backend: str):
    """A small rules set (conv/bn/activation pairs) for when no rules file is shipped yet."""
    from nnmeter_tvm import rules as R

    pairs = [("conv", "bn"), ("conv", "relu"), ("bn", "relu"), ("conv", "relu6"), ("dwconv", "bn"),
             ("dwconv", "relu6"), ("dwconv", "relu"), ("conv", "add"), ("add", "relu"),
             ("gemm", "relu"), ("conv", "hardswish"), ("bn", "hardswish")]
    rules = [{"name": f"{a}_{b}", "kind": "pair", "ops": [a, b], "groups": [[0, 1]],
              "origin": {"method": "observed"}} for a, b in pairs]
    return R.from_dict({"schema": R.SCHEMA, "schema_version": R.SCHEMA_VERSION,
                        "backend": {"name": backend, "version": "test"}, "machine": {},
                        "alpha": 0.5, "date": "2025-01-01", "rules": rules})


@functools.lru_cache(maxsize=None)
def predictor(name: str):
    """The shipped predictor; while its rules file is missing, the same backend on minimal rules."""
    from nnmeter_tvm.errors import RulesError
    from nnmeter_tvm.predictors import Predictor, load_predictor

    p = load_predictor(name)
    try:
        p.rules
    except RulesError:
        p = Predictor(name, rules=minimal_rules(name))
    return p


def shipped(name: str) -> bool:
    """Whether ``load_predictor(name)`` works as the CLI uses it (rules file present)."""
    from nnmeter_tvm.errors import NNMeterError
    from nnmeter_tvm.predictors import load_predictor

    try:
        load_predictor(name).rules
        return True
    except NNMeterError:
        return False


def run_vm(mod, x, pipeline="default"):
    import tvm
    from tvm import relax

    ex = tvm.compile(mod, target="llvm", relax_pipeline=pipeline)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def input_for(size: int = 32):
    return np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)


def predictor_arg(directory, name: str = "ort-cpu") -> str:
    """What to give ``--predictor``: the shipped name, or (until its rules ship) a bundle folder
    written to ``directory`` with :func:`minimal_rules`."""
    from nnmeter_tvm import rules as R
    from nnmeter_tvm.predictors import Predictor, save_bundle

    if shipped(name):
        return name
    rules_file = R.dump(minimal_rules(name), f"{directory}/rules-{name}.json")
    save_bundle(Predictor(name, rules=minimal_rules(name)), f"{directory}/{name}", rules_file=rules_file)
    return f"{directory}/{name}"
