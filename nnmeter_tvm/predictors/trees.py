"""An evaluator of XGBoost tree ensembles in C++ (``cpp_ext/tree_table.cpp``).

XGBoost's ``inplace_predict`` costs about 0.15 ms per call whatever the batch, one call per
kernel family: most of the time of predicting one model.  Here every family's trees are
flattened once into a single node table (children of a node stored side by side; a leaf points
at itself), which the extension copies once (``_features.Forest``) and walks for each (kernel,
tree) pair, adding a kernel's leaves in tree order in double precision.  The parity tests check
that it agrees with XGBoost, and bit for bit with a NumPy walk of the same table.

Split rule as XGBoost's: go left when ``x < threshold``.  Features are finite (no missing
values), so XGBoost's default direction for missing values is not needed.
"""
from __future__ import annotations

import json

import numpy as np

from ..features import _extension


def _base_score(learner: dict) -> float:
    text = learner["learner_model_param"]["base_score"]
    value = json.loads(text) if text.startswith("[") else float(text)
    return float(value[0] if isinstance(value, list) else value)


def booster_arrays(booster) -> tuple[float, list[dict]]:
    """(base score, trees) from the booster's own JSON."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    trees = learner["gradient_booster"]["model"]["trees"]
    return _base_score(learner), trees


class TreeTable:
    """The trees of several families in one node table.

    ``feat``/``thr``: split feature and threshold; ``child``: index of the left child (the
    right one follows it); a leaf has ``child`` = itself and ``thr`` = +inf, so it stays put;
    ``value``: a leaf's output.  ``depth``: the deepest tree's depth.
    """

    def __init__(self, boosters: dict):
        feat, thr, child, value = [], [], [], []
        self.roots: dict[str, np.ndarray] = {}
        self.base: dict[str, float] = {}
        self.depth = 0
        size = 0
        for family, booster in boosters.items():
            base, trees = booster_arrays(booster)
            self.base[family] = base
            roots = []
            for tree in trees:
                f, t, c, v, d = _flatten(tree, size)
                roots.append(size)
                size += len(f)
                feat.append(f)
                thr.append(t)
                child.append(c)
                value.append(v)
                self.depth = max(self.depth, d)
            self.roots[family] = np.array(roots, dtype=np.int64)
        self.feat = np.concatenate(feat) if feat else np.zeros(0, np.int64)
        self.thr = np.concatenate(thr) if thr else np.zeros(0, np.float32)
        self.child = np.concatenate(child) if child else np.zeros(0, np.int64)
        self.value = np.concatenate(value) if value else np.zeros(0, np.float32)
        self._forest = _extension().Forest(self.feat, self.thr, self.child, self.value)

    def pairs(self, family: str, rows: int) -> int:
        return rows * len(self.roots.get(family, ()))

    def predict(self, batches: dict) -> dict:
        """Raw margins for ``{family: X (n x F)}``: ``{family: array(n)}``."""
        margins = self._forest.margins
        return {f: margins(self.roots[f], x) + self.base[f] for f, x in batches.items()}


def _flatten(tree: dict, offset: int):
    """One XGBoost tree renumbered breadth-first with siblings adjacent, shifted by offset."""
    left, right = tree["left_children"], tree["right_children"]
    split_idx, cond = tree["split_indices"], tree["split_conditions"]
    order, new_id = [0], {0: 0}
    depth_of = {0: 0}
    i = 0
    while i < len(order):
        old = order[i]
        if left[old] != -1:
            for c in (left[old], right[old]):
                new_id[c] = len(order)
                depth_of[c] = depth_of[old] + 1
                order.append(c)
        i += 1
    n = len(order)
    feat = np.zeros(n, np.int64)
    thr = np.full(n, np.inf, np.float32)
    child = np.zeros(n, np.int64)
    value = np.zeros(n, np.float32)
    for new, old in enumerate(order):
        if left[old] == -1:
            child[new] = offset + new
            value[new] = cond[old]
        else:
            feat[new] = split_idx[old]
            thr[new] = cond[old]
            child[new] = offset + new_id[left[old]]
            assert new_id[right[old]] == new_id[left[old]] + 1
    return feat, thr, child, value, max(depth_of.values())
