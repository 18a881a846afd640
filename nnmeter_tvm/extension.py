"""Loading the C++ extension ``nnmeter_tvm._features`` (feature encoder, tree evaluator, kernel
partition).  There is no pure-Python fallback: a missing or stale build fails loudly, with how
to rebuild."""
from __future__ import annotations

REBUILD = "`python setup.py build_ext --inplace`"


def load_extension(what: str, needs: str):
    """The compiled module; ``what`` names the part the caller needs (for the message) and
    ``needs`` an attribute a current build has."""
    try:
        from . import _features as ext
    except ImportError as exc:
        raise ImportError(
            f"nnmeter_tvm._features (the C++ {what}) is not built or does not load ({exc}). "
            f"Reinstall with a C++17 compiler available: `pip install -e .` or {REBUILD}."
        ) from exc
    if not hasattr(ext, needs):
        raise ImportError(f"nnmeter_tvm._features is stale (it has no {what}: {needs} is "
                          f"missing); rebuild it ({REBUILD}).")
    return ext
