"""Rendering a :class:`~nnmeter_tvm.report.Report`: a text table or JSON.  No computation here."""
from __future__ import annotations

import json


def _short_nodes(nodes, width: int = 48) -> str:
    text = ",".join(nodes) if nodes else "(inserted)"
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(report, max_rows: int | None = None) -> str:
    """The per-kernel table: kernel, type, member ops, predicted ms, share of total
    (and measured ms and error when the report has per-kernel measurements)."""
    measured = any(k.measured_ms is not None for k in report.kernels)
    head = ["kernel", "type", "nodes", "pred ms", "share"]
    if measured:
        head += ["meas ms", "error"]
    rows = [head]
    total = report.total_ms or 1.0
    kernels = report.kernels if max_rows is None else report.kernels[:max_rows]
    for k in kernels:
        row = [k.name + (" *" if k.fallback else "") + (" ~" if k.extrapolated else ""),
               k.type, _short_nodes(k.nodes),
               f"{k.ms:.4f}", f"{100 * k.ms / total:5.1f}%"]
        if measured:
            if k.measured_ms is not None and k.measured_ms > 0:
                row += [f"{k.measured_ms:.4f}", f"{100 * (k.ms - k.measured_ms) / k.measured_ms:+.1f}%"]
            else:
                row += ["-", "-"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {3, 4, 5, 6}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    if max_rows is not None and len(report.kernels) > max_rows:
        lines.append(f"... {len(report.kernels) - max_rows} more kernels")
    p = report.predictor
    fixed = p.get("fixed_overhead_ms", 0.0) or 0.0
    lines.append("")
    lines.append(f"model {report.model}: {len(report.kernels)} kernels, predicted "
                 f"{report.total_ms:.4f} ms (kernels {report.total_ms - fixed:.4f} + per-run "
                 f"overhead {fixed:.4f}) with predictor {p.get('name')} [{p.get('backend')}]")
    if report.measured_ms is not None:
        lines.append(f"measured {report.measured_ms:.4f} ms, error {100 * report.error:+.1f}%")
    if measured:
        per_kernel = p.get("per_kernel_overhead_ms", 0.0) or 0.0
        lines.append(f"(meas ms: the backend profiler's time of each kernel, which includes the "
                     f"profiler's own cost; pred ms includes the fitted per-kernel correction "
                     f"{1000 * per_kernel:+.1f} µs, so the smallest kernels differ most)")
    if report.fallback_kernels:
        lines.append(f"* {len(report.fallback_kernels)} kernel(s) on the generic FLOPs/bytes "
                     "fallback (no trained model for their type)")
    if report.extrapolated_kernels:
        lines.append(f"~ {len(report.extrapolated_kernels)} kernel(s) beyond the range of their "
                     "cost model's training samples")
    for w in report.warnings:
        if "generic FLOPs/bytes fallback (no trained model)" not in w:
            lines.append(f"warning: {w}")
    return "\n".join(lines)


def render_json(report) -> str:
    return json.dumps(report.to_dict(), indent=1)
