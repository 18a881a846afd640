"""Writing the evaluation: ``evaluate-<backend>.json`` (every figure and every model's numbers),
``evaluate-<backend>.md`` (the README tables, generated from the same dict) and the scatter
plot ``evaluate-<backend>.png`` (matplotlib is optional: without it the plot is skipped and the
.md says so)."""
from __future__ import annotations

import json
import math
from pathlib import Path

METHOD_LABELS = {
    "nn-meter": "kernel-level predictor (this project)",
    "op-sum": "operator-level sum (same cost models, no fusion rules)",
    "flops": "FLOPs linear regression",
    "flops+mac": "FLOPs + MAC linear regression",
    "xgboost-model": "model-level XGBoost on whole-graph features",
}


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1f} %"


def _num(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _signed(v) -> str:
    return "–" if v is None else f"{v:+.1f} %"


def _finite(value):
    """NaN / inf become null: the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_results(stem: Path, result: dict, markdown_text: str) -> None:
    """A benchmark's ``<stem>.json`` (the result as written by json.dumps) and ``<stem>.md``,
    creating the folder."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown_text)


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(_finite(result), indent=1, allow_nan=False) + "\n")


def plot(result: dict, path: Path) -> str | None:
    """The predicted-vs-measured scatter; returns why it was skipped, or None when written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, or the `plot` extra)"
    rows = [m for m in result["models"] if m.get("predicted_ms") is not None]
    if not rows:
        return "no measured models to plot"
    floor = min(m["measured_ms"] for m in rows) / 10  # a non-positive prediction sits here
    rows = [dict(m, predicted_ms=max(m["predicted_ms"], floor)) for m in rows]
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=120)
    families = sorted({m["family"] for m in rows})
    cmap = plt.get_cmap("tab20")
    for i, fam in enumerate(families):
        sel = [m for m in rows if m["family"] == fam]
        ax.scatter([m["measured_ms"] for m in sel], [m["predicted_ms"] for m in sel], s=9,
                   color=cmap(i % 20), label=fam, alpha=0.8, linewidths=0)
    lo = min(min(m["measured_ms"], m["predicted_ms"]) for m in rows) * 0.8
    hi = max(max(m["measured_ms"], m["predicted_ms"]) for m in rows) * 1.25
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    for f in (0.9, 1.1):
        ax.plot([lo, hi], [lo * f, hi * f], color="gray", lw=0.6, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms, ground truth of the passes)")
    ax.set_ylabel("predicted latency (ms)")
    acc = result["accuracy"]["overall"]
    ax.set_title(f"{result['backend']}: {acc['n']} models, {_pct(acc['acc10'])} within ±10 %"
                 " (dashed)", fontsize=9)
    ax.legend(fontsize=6, markerscale=1.5, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def _family_table(acc: dict, noise: dict) -> list[str]:
    # the mean error shows a bias: a build timed while the host ran faster or slower than
    # when the ground truth was measured moves every family alike (results/xeon/host-speed/)
    lines = ["| family | models | ±5 % | ±10 % | ±15 % | RMSE (ms) | RMSPE | mean error "
             "| noise ceiling ±5 % / ±10 % |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for fam in [f for f in acc if f != "overall"] + ["overall"]:
        a, n = acc[fam], noise.get(fam, {})
        name = f"**{fam}**" if fam == "overall" else fam
        lines.append(f"| {name} | {a['n']} | {_pct(a['acc5'])} | {_pct(a['acc10'])} | "
                     f"{_pct(a['acc15'])} | {_num(a['rmse_ms'])} | {_pct(a['rmspe'])} | "
                     f"{_signed(a.get('mean_err'))} | "
                     f"{_pct(n.get('acc5'))} / {_pct(n.get('acc10'))} |")
    return lines


def _comparison_table(cmp: dict) -> list[str]:
    lines = ["| method | test models | ±5 % | ±10 % | ±15 % | RMSE (ms) | RMSPE | trained on |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for method, block in cmp["methods"].items():
        o = block["overall"]
        lines.append(f"| {METHOD_LABELS.get(method, method)} | {o['n']} | {_pct(o['acc5'])} | "
                     f"{_pct(o['acc10'])} | {_pct(o['acc15'])} | {_num(o['rmse_ms'])} | "
                     f"{_pct(o['rmspe'])} | {cmp['trained_on'][method]} |")
    return lines


def _per_family_acc10(blocks: dict, methods) -> list[str]:
    fams = sorted({f for m in methods for f in blocks[m] if f != "overall"}) + ["overall"]
    lines = ["| family | " + " | ".join(methods) + " |",
             "| --- |" + " ---: |" * len(methods)]
    for fam in fams:
        cells = [_pct(blocks[m].get(fam, {}).get("acc10")) for m in methods]
        lines.append(f"| {'**overall**' if fam == 'overall' else fam} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict, plot_note: str | None) -> str:
    b = result["backend"]
    stem = f"evaluate-{b}{'-quick' if result['quick'] else ''}"
    mach = result["machine"]
    out = [f"# Evaluation on `{b}`" + (" (--quick)" if result["quick"] else ""), "",
           f"Generated by `benchmarks/evaluate.py --backend {b}"
           + (" --quick" if result["quick"] else "") + f"` on {result['date']}; every figure "
           f"below is read from `{stem}.json` written by the same run.", "",
           "## README table", "",
           README_HEADER, README_RULE, readme_table(result), "",
           f"Machine: {mach.get('cpu_model')}, {mach.get('cores')} cores, 1 measuring thread pinned "
           f"to one core; {b} {result['backend_version']}.  Source: "
           f"`benchmarks/results/{stem}.json`.", "",
           "## Machine", "",
           f"- CPU: {mach.get('cpu_model')} ({mach.get('cores', mach.get('cpu_count', '?'))} "
           f"cores visible), SIMD: {', '.join(mach.get('cpu_flags', mach.get('simd_flags', [])) or []) or '?'}",
           f"- backend: {b} {result['backend_version']}, 1 thread, pinned to one core; protocol "
           "of shared/MEASURE.md (warm-up ≥ 5 runs / 0.2 s, ≥ 30 runs / 0.5 s, median, drift guard)",
           f"- software: {', '.join(f'{k} {v}' for k, v in result['software'].items())}", "",
           "## Dataset", "",
           f"- {result['plan']['note']}.",
           f"- {result['dataset']['complete']} of {result['dataset']['planned']} models measured in "
           f"every pass they need ({result['dataset']['failed']} failed, "
           f"{result['dataset']['missing']} not yet measured).",
           "- zoo seed 0 (the predictor's builder draws from zoo seed "
           f"{result['predictor'].get('build_zoo_seed')}); split: even variant index = train, "
           "odd = test.  Only the model-level baselines are fitted on the train split; the "
           "kernel-level predictor is trained from kernel samples and never saw these models.",
           "- each model measured twice, in two passes of different order (pass A seeded random, "
           "pass B its reverse"
           + (f", within groups of {result['plan']['chunk']} models, each compiled once per group"
              if result["plan"].get("chunk") else "")
           + "); **noise ceiling** = pass B scored against pass A with the same metrics.  Where "
           f"the two disagree by more than {_pct(result['plan'].get('tiebreak_at'))}, a third pass "
           "(C, after both) breaks the tie: ground truth = median of the three medians "
           f"({result['dataset'].get('tiebreaks', '?')} models), else the "
           "mean of the two.",
           "- timing: the protocol of shared/MEASURE.md, plus a filter that drops runs preempted by "
           "other processes (process CPU time < 95 % of the run's wall time); the statistics and "
           "the ≥ 30 runs / ≥ 0.5 s counts are over the clean runs.  A measurement whose reference "
           "workload drifted > 5 % in every attempt is not used (measured again on the next run)."
           + truth_from_note(result["dataset"].get("truth_from")),
           f"- predictor: `{result['predictor']['name']}` from `{result['predictor'].get('source')}` "
           f"({result['predictor']['kernel_samples']} kernel samples, built in "
           f"{result['predictor']['build_seconds']} s; trained kernel families: "
           f"{', '.join(result['predictor'].get('trained_families') or []) or 'none'})."
           + "".join(f" Warning: {w}" for w in result["predictor"].get("warnings", [])), "",
           "## Accuracy of the kernel-level predictor, all measured models", ""]
    out += _family_table(result["accuracy"], result["noise_ceiling"])
    out += ["", "## Against the baselines (test split, same models for every method)", ""]
    cmp = result["comparison"]
    out += _comparison_table(cmp)
    out += ["", "±10 % accuracy per family (test split):", ""]
    out += _per_family_acc10(cmp["methods"], list(cmp["methods"]))
    out += ["", f"Measurement budget: the model-level baselines use {cmp['budget']['baseline_models']} "
            f"measured train models ({cmp['budget']['baseline_measure_s']} s of measuring, two "
            f"passes each); the kernel-level predictor used {cmp['budget']['kernel_samples']} kernel "
            f"samples (its whole build took {cmp['budget']['build_seconds']} s).", ""]
    lofo = result.get("lofo")
    out += ["## Leave-one-family-out", ""]
    if lofo and lofo.get("methods"):
        out += [lofo["note"], ""]
        out += _per_family_acc10(lofo["methods"], list(lofo["methods"]))
        out += ["", "Kernel samples kept / excluded per left-out family: " + ", ".join(
            f"{f} {v['kept']}/{v['excluded']}" for f, v in lofo["samples"].items()) + ".", ""]
        if lofo.get("retrained_all"):
            r = lofo["retrained_all"]
            out += [f"Check: the same retraining on *all* samples gives {_pct(r['acc10'])} within "
                    f"±10 % overall (the evaluated bundle: {_pct(result['accuracy']['overall']['acc10'])}).", ""]
    else:
        out += [f"Not run: {lofo.get('skipped') if lofo else 'disabled'}.", ""]
    out += ["## Targets", "", "| target | required | reached | met |", "| --- | ---: | ---: | :---: |"]
    for t in result["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        out.append(f"| {t['what']} | {t['required']:.0f} % | {_pct(t['value'])} | {met} |")
    out += ["", "## Time", "",
            "| phase | seconds |", "| --- | ---: |"]
    out += [f"| {k} | {v:.0f} |" for k, v in result["timing"].items()]
    meas = result["dataset"]["measurement"]
    out += ["", f"The dataset's stored measurements took {meas['stored_measure_seconds']:.0f} s "
            "(timing attempts, waits for the machine-wide measuring lock included, session "
            "builds / compiles not), summed over every "
            "pass of every model; a run finds them in the store and measures only what is "
            f"missing (this run measured {meas['measured_now']} model-passes)."]
    if meas.get("budget_s") is not None:
        out[-1] += (f"  Measuring was limited to {meas['budget_s']:.0f} s"
                    + (" and stopped there." if meas["stopped_by_budget"] else
                       f"; it took {meas['seconds']:.0f} s."))
    out += ["", f"Scatter plot: `{stem}.png`" if plot_note is None
            else f"Scatter plot: not written ({plot_note}).", ""]
    if result.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(out)


README_HEADER = ("| backend | models | ±5 % | ±10 % | ±15 % | RMSE (ms) | RMSPE | noise ceiling ±10 % "
                 "| leave-one-family-out ±10 % | FLOPs reg. ±10 % | FLOPs+MAC ±10 % | model XGBoost ±10 % |")
README_RULE = "| --- |" + " ---: |" * 11


def readme_table(result: dict) -> str:
    """The short table for README.md (also at the top of the .md)."""
    o, n = result["accuracy"]["overall"], result["noise_ceiling"]["overall"]
    lofo = (result.get("lofo") or {}).get("methods", {})
    cmp = result["comparison"]["methods"]
    lo = lofo.get("nn-meter", {}).get("overall", {}).get("acc10")
    base = [cmp.get(m, {}).get("overall", {}).get("acc10")
            for m in ("flops", "flops+mac", "xgboost-model")]
    return (f"| {result['backend']} | {o['n']} | {_pct(o['acc5'])} | {_pct(o['acc10'])} | "
            f"{_pct(o['acc15'])} | {_num(o['rmse_ms'])} | {_pct(o['rmspe'])} | {_pct(n['acc10'])} | "
            f"{_pct(lo)} | " + " | ".join(_pct(v) for v in base) + " |")


def truth_from_note(info) -> str:
    """A sentence on the measurements taken from an earlier results file (``--truth-from``),
    from ``dataset.load_results``' summary; "" when there were none."""
    if not info:
        return ""
    return (f"  {info['passes']} model-passes of {info['models']} models were not measured in "
            f"this run but taken from `{info['file']}` (measured {info['date']} on "
            f"{info['backend']} {info['backend_version']}; "
            + (f"{info['matched_by_name']} matched by model name only, the file predating content "
               "hashes" if info.get("matched_by_name") else "same model content hashes") + ").")
