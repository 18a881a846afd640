"""Evaluate the kernel-level latency predictor on measured zoo models, against baselines.

    python benchmarks/evaluate.py [--backend ort-cpu|tvm-llvm] [--quick]

Writes ``benchmarks/results/evaluate-<backend>.json``, ``.md`` (tables for the README, machine
description included) and ``.png`` (predicted vs measured; needs matplotlib); ``--quick`` writes
``evaluate-<backend>-quick.*``.  Steps:

1. dataset   zoo models of seed 0 (``eval_lib.dataset.plan_for``), each measured twice in two
             passes of different order, cached in the measurement store: a rerun measures only
             what is missing, a finished one only predicts (``--max-measure-minutes`` stops
             measuring early; rerun to resume; ``--quick`` stops it in time for the whole run
             to end within 5 minutes)
2. predict   the kernel-level predictor on every model; the operator-level sum (no fusion)
3. baselines FLOPs / FLOPs+MAC regressions and a model-level XGBoost, fitted on the train split
4. metrics   ±5/10/15 %, RMSE, RMSPE per family and overall, beside the noise ceiling
5. lofo      leave-one-family-out: cost models retrained without each family's kernel samples
6. report    JSON, Markdown, scatter plot
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

from eval_lib import baselines, dataset, lofo, metrics, report
from eval_lib.dataset import log
from eval_lib.graph_stats import graph_features

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path("~/.cache/nnmeter-tvm")
TARGETS = {"ort-cpu": 99.0, "tvm-llvm": 95.0}
FAMILY_TARGET = {"ort-cpu": 97.0}
LOFO_TARGET = 95.0
QUICK_S = 300.0         # --quick: the whole run, measuring included (the evaluation issue's limit)
AFTER_MEASURE_S = 75.0  # ... of which the steps after measuring take (LOFO ~35 s, report)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", default="ort-cpu", choices=("ort-cpu", "tvm-llvm"))
    p.add_argument("--quick", action="store_true",
                   help="a few variants per family; measuring stops in time for the run to end "
                        "within 5 min (rerun to measure the rest)")
    p.add_argument("--predictor", help="bundle folder or name (default: the backend's bundle)")
    p.add_argument("--store", help="measurement store (default: $NNMETER_TVM_STORE or "
                                   "~/.cache/nnmeter-tvm/measurements.sqlite)")
    p.add_argument("--max-measure-minutes", type=float, default=None,
                   help="stop measuring after this long (rerun to resume); evaluate what is done")
    p.add_argument("--no-measure", action="store_true", help="use only stored measurements")
    p.add_argument("--measure-only", action="store_true",
                   help="measure the dataset into the store and stop (no predictor needed)")
    p.add_argument("--truth-from", metavar="RESULTS.json",
                   help="take the measurements the store lacks from an earlier results file of "
                        "this backend and version (its per-model records; only models whose "
                        "content hash matches): reuses the ground truth on a fresh machine")
    p.add_argument("--trust-names", action="store_true",
                   help="with --truth-from: match records without a content hash (files written "
                        "before it was recorded) by model name; valid only while the zoo "
                        "generators are unchanged since that file was written")
    p.add_argument("--no-lofo", action="store_true", help="skip leave-one-family-out")
    p.add_argument("--lofo-without", metavar="ORIGIN", action="append", default=[],
                   choices=("zoo", "initial", "grid", "adaptive"),
                   help="leave-one-family-out (and its check on all samples) without the "
                        "samples of this origin: what they add")
    p.add_argument("--out", default=str(RESULTS), help="output folder")
    p.add_argument("--note", action="append", default=[],
                   help="a note to record in the results (e.g. how long the first measuring took)")
    p.add_argument("--no-cache", action="store_true",
                   help=f"generate every model again (no graph cache in {CACHE})")
    return p.parse_args(argv)


def measure_budget(args, elapsed_s: float) -> float | None:
    """Seconds of measuring allowed: ``--max-measure-minutes``; with ``--quick`` what is left
    of its 5 minutes after the steps that follow (on a busy host measuring slows 2-3x: the
    run then evaluates the models measured so far and a rerun measures the rest)."""
    if args.max_measure_minutes is not None:
        return 60 * args.max_measure_minutes
    if not args.quick:
        return None
    budget = max(0.0, QUICK_S - AFTER_MEASURE_S - elapsed_s)
    log(f"  --quick: measuring stops after {budget:.0f} s, so that the run ends within "
        f"{QUICK_S / 60:.0f} min")
    return budget


def _software() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("nnmeter-tvm", "onnxruntime", "apache-tvm", "xgboost-cpu", "onnx", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def predict(predictor, entries):
    graphs = [e.graph for e in entries]
    reports = predictor.predict_many(graphs)
    pred = np.array([r.total_ms for r in reports])
    fallback = [len(r.fallback_kernels) for r in reports]
    extrapolated = [len(r.extrapolated_kernels) for r in reports]
    kernels = [len(r.kernels) for r in reports]
    return pred, fallback, extrapolated, kernels, baselines.operator_sum(predictor, graphs)


def extrapolation_note(flagged, pred, measured) -> str:
    """How the models with a kernel beyond its cost model's training range fare against the
    others: whether the flag says something."""
    hit = np.abs(pred / measured - 1) <= 0.10
    rest = f"; the other {int((~flagged).sum())}: {100 * hit[~flagged].mean():.1f} %" \
        if (~flagged).any() else ""
    return (f"{int(flagged.sum())} models have a kernel beyond the range of its cost model's "
            f"training samples (flagged `extrapolated`): {100 * hit[flagged].mean():.1f} % of "
            f"them within ±10 %{rest}.")


def comparison(entries, pred, opsum, feats, measured, measure_seconds, predictor_info):
    """Every method on the test split; model-level baselines fitted on the train split."""
    split = np.array([e.item.split for e in entries])
    fams = np.array([e.item.family for e in entries])
    tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    methods = {"nn-meter": pred[te], "op-sum": opsum[te]}
    if len(tr) >= 3:
        methods |= baselines.fit_predict([feats[i] for i in tr], measured[tr],
                                         [feats[i] for i in te])
    blocks = {m: metrics.by_group(fams[te], metrics.summarize, p, measured[te])
              for m, p in methods.items()}
    trained_on = {m: f"{len(tr)} train models" for m in baselines.MODEL_LEVEL}
    trained_on |= {"nn-meter": f"{predictor_info['kernel_samples']} kernel samples",
                   "op-sum": "the same kernel samples"}
    per_model = {m: dict(zip(te.tolist(), p.tolist())) for m, p in methods.items()}
    budget = {"baseline_models": int(len(tr)),
              "baseline_measure_s": round(measure_seconds * len(tr) / max(1, len(entries)), 1),
              "kernel_samples": predictor_info["kernel_samples"],
              "build_seconds": predictor_info["build_seconds"]}
    return {"methods": blocks, "trained_on": trained_on, "budget": budget}, per_model


def targets(backend, accuracy, lofo_block):
    out = []
    if backend in TARGETS:
        o = accuracy["overall"]
        out.append({"what": "±10 % overall", "required": TARGETS[backend],
                    "value": o["acc10"], "met": metrics.meets(o, "acc10", TARGETS[backend])})
    if backend in FAMILY_TARGET:
        worst = min((b for f, b in accuracy.items() if f != "overall"),
                    key=lambda b: b["acc10"] if b["acc10"] is not None else 101, default=None)
        if worst is not None:
            out.append({"what": "±10 % in every family (worst family)",
                        "required": FAMILY_TARGET[backend], "value": worst["acc10"],
                        "met": metrics.meets(worst, "acc10", FAMILY_TARGET[backend])})
    if lofo_block and lofo_block.get("methods"):
        o = lofo_block["methods"]["nn-meter"]["overall"]
        out.append({"what": "leave-one-family-out ±10 %", "required": LOFO_TARGET,
                    "value": o["acc10"], "met": metrics.meets(o, "acc10", LOFO_TARGET)})
    return out


def mixed_truth(args, truth_cpu: str | None, here: str | None, cached: int) -> str | None:
    """The error when ``--truth-from``'s ground truth, measured on another CPU, would be mixed
    with this machine's times (measured now, or ``cached`` in the store); None when it is not."""
    if truth_cpu in (None, here) or (args.no_measure and not cached):
        return None
    return (f"error: {args.truth_from} was measured on CPU {truth_cpu!r}, this CPU is {here!r}: "
            "its ground truth would mix with this machine's measurements; to score on that "
            "file's truth alone, add --no-measure and an empty --store")


