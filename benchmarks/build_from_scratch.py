"""A predictor build from nothing, as on a fresh machine, scored on the evaluation's models.

    python benchmarks/build_from_scratch.py [--backend ort-cpu] [--minutes 15] [--runs 1]
        [--truth benchmarks/results/evaluate-ort-cpu.json] [--keep DIR]

Builds with an empty sample log and an empty measurement store (in a temporary folder, so
nothing this machine measured before is reused), ``--runs`` times in a row (each run resumes the
last, as ``nnmeter-tvm build`` run again would), then scores the bundle on the evaluation's
models with the ground truth of ``--truth`` (``evaluate.py --truth-from``: nothing measured).
The shipped bundle is left alone.

Writes ``benchmarks/results/build-from-scratch-<backend>.json`` and ``.md``: each run's wall
time, kernels timed, samples, adaptive rounds, the drift record (units profiled while the
machine was loaded), the calibration models, the overhead fit, and the accuracy overall and
per family with the mean error, beside the evaluated shipped bundle's.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import evaluate
from eval_lib.report import truth_from_note, write_results
from nnmeter_tvm.builder.sampler import GRIDS

RESULTS = Path(__file__).resolve().parent / "results"


def build_runs(backend: str, out: Path, minutes: float | None, runs: int, grid: str,
               seed: int, max_samples: int | None = None) -> list[dict]:
    """``nnmeter-tvm build`` ``runs`` times into ``out`` with a fresh log and store (in
    ``out``'s parent folder); ``max_samples``: the kernel budget (None: the backend's)."""
    work = out.parent
    env = dict(os.environ, NNMETER_TVM_STORE=str(work / "measurements.sqlite"))
    done = []
    for n in range(runs):
        cmd = [sys.executable, "-m", "nnmeter_tvm", "build", "--backend", backend, "-o", str(out),
               "--store", str(work / f"samples-{backend}.jsonl"), "--grid", grid,
               "--seed", str(seed), "--quiet"]
        if minutes is not None:
            cmd += ["--minutes", str(minutes)]
        if max_samples is not None:
            cmd += ["--max-samples", str(max_samples)]
        t = time.monotonic()
        code = subprocess.run(cmd, env=env).returncode
        if code != 0:  # e.g. every profile drifted: the build said why on stderr
            raise SystemExit(f"build_from_scratch: build run {n + 1} failed (exit {code})")
        build = json.loads((out / "bundle.json").read_text())["build"]
        done.append({"run": n + 1, "wall_s": round(time.monotonic() - t, 1),
                     "kernels_timed": build["kernels_timed"],
                     "kernels_timed_this_run": build["kernels_timed_this_run"],
                     "kernel_samples": build["kernel_samples"],
                     "adaptive_rounds": len(build["rounds"]) - 1,
                     "calibration_models": len(build.get("calibration_ms") or {}),
                     "drift": build.get("drift"), "overhead_fit": build["overhead_fit"],
                     "phases": build.get("phases") or {}})
    return done


def score(backend: str, bundle, truth: Path, out: Path, quick: bool = False) -> dict:
    """evaluate.py on ``bundle`` with ``truth``'s measurements (no LOFO, no measuring; ``quick``:
    the --quick models, for a truth measured with --quick)."""
    args = ["--backend", backend, "--truth-from", str(truth), "--trust-names", "--no-measure",
            "--no-lofo", "--store", str(out / "empty.sqlite"), "--out", str(out)]
    args += ["--quick"] * quick
    if bundle is not None:
        args += ["--predictor", str(bundle)]
    if evaluate.main(args) != 0:
        raise SystemExit("build_from_scratch: evaluate.py failed on "
                         f"{bundle or 'the shipped bundle'}")
    result = json.loads((out / f"evaluate-{backend}{'-quick' * quick}.json").read_text())
    return {"accuracy": result["accuracy"], "truth_from": result["dataset"]["truth_from"],
            "predictor": result["predictor"]}


def markdown(r: dict) -> str:
    runs = r["runs"]
    out = [f"# Predictor built from scratch: {r['backend']}", "",
           f"{r['date']}, {r['machine']['cpu_model']}, {r['machine']['cores']} cores.  "
           f"`nnmeter-tvm build --backend {r['backend']} --grid {r.get('grid', 'cnn')} --seed "
           f"{r.get('seed', 0)}` with an "
           "empty sample log and an empty "
           f"measurement store, {len(runs)} run(s) of {r['minutes'] or 'the default'} minutes "
           "(each run resumes the last).  Scored on the evaluation's "
           + ("--quick models" if r.get("quick") else "models") + ", nothing measured again."
           + truth_from_note(r["built"]["truth_from"]), "",
           "| run | wall | kernels timed (this run) | samples | adaptive rounds | calibration "
           "models | drifted units measured again / still drifted | overhead |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for x in runs:
        d, o = x.get("drift") or {}, x["overhead_fit"]
        out.append(f"| {x['run']} | {x['wall_s'] / 60:.1f} min | {x['kernels_timed']} "
                   f"({x['kernels_timed_this_run']}) | {x['kernel_samples']} | "
                   f"{x['adaptive_rounds']} | {x['calibration_models']} | "
                   f"{d.get('units_measured_again', '–')} / {d.get('units_still_drifted', '–')} | "
                   f"{o['form']}: {1000 * o['per_kernel_ms']:+.2f} µs per kernel, fixed "
                   f"{o['fixed_ms']:.3f} ms |")
    phases = list(dict.fromkeys(k for x in runs for k in x.get("phases") or {}))
    if phases:
        out += ["", "Where each run's time went (seconds; `training` includes the quick fits "
                "between adaptive rounds, `overhead_fit` the calibration models timed again):",
                "", "| run | " + " | ".join(phases) + " |",
                "| ---: | " + " | ".join("---:" for _ in phases) + " |"]
        out += [f"| {x['run']} | " + " | ".join(f"{x['phases'].get(k, 0):.0f}" for k in phases)
                + " |" for x in runs]
    out += ["", "| family | models | this build ±10 % | mean error | shipped bundle ±10 % | "
            "mean error |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    built, shipped = r["built"]["accuracy"], r["shipped"]["accuracy"]
    for fam in sorted(built, key=lambda f: (f == "overall", f)):
        b, s = built[fam], shipped[fam]
        out.append(f"| {fam} | {b['n']} | {b['acc10']:.1f} % | {b['mean_err']:+.1f} % | "
                   f"{s['acc10']:.1f} % | {s['mean_err']:+.1f} % |")
    out += ["", "A positive mean error is a prediction above the ground truth.  The two "
            "bundles were built at different times on this shared host; a build profiled while "
            "other processes load the machine prices kernels high.", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--minutes", type=float, default=None, help="budget of each build run")
    p.add_argument("--runs", type=int, default=1, help="build runs in a row (default 1)")
    p.add_argument("--grid", choices=GRIDS, default=None,
                   help="the build's family-agnostic samples (nnmeter-tvm build --grid; "
                        "default: the backend's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (nnmeter-tvm build --seed)")
    p.add_argument("--truth", type=Path, default=None,
                   help="results file with the ground truth (default: evaluate-<backend>.json)")
    p.add_argument("--quick", action="store_true",
                   help="score on evaluate.py --quick's models (for a --truth measured so)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", type=Path, default=None,
                   help="copy the built bundle here (default: deleted with the temporary folder)")
    args = p.parse_args(argv)
    truth = args.truth or RESULTS / f"evaluate-{args.backend}.json"
    from nnmeter_tvm.backends.machine import describe_machine
    from nnmeter_tvm.builder.build import BuildConfig

    args.grid = args.grid or BuildConfig.for_backend(args.backend).grid

    with tempfile.TemporaryDirectory(prefix="nnmeter-scratch-") as tmp:
        tmp = Path(tmp)
        runs = build_runs(args.backend, tmp / "bundle", args.minutes, args.runs, args.grid,
                          args.seed)
        if args.keep is not None:  # first: a build is minutes of measuring
            shutil.copytree(tmp / "bundle", args.keep, dirs_exist_ok=True)
        built = score(args.backend, tmp / "bundle", truth, tmp / "eval-built", args.quick)
        shipped = score(args.backend, None, truth, tmp / "eval-shipped", args.quick)
    result = {"backend": args.backend,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe_machine(), "minutes": args.minutes, "grid": args.grid,
              "seed": args.seed, "quick": args.quick,
              "truth": str(truth),
              "runs": runs, "built": built, "shipped": shipped}
    stem = args.out / f"build-from-scratch-{args.backend}"
    write_results(stem, result, markdown(result))
    print(f"wrote {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
