"""Test helpers shipped with the package (as ``xgboost.testing`` is): latency budgets in pytest.

    from nnmeter_tvm.testing import assert_latency_within

    def test_model_fits_the_budget():
        assert_latency_within("model.onnx", budget_ms=12.0, predictor="ort-cpu")
"""
from __future__ import annotations


def predict_report(model, predictor="ort-cpu", input_shapes=None):
    """The prediction :class:`~nnmeter_tvm.report.Report` for an ONNX model (path or
    ``ModelProto``), a :class:`~nnmeter_tvm.graph.Graph`, or a Relax ``IRModule``."""
    from .predictors import load_predictor

    pred = load_predictor(predictor)
    if type(model).__name__ == "IRModule":  # a Relax module: the compiler pass's view of it
        from .passes import NNMeterEstimate, report

        return report(NNMeterEstimate(pred)(model))
    return pred.predict(model, input_shapes)


def assert_latency_within(model, budget_ms: float, predictor="ort-cpu", input_shapes=None):
    """Fail with the total, the budget and the heaviest kernels when the predicted latency of
    ``model`` on ``predictor`` is over ``budget_ms``; return the report otherwise."""
    from .passes.estimate import budget_message

    if budget_ms is None or not budget_ms > 0:
        raise ValueError(f"assert_latency_within: budget_ms must be a positive number of "
                         f"milliseconds, got {budget_ms!r}")
    rep = predict_report(model, predictor, input_shapes)
    if rep.total_ms > budget_ms:
        message = budget_message(rep, float(budget_ms))
        if rep.fallback_kernels:
            message += (f"\nnote: {len(rep.fallback_kernels)} of {len(rep.kernels)} kernels are "
                        "priced by the generic fallback (no trained model for their type)")
        if rep.extrapolated_kernels:
            message += (f"\nnote: {len(rep.extrapolated_kernels)} of {len(rep.kernels)} kernels "
                        "are beyond their cost model's training range (extrapolated)")
        raise AssertionError(message)
    return rep
