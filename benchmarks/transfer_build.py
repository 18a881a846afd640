"""Bundles for this machine from another machine's bundle and a few kernels timed here
(``nnmeter-tvm build --transfer-from``), against a full build from scratch, on one ground truth.

    python benchmarks/transfer_build.py [--backend ort-cpu] [--source ort-cpu]
        [--samples 100 300 1000] [--seeds 0] [--packs-only] [--scratch N ...] [--full]
        [--measure-truth | --truth FILE] [--quick] [--also BUNDLE ...] [--keep DIR]
        [--built DIR] [--out DIR]

Each transfer build starts from an empty sample log and measurement store (a temporary folder),
so it measures everything it uses, calibration models included.  ``--packs-only`` leaves the
source's in-situ zoo models out of the transfers' plans; ``--scratch N`` adds ordinary builds
with a budget of N kernels (what the same kernels give without the source's samples); ``--full``
adds a default build from scratch (``build_from_scratch.build_runs``); ``--built DIR`` scores
the bundles an earlier run kept (``--keep``) beside the new ones.  The ground truth is ``--truth`` (an
evaluate results file) or, with ``--measure-truth``, the evaluation's models measured right
after the builds (``evaluate.py`` with an empty store; the truth's own files go to
``OUT/truth/``): on a shared host whose speed moves by 10 % in an hour, a bundle is best scored
on a truth measured close to it.  Every bundle, the source as it is and each ``--also`` bundle
are scored on it (nothing measured again).

Writes ``OUT/transfer-build-<backend>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import build_from_scratch
import evaluate
from eval_lib.report import truth_from_note, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def transfer_run(source: str, n: int, seed: int, out: Path, zoo_first: bool) -> dict:
    """One transfer (``build --transfer-from``) from an empty log and store into ``out``."""
    from nnmeter_tvm.builder.transfer import transfer

    saved = os.environ.get("NNMETER_TVM_STORE")
    os.environ["NNMETER_TVM_STORE"] = str(out.parent / f"store-{out.name}.sqlite")
    t = time.monotonic()
    try:
        transfer(source, out, store=out.parent / f"samples-{out.name}.jsonl", progress=False,
                 max_samples=n, seed=seed, zoo_first=zoo_first)
    finally:
        os.environ.pop("NNMETER_TVM_STORE")
        if saved is not None:
            os.environ["NNMETER_TVM_STORE"] = saved
    return dict(bundle_info(out), samples_asked=n, seed=seed, zoo_first=zoo_first,
                wall_s=round(time.monotonic() - t, 1))


def scratch_run(backend: str, n: int, seed: int, out: Path) -> dict:
    """An ordinary build (no source) with a budget of ``n`` kernels into ``out``, from an empty
    log and store (in ``out``'s parent): what the same few kernels give without another
    machine's samples."""
    runs = build_from_scratch.build_runs(backend, out, None, 1, _grid(backend), seed,
                                         max_samples=n)
    return dict(bundle_info(out), samples_asked=n, seed=seed, wall_s=runs[0]["wall_s"])


def bundle_info(path: Path) -> dict:
    """What a built bundle's ``build`` record says of its cost (and, for a transfer, of what it
    carried)."""
    build = json.loads((path / "bundle.json").read_text())["build"]
    info = {"wall_s": build["seconds"], "kernels_timed": build["kernels_timed"],
            "samples_by_origin": build["samples_by_origin"],
            "calibration_models": len(build.get("calibration_ms") or {}),
            "phases": build.get("phases") or {}, "overhead_fit": build["overhead_fit"],
            "built": (build.get("runs") or [{}])[-1].get("date")}
    moved = build.get("transferred_from")
    if moved:
        info.update(samples_here=moved["samples_here"], samples_carried=moved["samples_carried"],
                    ratios=moved["ratios"])
    return info


def measure_truth(backend: str, bundle: Path, out: Path, quick: bool) -> Path:
    """The evaluation's models measured now (an empty store; ``quick``: its --quick models),
    scored on ``bundle``."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["--backend", backend, "--predictor", str(bundle), "--no-lofo",
            "--store", str(out / "measurements.sqlite"), "--out", str(out)] + ["--quick"] * quick
    if evaluate.main(args) != 0:
        raise SystemExit("transfer_build: measuring the ground truth failed")
    return out / f"evaluate-{backend}{'-quick' * quick}.json"


def overall(scored: dict) -> dict:
    o = scored["accuracy"]["overall"]
    return {k: o[k] for k in ("n", "acc5", "acc10", "acc15", "rmspe", "mean_err")}


def markdown(r: dict) -> str:
    out = [f"# Transfer builds: {r['backend']} from `{r['source']}`", "",
           f"{r['date']}, {r['machine']['cpu_model']}, {r['machine']['cores']} cores.  "
           "Each build from an empty sample log and measurement store; all scored on one "
           "ground truth, nothing measured again." + truth_from_note(r["truth_from"]), "",
           "| bundle | kernels timed here | samples carried | wall | ±10 % | ±5 % | mean error "
           "| ±10 % with the level out |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["rows"]:
        s = row["scored"]
        out.append(f"| {row['name']} | {row.get('kernels_timed', '–')} | "
                   f"{row.get('samples_carried', '–')} | "
                   + (f"{row['wall_s'] / 60:.1f} min" if "wall_s" in row else "–")
                   + f" | {s['acc10']:.1f} % | {s['acc5']:.1f} % | {s['mean_err']:+.1f} % | "
                   f"{row['level_out_acc10']:.1f} % |")
    out += ["", "`±10 % with the level out`: each prediction divided by the bundle's median "
            "predicted/measured ratio over the models first, to tell a level offset (the host's "
            "speed when the bundle's calibration models were timed) from the shape of the "
            "cost models.  A positive mean error is a prediction above the truth.", ""]
    return "\n".join(out)


def level_out(result_file: Path) -> float:
    """±10 % accuracy after dividing by the median predicted/measured ratio."""
    import numpy as np

    models = json.loads(result_file.read_text())["models"]
    r = np.array([m["predicted_ms"] / m["measured_ms"] for m in models])
    return float(100 * np.mean(np.abs(r / np.median(r) - 1) <= 0.10))


def score_row(backend: str, name: str, bundle, truth: Path, work: Path, quick: bool) -> dict:
    dest = work / f"eval-{name}"
    scored = build_from_scratch.score(backend, bundle, truth, dest, quick)
    return {"name": name, "bundle": str(bundle), "scored": overall(scored),
            "families": scored["accuracy"], "truth_from": scored["truth_from"],
            "level_out_acc10": level_out(dest / f"evaluate-{backend}{'-quick' * quick}.json")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--source", default=None, help="bundle to carry (default: the backend's)")
    p.add_argument("--samples", type=int, nargs="*", default=[100, 300, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--packs-only", action="store_true",
                   help="transfer plans of packs alone, without the source's in-situ zoo models")
    p.add_argument("--scratch", type=int, nargs="*", default=[],
                   help="also ordinary builds (no source) with these kernel budgets")
    p.add_argument("--full", action="store_true", help="also a default build from scratch")
    p.add_argument("--truth", type=Path, default=None, help="evaluate results file to score on")
    p.add_argument("--measure-truth", action="store_true",
                   help="measure the evaluation's models after the builds, to score on")
    p.add_argument("--quick", action="store_true",
                   help="the truth of evaluate.py --quick's models (measured or given)")
    p.add_argument("--also", nargs="*", default=[], help="other bundles to score beside")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--built", type=Path, default=None,
                   help="also score the bundles an earlier run kept in this folder (--keep)")
    p.add_argument("--keep", type=Path, default=None,
                   help="copy the built bundles here (default: deleted with the temporary folder)")
    args = p.parse_args(argv)
    if bool(args.truth) == args.measure_truth:
        p.error("give --truth FILE or --measure-truth")
    from nnmeter_tvm.backends.machine import describe_machine

    source = args.source or args.backend
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nnmeter-transfer-") as tmp:
        tmp = Path(tmp)
        builds = []
        for n in args.samples:
            for seed in args.seeds:
                name = f"transfer-{n}-s{seed}" if args.packs_only else \
                    f"transfer-zoo-{n}-s{seed}"
                builds.append((name, tmp / name, transfer_run(source, n, seed, tmp / name,
                                                              not args.packs_only)))
                print(f"{name}: {builds[-1][2]['wall_s']:.0f} s", flush=True)
        for n in args.scratch:
            for seed in args.seeds:
                name = f"scratch-{n}-s{seed}"
                out = tmp / name / "bundle"  # its own log and store beside it
                builds.append((name, out, scratch_run(args.backend, n, seed, out)))
                print(f"{name}: {builds[-1][2]['wall_s']:.0f} s", flush=True)
        if args.full:
            out = tmp / "full-build" / "bundle"
            runs = build_from_scratch.build_runs(args.backend, out, None, 1,
                                                 _grid(args.backend), 0)
            builds.append(("full-build", out, dict(bundle_info(out), wall_s=runs[0]["wall_s"])))
        if args.keep:  # before the truth, which takes half an hour
            for name, path, _ in builds:
                shutil.copytree(path, args.keep / name, dirs_exist_ok=True)
        if args.built:  # bundles an earlier run kept
            builds = [(d.name, d, bundle_info(d)) for d in sorted(args.built.iterdir())
                      if (d / "bundle.json").is_file()] + builds
        truth = args.truth or measure_truth(args.backend, builds[0][1], args.out / "truth",
                                            args.quick)
        rows = [dict(info, **score_row(args.backend, name, path, truth, tmp, args.quick))
                for name, path, info in builds]
        rows.append(score_row(args.backend, f"{source} as is", source, truth, tmp, args.quick))
        rows += [score_row(args.backend, b, b, truth, tmp, args.quick) for b in args.also]
    result = {"backend": args.backend, "source": source,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe_machine(), "truth": str(truth),
              "truth_from": rows[0]["truth_from"], "rows": rows}
    stem = args.out / f"transfer-build-{args.backend}"
    write_results(stem, result, markdown(result))
    print(f"wrote {stem}.json, {stem}.md")
    return 0


def _grid(backend: str) -> str:
    from nnmeter_tvm.builder.build import BuildConfig

    return BuildConfig.for_backend(backend).grid


if __name__ == "__main__":
    sys.exit(main())
