"""The compiled tree evaluator agrees with XGBoost's own prediction, and exactly with a NumPy
walk of the same node table (the evaluator it replaced: same leaves, same order of sums)."""
import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from nnmeter_tvm.features import _extension  # noqa: E402
from nnmeter_tvm.predictors.trees import TreeTable  # noqa: E402


def numpy_margins(table: TreeTable, batches: dict) -> dict:
    """Reference: every (row, tree) pair walked level by level, leaves summed by np.bincount."""
    out = {}
    for f, x in batches.items():
        roots = table.roots[f]
        node = np.tile(roots, len(x))
        row = np.repeat(np.arange(len(x)), len(roots))
        x = np.asarray(x, dtype=np.float32)
        for _ in range(table.depth):
            node = table.child[node] + (x[row, table.feat[node]] >= table.thr[node])
        out[f] = np.bincount(row, weights=table.value[node], minlength=len(x)) + table.base[f]
    return out


def boosters_and_data(depth):
    rng = np.random.default_rng(0)
    boosters, data = {}, {}
    for i, width in enumerate((5, 12, 31)):
        x = (rng.random((300, width)) * rng.choice([1, 100, 1e6], width)).astype(np.float32)
        y = np.log1p(x[:, 0] * x[:, -1]) + (x[:, 1] > np.median(x[:, 1]))
        boosters[f"f{i}"] = xgb.train({"max_depth": depth, "eta": 0.3, "nthread": 1,
                                       "base_score": float(y.mean())},
                                      xgb.DMatrix(x, label=y), 40)
        data[f"f{i}"] = x
    return boosters, data


@pytest.mark.parametrize("depth", [2, 6])
def test_tree_table_matches_xgboost_and_the_numpy_walk(depth):
    boosters, data = boosters_and_data(depth)
    table = TreeTable(boosters)
    for n in (1, 7, 17, 300):  # around the evaluator's block of rows
        batch = {f: x[:n] for f, x in data.items()}
        got = table.predict(batch)
        ref = numpy_margins(table, batch)
        for f, booster in boosters.items():
            np.testing.assert_array_equal(got[f], ref[f])
            np.testing.assert_allclose(got[f], booster.inplace_predict(data[f][:n]),
                                       rtol=1e-5, atol=1e-5)


def test_empty_batch():
    rng = np.random.default_rng(1)
    x = rng.random((50, 3)).astype(np.float32)
    table = TreeTable({"a": xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(x, label=x[:, 0]), 5)})
    assert table.predict({"a": x[:0]})["a"].shape == (0,)


def test_forest_refuses_a_bad_table_and_too_narrow_rows():
    forest_type = _extension().Forest
    feat, thr = np.array([2, 0, 0]), np.array([0.5, np.inf, np.inf], np.float32)
    value = np.array([0, 1, 2], np.float32)
    with pytest.raises(ValueError, match="child"):   # a child before its node
        forest_type(feat, thr, np.array([0, 0, 2]), value)
    with pytest.raises(ValueError, match="child"):   # the right child past the end
        forest_type(feat, thr, np.array([2, 1, 2]), value)
    forest = forest_type(feat, thr, np.array([1, 1, 2]), value)
    x = np.array([[0, 0, 0.4], [0, 0, 0.6]], np.float32)
    assert forest.margins(np.array([0]), x).tolist() == [1.0, 2.0]
    with pytest.raises(IndexError, match="feature 2"):
        forest.margins(np.array([0]), x[:, :2])
    with pytest.raises(IndexError, match="root"):
        forest.margins(np.array([3]), x)
