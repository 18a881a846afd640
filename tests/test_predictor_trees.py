"""The NumPy tree evaluator agrees with XGBoost's own prediction."""
import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from nnmeter_tvm.predictors.trees import TreeTable  # noqa: E402


@pytest.mark.parametrize("depth", [2, 6])
def test_tree_table_matches_xgboost(depth):
    rng = np.random.default_rng(0)
    boosters, data = {}, {}
    for i, width in enumerate((5, 12, 31)):
        x = (rng.random((300, width)) * rng.choice([1, 100, 1e6], width)).astype(np.float32)
        y = np.log1p(x[:, 0] * x[:, -1]) + (x[:, 1] > np.median(x[:, 1]))
        boosters[f"f{i}"] = xgb.train({"max_depth": depth, "eta": 0.3, "nthread": 1,
                                       "base_score": float(y.mean())},
                                      xgb.DMatrix(x, label=y), 40)
        data[f"f{i}"] = x
    table = TreeTable(boosters)
    for n in (1, 7, 300):
        got = table.predict({f: x[:n] for f, x in data.items()})
        for f, booster in boosters.items():
            np.testing.assert_allclose(got[f], booster.inplace_predict(data[f][:n]),
                                       rtol=1e-5, atol=1e-5)


def test_empty_batch():
    rng = np.random.default_rng(1)
    x = rng.random((50, 3)).astype(np.float32)
    table = TreeTable({"a": xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(x, label=x[:, 0]), 5)})
    assert table.predict({"a": x[:0]})["a"].shape == (0,)
