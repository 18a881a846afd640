"""Predictor bundles: a folder, never a pickle.

    <dir>/bundle.json        metadata: format, feature-schema version, backend and its version,
                             machine (CPU model, flags), date, sample counts, held-out accuracy
                             per family, overhead calibration, generic fallback coefficients,
                             and a sha256 of every file below
    <dir>/rules.json         the fusion rules the kernels were formed with
    <dir>/models/<family>.json   one XGBoost model per kernel family (Booster.save_model JSON)
    <dir>/samples.jsonl.gz   the build's sample log: every profiled model and its timed kernels,
                             so that the models can be retrained (leave-one-family-out); not
                             read to predict

Loading refuses (``BundleError``) a missing or corrupted file and another feature-schema
version; it warns when the CPU or the backend version differ from the bundle's.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import platform
import shutil
import warnings as _warnings
from pathlib import Path

from ..errors import BundleError, MismatchWarning, unknown_name
from .cost_model import FamilyModel
from .fallback import GenericModel, baseline_from_dict

FORMAT = "nnmeter-tvm-bundle"
FORMAT_VERSION = 1
SHIPPED = Path(__file__).parent / "bundles"
BACKENDS = ("ort-cpu", "tvm-llvm")
_BACKEND_PACKAGE = {"ort-cpu": "onnxruntime", "tvm-llvm": "apache-tvm"}
# the CPU flags that change which kernels a backend can use
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
               "avx512_vnni", "avx512_bf16", "amx_tile")


# ---- machine and backend description -----------------------------------------------------
def machine_info() -> dict:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"cpu_model": model, "simd_flags": sorted(f for f in _SIMD_FLAGS if f in flags),
            "cores": os.cpu_count(), "machine": platform.machine()}


def backend_version(backend: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for pkg in (_BACKEND_PACKAGE.get(backend), "onnxruntime-gpu" if backend == "ort-cpu" else None):
        if pkg:
            try:
                return version(pkg)
            except PackageNotFoundError:
                continue
    return None


def schema_version():
    from .. import features

    return getattr(features, "SCHEMA_VERSION", None)


# ---- rules ------------------------------------------------------------------------------
def _rules_module():
    from .. import rules

    return rules


def load_backend_rules(backend_or_path):
    """The fusion rules for a backend name (``rules/<backend>.json``) or a rules file."""
    return _rules_module().load(backend_or_path)


def _rules_path(backend: str) -> Path:
    return Path(_rules_module().path_for(backend))


# ---- save ---------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_bundle(predictor, directory, rules_file=None, extra: dict | None = None) -> Path:
    """Write ``predictor`` as a bundle folder; returns the path of its ``bundle.json``."""
    out = Path(directory)
    (out / "models").mkdir(parents=True, exist_ok=True)
    for old in (out / "models").glob("*.json"):
        old.unlink()
    rules_src = Path(rules_file or getattr(predictor, "rules_file", None)
                     or _rules_path(predictor.backend))
    if not rules_src.is_file():
        raise BundleError(f"rules file {rules_src} not found; run `nnmeter-tvm detect-rules "
                          f"--backend {predictor.backend}` first")
    if rules_src.resolve() != (out / "rules.json").resolve():
        shutil.copyfile(rules_src, out / "rules.json")
    families = {}
    for family, model in sorted(predictor.models.items()):
        path = out / "models" / f"{family}.json"
        model.save(path)
        families[family] = {"file": f"models/{family}.json", "sha256": _sha256(path),
                            "target": model.target, "features": list(model.feature_names),
                            **model.info}
        if model.baseline is not None:
            families[family]["baseline"] = model.baseline.to_dict()
    meta = dict(predictor.meta)
    meta.pop("source", None)
    meta.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": schema_version(),
        "backend": {"name": predictor.backend, "version": backend_version(predictor.backend)},
        "machine": meta.get("machine") or machine_info(),
        "created": meta.get("created") or datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "rules": {"file": "rules.json", "sha256": _sha256(out / "rules.json")},
        "families": families,
        "fallback": predictor.fallback.to_dict(),
        "overhead": dict(predictor.overhead),
    })
    meta.update(extra or {})
    path = out / "bundle.json"
    path.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    return path


# ---- load ---------------------------------------------------------------------------------
def load_bundle(directory, check_machine: bool = True, models: bool = True):
    """Load a bundle folder as a :class:`Predictor`; see the module docstring for the checks.

    ``models=False`` reads its metadata and rules only, whatever its feature schema: what a
    retraining from the samples it carries needs (:func:`nnmeter_tvm.builder.build.retrain`)."""
    from .predictor import Predictor

    root = Path(directory)
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"{root}: not a predictor bundle (no bundle.json); build one with "
                          "`nnmeter-tvm build --backend NAME -o DIR`")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: corrupted bundle metadata ({exc}); rebuild the "
                          "bundle") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a {FORMAT} file (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{meta_path}: bundle format version {meta.get('format_version')!r}, "
                          f"this nnmeter-tvm reads {FORMAT_VERSION}; rebuild the bundle")
    if models:
        _check_schema(root, meta)
    try:
        backend = meta["backend"]["name"]
        families = meta["families"]
        rules_meta = meta["rules"]
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{meta_path}: missing field {exc}; the bundle is incomplete") from None

    rules_file = _check_file(root, rules_meta["file"], rules_meta.get("sha256"))
    loaded = {}
    for family, entry in (families.items() if models else ()):
        path = _check_file(root, entry["file"], entry.get("sha256"))
        info = {k: v for k, v in entry.items()
                if k not in ("file", "sha256", "target", "features", "baseline")}
        try:
            baseline = baseline_from_dict(entry["baseline"]) if entry.get("baseline") else None
            loaded[family] = FamilyModel.load(family, path, entry["target"],
                                              entry.get("features", ()), info, baseline)
        except Exception as exc:
            raise BundleError(f"{path}: cannot load the XGBoost model for family {family!r} "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                              "rebuild the bundle") from None
    warns = _mismatch_warnings(meta, backend) if check_machine else []
    for w in warns:
        _warnings.warn(w, MismatchWarning, stacklevel=3)
    meta["source"] = str(root)
    return Predictor(backend, rules_file=rules_file, models=loaded,
                     fallback=GenericModel.from_dict(meta["fallback"]) if meta.get("fallback")
                     else None,
                     overhead=meta.get("overhead"), meta=meta, warnings=warns,
                     name=meta.get("name") or root.name)


def _check_schema(root: Path, meta: dict) -> None:
    """The bundle's feature schema is this one: trees read features by column, and a line of
    another schema reads other columns (schema 3's read the FLOPs of blocked channels)."""
    got, current = meta.get("schema_version"), schema_version()
    if got != current:
        raise BundleError(f"{root}: built with feature-schema version {got!r}, this nnmeter-tvm "
                          f"computes version {current!r}; train it again from its samples with "
                          f"`nnmeter-tvm build --retrain {root} -o NEW_DIR` (or rebuild it)")


def _check_file(root: Path, rel: str, sha: str | None) -> Path:
    path = root / rel
    if not path.is_file():
        raise BundleError(f"{root}: bundle file {rel} is missing; the bundle is incomplete, "
                          "rebuild it")
    if sha and _sha256(path) != sha:
        raise BundleError(f"{path}: checksum differs from bundle.json (corrupted or edited); "
                          "rebuild the bundle")
    return path


def _mismatch_warnings(meta: dict, backend: str) -> list[str]:
    out = []
    built = meta.get("backend", {}).get("version")
    now = backend_version(backend)
    if built and now and built != now:
        out.append(f"predictor bundle built for {backend} {built}, running {now}: predictions "
                   "may be off; rebuild with `nnmeter-tvm build`")
    here, there = machine_info(), meta.get("machine", {})
    if there.get("cpu_model") and there.get("cpu_model") != here["cpu_model"]:
        out.append(f"predictor bundle built on CPU {there['cpu_model']!r}, this CPU is "
                   f"{here['cpu_model']!r}: predictions may be off; "
                   + _remedy(backend, here["cpu_model"]))
    elif "simd_flags" in there and there["simd_flags"] != here["simd_flags"]:
        out.append(f"predictor bundle built on a CPU with {there['simd_flags']}, this CPU has "
                   f"{here['simd_flags']}: predictions may be off; "
                   + _remedy(backend, here["cpu_model"]))
    return out


def _remedy(backend: str, cpu_model: str) -> str:
    """What to use instead of a bundle built on another CPU: a shipped bundle of ``backend``
    built on this CPU model, else a build here, or a transfer from the bundle (on the Xeon: 43 %
    of a full build's time, 86-88 % of the zoo within ±10 % against 88.6 %).  Why say it:
    across CPUs the kernels' relative costs change (the AMD EPYC bundle priced 680 zoo models
    measured on an Intel Xeon within ±10 % for 50 % of them, a build on the Xeon for 92 %:
    ``benchmarks/results/xeon/README.md``)."""
    for name, (other, cpu) in _shipped_machines().items():
        if other == backend and cpu == cpu_model:
            return f"the shipped bundle {name!r} was built on this CPU (--predictor {name})"
    return (f"build one here with `nnmeter-tvm build --backend {backend} -o DIR`, or in less "
            "than half its time from this bundle with `nnmeter-tvm build --transfer-from BUNDLE "
            "-o DIR` (benchmarks/results/xeon/transfer-build/)")


def shipped_names() -> list[str]:
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "bundle.json").is_file()) \
        if SHIPPED.is_dir() else []


