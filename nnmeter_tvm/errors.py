"""One exception hierarchy for the project.

Every error a user can cause derives from :class:`NNMeterError`; the CLI catches it and prints
its message as one line (exit code 2).  Subclasses also derive from the matching builtin so that
callers who catch ``ValueError`` or ``FileNotFoundError`` keep working.
Messages name the object (file, node, field), what was expected, what was received, and the fix.
"""


class NNMeterError(Exception):
    """Root of every error this project raises on purpose."""


class ModelLoadError(NNMeterError, ValueError):
    """The model file is missing, not ONNX, truncated or fails the ONNX checker."""


class ShapeError(NNMeterError, ValueError):
    """A tensor shape is unknown or symbolic and no --input-shape was given for it."""


class UnknownNameError(NNMeterError, KeyError):
    """A registry (backends, kernel types, zoo families, predictors) has no entry of that name."""

    def __str__(self):  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class BackendError(NNMeterError, RuntimeError):
    """A backend cannot run the model (unsupported op, compile failure)."""


class MeasurementError(NNMeterError, RuntimeError):
    """A measurement failed or exceeded its time limit; it is recorded as failed, never a number."""


class RulesError(NNMeterError, ValueError):
    """A fusion-rules file is missing, malformed or of another schema version."""


class BundleError(NNMeterError, ValueError):
    """A predictor bundle is missing, corrupted or of another feature-schema version."""


class MismatchWarning(UserWarning):
    """A predictor bundle was built on another CPU or backend version: predictions may be off.
    Every report of that predictor carries the same text (``Report.warnings``)."""


class BudgetExceededError(NNMeterError, RuntimeError):
    """A predicted latency exceeds the latency budget the user set."""


def unknown_name(kind: str, name: str, valid) -> UnknownNameError:
    """The standard error for a registry lookup that failed: lists the valid names."""
    return UnknownNameError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
