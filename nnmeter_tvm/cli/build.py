"""``nnmeter-tvm build --backend NAME -o DIR``: sample and measure kernels, train, write a bundle.

``--retrain BUNDLE [BUNDLE ...]`` trains again from the samples bundles carry, measuring nothing
(with ``--reprofile``: profiling the same models again first; ``--reprofile-stale``: only those
written differently now); ``--extend BUNDLE`` measures the wide grid's layers (with ``--grid
ops``: the ops grid's) the bundle lacks and trains again on all its samples (with ``--models
M.onnx ...``: profiles those models instead and adds their kernels); ``--transfer-from BUNDLE``
times part of another machine's bundle's plan here and carries that bundle's samples over with
them (``builder.transfer``)."""
from __future__ import annotations

import sys


def add_parser(sub):
    from ..builder.sampler import EXTEND_GRIDS, GRIDS

    p = sub.add_parser("build", help="build a predictor bundle for a backend (sample, measure, "
                                     "train)")
    p.add_argument("--backend", default=None, help="ort-cpu or tvm-llvm")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--minutes", type=float, default=None,
                   help="time budget for sampling and measuring (default: 15 for ort-cpu, 30 "
                        "for tvm-llvm, which compiles every model)")
    p.add_argument("--max-samples", type=int, default=None,
                   help="kernels-timed budget (default: 3000 for ort-cpu, 2500 for tvm-llvm)")
    p.add_argument("--store", default=None, metavar="PATH",
                   help="sample log to resume from and append to (default "
                        "~/.cache/nnmeter-tvm/samples-<backend>.jsonl)")
    p.add_argument("--rules", default=None, metavar="FILE",
                   help="fusion rules to partition with (default rules/<backend>.json; with "
                        "--retrain or --extend: the bundle's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--grid", choices=sorted(set(GRIDS + EXTEND_GRIDS)), default=None,
                   help="family-agnostic samples: cnn, or wide, which adds the layers of "
                        "transformers (gemms over many rows, attention matmuls, softmax, "
                        "layernorm) on top (default: wide for ort-cpu, cnn for tvm-llvm); "
                        "with --extend: wide, or ops (standalone tanh, erf, exp, resize, "
                        "gather, slice... that no other draw runs)")
    p.add_argument("--extend", default=None, metavar="BUNDLE",
                   help="add the --grid's layers (default wide: transformer layers, standalone "
                        "pads) to BUNDLE (a name or folder built on this machine): measure "
                        "those it lacks, train again on all its samples, measuring nothing "
                        "else")
    p.add_argument("--models", default=None, nargs="+", metavar="MODEL",
                   help="with --extend: profile these ONNX models on this machine instead of "
                        "the wide grid, and add their kernels as samples (a few models of a "
                        "family the bundle has not seen, before predicting many more of it)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="with --models: static shape for an input with symbolic dims, e.g. "
                        "input=1,3,224,224 (applies to every model with that input)")
    p.add_argument("--retrain", default=None, nargs="+", metavar="BUNDLE",
                   help="train again from the kernel samples these bundles (names or folders) "
                        "carry, pooled, measuring nothing (e.g. after a change of features); "
                        "the first gives the calibration times; the budget options do not apply")
    p.add_argument("--reprofile", action="store_true",
                   help="with --retrain: profile every model the samples came from again on this "
                        "machine first (the same sample plan timed anew, e.g. after a fix of the "
                        "profiling); the calibration times are kept")
    p.add_argument("--reprofile-stale", action="store_true",
                   help="with --retrain: profile again only the models this version writes "
                        "differently from when they were profiled (e.g. a conv's add now reads "
                        "a conv's output, which onnxruntime fuses in its blocked layout); the "
                        "others and the calibration times are kept")
    p.add_argument("--transfer-from", default=None, metavar="BUNDLE",
                   help="a bundle for this machine in a fraction of a build's time: time "
                        "--max-samples kernels of BUNDLE's own plan here (default 1300: its "
                        "in-situ zoo models, then its packs) and carry BUNDLE's samples (a name "
                        "or folder built on another machine) over, each rescaled by how this "
                        "machine's times differ from BUNDLE's cost models, kernel by kernel")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..builder.build import build, extend, retrain
    from ..builder.sampler import EXTEND_GRIDS, GRIDS
    from ..builder.transfer import DEFAULT_SAMPLES, transfer
    from ..onnx_import import parse_input_shapes

    modes = [f for f, v in (("--retrain", args.retrain), ("--extend", args.extend),
                            ("--transfer-from", args.transfer_from)) if v]
    if len(modes) > 1:
        print(f"error: {' and '.join(modes)} do not go together; give one", file=sys.stderr)
        return 2
    if args.models and not args.extend:
        print("error: --models needs --extend BUNDLE (the bundle to add their kernels to)",
              file=sys.stderr)
        return 2
    if args.grid in EXTEND_GRIDS and args.grid not in GRIDS and not args.extend:
        print(f"error: --grid {args.grid} adds to a built bundle; give --extend BUNDLE",
              file=sys.stderr)
        return 2
    if args.extend:
        result = extend(args.extend, args.output, progress=not args.quiet,
                        grid=args.grid or "wide", rules_file=args.rules, models=args.models,
                        input_shapes=parse_input_shapes(args.input_shape))
    elif args.retrain:
        result = retrain(args.retrain, args.output, progress=not args.quiet,
                         reprofile=args.reprofile, rules_file=args.rules,
                         reprofile_stale=args.reprofile_stale)
    elif args.transfer_from:
        result = transfer(args.transfer_from, args.output, store=args.store,
                          progress=not args.quiet, rules_file=args.rules, seed=args.seed,
                          max_samples=args.max_samples or DEFAULT_SAMPLES,
                          expect_backend=args.backend, minutes=args.minutes)
    elif args.reprofile or args.reprofile_stale:
        flag = "--reprofile" if args.reprofile else "--reprofile-stale"
        print(f"error: {flag} needs --retrain BUNDLE", file=sys.stderr)
        return 2
    elif not args.backend:
        print("error: build needs --backend NAME (ort-cpu or tvm-llvm), or --retrain BUNDLE",
              file=sys.stderr)
        return 2
    else:
        overrides = {"seed": args.seed}
        if args.grid is not None:
            overrides["grid"] = args.grid
        if args.minutes is not None:
            overrides["minutes"] = args.minutes
        if args.max_samples is not None:
            overrides["max_samples"] = args.max_samples
        result = build(args.backend, args.output, store=args.store,
                       progress=not args.quiet, rules_file=args.rules, **overrides)
    print(f"bundle {result.bundle}: {result.measurements} kernels timed, {result.samples} "
          f"usable as samples, in {result.seconds:.0f} s")
    if result.carried:
        print(f"  carried from {args.transfer_from}: {result.carried} samples, each rescaled "
              "by this machine's ratio (the families' counts below include them)")
    for family, info in sorted(result.by_family.items()):
        h = info["heldout"]
        acc = f"{100 * h['acc10']:.1f}% within ±10% (n={h['n']})" if h else "fallback"
        print(f"  {family:<12} {info['samples']:>5} samples  held-out {acc}")
    o = result.overhead
    print(f"  overhead: {o.get('form')}: fixed {o.get('fixed_ms', 0):.4f} ms, per kernel "
          f"{o.get('per_kernel_ms', 0):.5f} ms, scale {o.get('scale', 1):.3f}")
    if result.drifted and (args.reprofile or not (args.retrain or args.extend)):
        # (a retraining measured nothing; an extension measured its drifted units again)
        print(f"warning: {result.drifted} profiled models were timed while another process "
              "loaded the machine (reference drift > 5 % in every attempt) and give no samples; "
              "run the same command again when it is quieter: the build resumes and measures "
              "them again", file=sys.stderr)
    return 0