def _shipped_machines() -> dict[str, tuple]:
    """(backend, CPU model) of each shipped bundle, by name."""
    return _machines_in(SHIPPED, tuple(shipped_names()))


@functools.lru_cache(maxsize=None)
def _machines_in(root: Path, names: tuple) -> dict[str, tuple]:
    """Read once per set of bundles: every command's parser asks (``cli.predictor_help``)."""
    out = {}
    for name in names:
        meta = json.loads((root / name / "bundle.json").read_text())
        out[name] = (meta.get("backend", {}).get("name"), meta.get("machine", {}).get("cpu_model"))
    return out


def shipped_cpus() -> dict[str, str]:
    """The CPU each shipped bundle was built on, by name (for help texts)."""
    return {name: cpu or "unknown CPU" for name, (_, cpu) in _shipped_machines().items()}


def load_predictor(name_or_dir="ort-cpu", models: bool = True):
    """A predictor by shipped name (``"ort-cpu"``, ``"tvm-llvm"``) or a bundle folder
    (``models=False``: see :func:`load_bundle`).

    A backend name with no shipped bundle yet gives a fallback-only predictor that says so in
    every report.
    """
    from .predictor import Predictor

    if isinstance(name_or_dir, Predictor):
        return name_or_dir
    text = str(name_or_dir)
    path = Path(text)
    if path.is_dir() or os.sep in text or text.endswith(".json"):
        return load_bundle(path.parent if path.name == "bundle.json" else path, models=models)
    if (SHIPPED / text / "bundle.json").is_file():
        return load_bundle(SHIPPED / text, models=models)
    if text in BACKENDS:
        return Predictor(text, warnings=(f"no trained bundle for {text}: every kernel is priced "
                                         "by the generic FLOPs/bytes fallback; build one with "
                                         f"`nnmeter-tvm build --backend {text}`",))
    raise unknown_name("predictor", text, set(shipped_names()) | set(BACKENDS))
