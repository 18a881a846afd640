"""Build script: the Python packages plus the pybind11 feature extractor ``nnmeter_tvm._features``.

The top-level ``passes/`` and ``rules/`` folders are installed as ``nnmeter_tvm.passes`` and
``nnmeter_tvm.rules`` (see shared/STYLE.md, packaging note).  A failed C++ build fails the
install: there is no silent pure-Python fallback.
"""
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ext = Pybind11Extension(
    "nnmeter_tvm._features",
    sorted(glob("cpp_ext/*.cpp")),
    depends=sorted(glob("cpp_ext/*.h")),  # a changed header rebuilds (an incremental build did not)
    include_dirs=["cpp_ext"],
    cxx_std=17,
    extra_compile_args=["-O3"],
)

setup(
    packages=[
        "nnmeter_tvm",
        "nnmeter_tvm.backends",
        "nnmeter_tvm.builder",
        "nnmeter_tvm.cli",
        "nnmeter_tvm.features",
        "nnmeter_tvm.kernels",
        "nnmeter_tvm.predictors",
        "nnmeter_tvm.zoo",
        "nnmeter_tvm.passes",
        "nnmeter_tvm.rules",
    ],
    package_dir={"nnmeter_tvm.passes": "passes", "nnmeter_tvm.rules": "rules"},
    package_data={"nnmeter_tvm.rules": ["*.json"],
                  # a bundle: metadata, rules, models and the samples they were trained on
                  "nnmeter_tvm.predictors": ["bundles/*/*.json", "bundles/*/*.jsonl.gz",
                                             "bundles/*/models/*.json"],
                  "nnmeter_tvm.zoo": ["examples/*.onnx"]},
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
)
