"""``nnmeter_tvm.testing.assert_latency_within``: pass, and a readable failure message."""
from __future__ import annotations

import pytest

from nnmeter_tvm.testing import assert_latency_within
from test_passes_support import predictor, relax_module, zoo_model


def test_within_budget_returns_the_report():
    p = predictor("ort-cpu")
    total = p.predict(zoo_model("resnet")).total_ms
    rep = assert_latency_within(zoo_model("resnet"), total * 1.5, predictor=p)
    assert rep.total_ms == pytest.approx(total)


def test_failure_message_names_total_budget_and_heaviest_kernels():
    p = predictor("ort-cpu")
    rep = p.predict(zoo_model("resnet"))
    budget = rep.total_ms / 2
    with pytest.raises(AssertionError) as info:
        assert_latency_within(zoo_model("resnet"), budget, predictor=p)
    text = str(info.value)
    first = text.splitlines()[0]
    assert first.startswith(f"predicted latency {rep.total_ms:.3f} ms exceeds the budget of "
                            f"{budget:.3f} ms")
    top = sorted(rep.kernels, key=lambda k: -k.ms)[:5]
    assert all(k.name in text for k in top)
    assert "fallback" in text or not rep.fallback_kernels


def test_relax_module_is_accepted():
    p = predictor("ort-cpu")
    with pytest.raises(AssertionError, match="exceeds the budget"):
        assert_latency_within(relax_module("resnet", "pre"), 1e-6, predictor=p)


@pytest.mark.parametrize("budget", [0, -2.0, None])
def test_bad_budget_is_a_value_error(budget):
    with pytest.raises(ValueError, match="budget_ms"):
        assert_latency_within(zoo_model("resnet"), budget)
