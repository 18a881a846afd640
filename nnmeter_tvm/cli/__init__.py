"""``nnmeter-tvm``: the command-line entry point.

Each subcommand lives in its own module ``nnmeter_tvm/cli/<name>.py`` with ``add_parser(sub)``
and ``run(args) -> int``.  User errors (any :class:`NNMeterError`) print one line and exit 2;
``--debug`` shows the traceback instead.  Warnings print one line each.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import MismatchWarning, NNMeterError

# In the order ``--help`` lists them: the pipeline's order.
COMMANDS = ("zoo", "graph", "measure", "detect_rules", "kernels", "build", "predict", "check")


def predictor_help() -> str:
    """The ``--predictor`` help of the commands that predict: the shipped bundles with the CPU
    each was built on (a bundle prices that CPU), read from the package."""
    from ..predictors.bundle import shipped_cpus

    names = ", ".join(f"{name} ({cpu})" for name, cpu in shipped_cpus().items())
    return f"a shipped predictor: {names}; or a bundle folder (default: ort-cpu)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnmeter-tvm",
        description="Kernel-level latency prediction for ONNX models on onnxruntime and TVM.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            # the reports print a bundle's mismatch warnings; any other warning: one line
            warnings.filterwarnings("ignore", category=MismatchWarning)
            warnings.showwarning = lambda message, *_a, **_k: print(
                f"nnmeter-tvm {args.command}: warning: {message}", file=sys.stderr)
            return int(args.func(args) or 0)
    except NNMeterError as exc:
        if args.debug:
            raise
        print(f"nnmeter-tvm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nnmeter-tvm {args.command}: interrupted", file=sys.stderr)
        return 130
