"""Predictors: price a model's kernels with per-family cost models and sum.

``load_predictor("ort-cpu")`` loads a shipped bundle by name, or a bundle folder by path.
"""
from .bundle import load_bundle, load_predictor, save_bundle
from .predictor import Predictor

__all__ = ["Predictor", "load_predictor", "load_bundle", "save_bundle"]