def main(argv=None) -> int:
    args = parse_args(argv)
    from nnmeter_tvm.backends import get_backend
    from nnmeter_tvm.backends.machine import describe_machine
    from nnmeter_tvm.backends.store import Store
    from nnmeter_tvm.predictors import load_predictor

    t_start, timing = time.monotonic(), {}
    backend = get_backend(args.backend)
    plan = dataset.plan_for(args.backend, args.quick)
    log(f"evaluate {args.backend}{' --quick' if args.quick else ''}: {plan.note}")

    t = time.monotonic()
    entries = dataset.prepare(plan.items(), cache_dir=None if args.no_cache else CACHE)
    timing["generate models"] = time.monotonic() - t
    store = Store(args.store)
    cached = dataset.load_cached(entries, backend, store)
    log(f"  {cached} model-passes found in the store")
    imported = None
    if args.truth_from:
        try:
            imported = dataset.load_results(entries, args.truth_from, args.trust_names)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"error: --truth-from {args.truth_from}: not a readable evaluate results file "
                f"({type(exc).__name__}: {exc}); give a benchmarks/results/evaluate-*.json")
            return 2
        if (imported["backend"], imported["backend_version"]) != (args.backend, backend.version()):
            log(f"error: {args.truth_from}: measured on {imported['backend']} "
                f"{imported['backend_version']}, not {args.backend} {backend.version()}; "
                "drop --truth-from to measure again")
            return 2
        mixed = mixed_truth(args, imported["cpu_model"], describe_machine().get("cpu_model"),
                            cached)
        if mixed:
            log(mixed)
            return 2
        log(f"  {imported['passes']} model-passes of {imported['models']} models taken from "
            f"{args.truth_from} (measured {imported['date']}; "
            f"{imported['matched_by_name']} models matched by name only)")
    t = time.monotonic()
    meas = {"measured_now": 0, "failed_now": 0, "seconds": 0.0, "stopped_by_budget": False}
    if not args.no_measure:
        budget = measure_budget(args, time.monotonic() - t_start)
        meas = dataset.measure(entries, backend, store, chunk=plan.chunk, budget_s=budget)
        meas["budget_s"] = None if budget is None else round(budget, 1)
    timing["measure"] = time.monotonic() - t
    if args.measure_only:
        both = sum(e.complete for e in entries)
        log(f"measured: {both} of {len(entries)} models in both passes "
            f"({sum(1 for e in entries if e.error)} failed)")
        return 0

    predictor = load_predictor(args.predictor or args.backend)
    build = predictor.meta.get("build") or {}
    predictor_info = {"name": predictor.name, "source": predictor.meta.get("source"),
                      "kernel_samples": build.get("kernel_samples"),
                      "build_seconds": build.get("seconds"),
                      "build_zoo_seed": (build.get("zoo") or {}).get("seed"),
                      "trained_families": sorted(predictor.models),
                      "warnings": list(predictor.warnings)}
    done = [e for e in entries if e.complete]
    if not done:
        log("no model is measured in every pass it needs yet: nothing to evaluate")
        return 1
    measured = np.array([e.measured_ms for e in done])
    pass_a = np.array([e.ms["A"] for e in done])
    pass_b = np.array([e.ms["B"] for e in done])
    fams = np.array([e.item.family for e in done])
    # stored measurement time of the dataset (every pass), for the budget comparison
    measure_seconds = sum(
        m.total_s for e in done for p in dataset.PASSES + (dataset.TIEBREAK,)
        for m in [store.get(args.backend, e.key(args.backend, p))] if m is not None)

    t = time.monotonic()
    pred, fallback, extrapolated, n_kernels, opsum = predict(predictor, done)
    timing["predict"] = time.monotonic() - t
    t = time.monotonic()
    feats = [graph_features(e.graph) for e in done]
    cmp, cmp_models = comparison(done, pred, opsum, feats, measured, measure_seconds,
                                 predictor_info)
    timing["baselines"] = time.monotonic() - t
    accuracy = metrics.by_group(fams, metrics.summarize, pred, measured)
    noise = metrics.by_group(fams, metrics.noise_ceiling, pass_a, pass_b)
    log(f"kernel-level predictor: ±10 % {accuracy['overall']['acc10']:.1f} % over {len(done)} "
        f"models (noise ceiling ±10 % {noise['overall']['acc10']:.1f} %)")

    t = time.monotonic()
    if args.no_lofo:
        lofo_block, lofo_models = {"skipped": "--no-lofo"}, {}
    else:
        lofo_block, lofo_models = lofo.evaluate(predictor, done, feats, measured, store,
                                                quick=args.quick,
                                                without=args.lofo_without)
    timing["leave-one-family-out"] = time.monotonic() - t

    rows = []
    for i, e in enumerate(done):
        row = {"model": e.item.name, "family": e.item.family, "split": e.item.split,
               "input_size": e.item.input_size, "digest": e.digest,  # of the model measured
               "pass_a_ms": e.ms["A"], "pass_b_ms": e.ms["B"],
               "pass_c_ms": e.ms.get(dataset.TIEBREAK), "measured_ms": e.measured_ms,
               "predicted_ms": float(pred[i]),
               "op_sum_ms": float(opsum[i]), "fallback_kernels": fallback[i],
               "extrapolated_kernels": extrapolated[i], "kernels": n_kernels[i]}
        for m, by_index in cmp_models.items():
            if m not in ("nn-meter", "op-sum") and i in by_index:
                row[f"{m}_ms"] = by_index[i]
        if "pred" in lofo_models:
            row["lofo_ms"] = float(lofo_models["pred"][i])
        rows.append(row)
    failed = [{"model": e.item.name, "error": e.error} for e in entries if e.error]
    notes = list(args.note)
    if meas["stopped_by_budget"] or len(done) + len(failed) < len(entries):
        notes.append(f"{len(entries) - len(done) - len(failed)} planned models are not measured "
                     "in every pass they need yet (measurement stopped by its time budget): rerun "
                     "to resume; figures cover the measured models only.")
    if any(fallback):
        notes.append(f"{sum(1 for f in fallback if f)} models have kernels priced by the generic "
                     "fallback (no trained cost model for their kernel type).")
    if any(extrapolated):
        notes.append(extrapolation_note(np.array(extrapolated) > 0, pred, measured))
    timing["total"] = time.monotonic() - t_start
    result = {
        "backend": args.backend, "backend_version": backend.version(), "quick": args.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(), "software": _software(),
        "plan": {"families": list(plan.families), "per_family": plan.per_family,
                 "nasbench201": plan.nasbench201, "input_size": plan.input_size,
                 "nb201_input_size": plan.nb201_input_size, "seed": dataset.SEED,
                 "split": "even variant index = train, odd = test", "note": plan.note,
                 "chunk": plan.chunk, "tiebreak_at": 100 * dataset.TIEBREAK_AT,
                 "timing": "eval_lib.timing.measure_clean: the protocol plus a filter that drops "
                           "runs preempted by other processes (CPU time < 95 % of wall time)"},
        "predictor": predictor_info,
        "dataset": {"planned": len(entries), "complete": len(done), "failed": len(failed),
                    "missing": len(entries) - len(done) - len(failed),
                    "tiebreaks": sum(1 for e in done if e.needs_tiebreak),
                    "measurement": meas | {"stored_measure_seconds": round(measure_seconds, 1)},
                    "failures": failed, "store": str(store.path), "truth_from": imported},
        "accuracy": accuracy, "noise_ceiling": noise, "comparison": cmp, "lofo": lofo_block,
        "targets": targets(args.backend, accuracy, lofo_block),
        "timing": {k: round(v, 1) for k, v in timing.items()},
        "notes": notes, "models": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # --quick never overwrites the full evaluation's files
    stem = out / f"evaluate-{args.backend}{'-quick' if args.quick else ''}"
    plot_note = report.plot(result, stem.with_suffix(".png"))
    if plot_note:
        log(f"scatter plot skipped: {plot_note}")
    report.write_json(result, stem.with_suffix(".json"))
    stem.with_suffix(".md").write_text(report.markdown(result, plot_note))
    log(f"wrote {stem}.json, {stem}.md" + ("" if plot_note else f", {stem}.png")
        + f" in {timing['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
