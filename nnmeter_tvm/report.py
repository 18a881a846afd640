"""The prediction report: a structured result; rendering (table, JSON, TVM attrs) is separate."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class KernelPrediction(NamedTuple):
    """One kernel's prediction (a named tuple: NAS builds one per kernel of thousands of
    models, and a tuple is made about three times faster than a frozen dataclass)."""

    name: str
    type: str
    nodes: tuple[str, ...]
    ms: float
    fallback: bool  # True when no trained cost model covers this kernel type
    cost_model: str  # the cost model that produced ``ms``, e.g. "conv" or "fallback:generic"
    measured_ms: float | None = None
    extrapolated: bool = False  # beyond the range of its cost model's training samples


@dataclass(frozen=True)
class Report:
    model: str
    predictor: dict
    total_ms: float
    kernels: tuple[KernelPrediction, ...]
    measured_ms: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fallback_kernels(self) -> tuple[KernelPrediction, ...]:
        return tuple(k for k in self.kernels if k.fallback)

    @property
    def extrapolated_kernels(self) -> tuple[KernelPrediction, ...]:
        return tuple(k for k in self.kernels if k.extrapolated)

    @property
    def error(self) -> float | None:
        """Relative error of the prediction against the measurement, when there is one."""
        if self.measured_ms is None or self.measured_ms <= 0:
            return None
        return (self.total_ms - self.measured_ms) / self.measured_ms

    def to_dict(self) -> dict:
        """The JSON form documented in the README (``nnmeter-tvm predict --json``)."""
        out = {
            "model": self.model,
            "predictor": dict(self.predictor),
            "total_ms": self.total_ms,
            "kernels": [
                {"name": k.name, "type": k.type, "nodes": list(k.nodes), "ms": k.ms,
                 "fallback": k.fallback, "extrapolated": k.extrapolated,
                 "cost_model": k.cost_model}
                | ({"measured_ms": k.measured_ms} if k.measured_ms is not None else {})
                for k in self.kernels
            ],
            "fallback_kernels": len(self.fallback_kernels),
            "extrapolated_kernels": len(self.extrapolated_kernels),
            "warnings": list(self.warnings),
        }
        if self.measured_ms is not None:
            out["measured_ms"] = self.measured_ms
            out["error"] = self.error
        return out
