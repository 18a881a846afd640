"""Pure-NumPy reference of the C++ encoder, written from schema.py's conventions.

It is not a fallback (``encode`` never calls it): the parity tests compare the extension
against it on random configurations, column by column, by name.
"""
from __future__ import annotations

import numpy as np

from .configs import as_rows
from .schema import EPILOGUE_COUNTS, LAYOUT_CODES, family


def _align(out: dict, base: str, x: np.ndarray) -> None:
    for m in (4, 8, 16):
        out[f"{base}_up{m}"] = np.ceil(x / m) * m
    for m in (4, 8, 16):
        out[f"{base}_rem{m}"] = np.fmod(x, m)


def _cost(out, flops, params, bytes_in, out_elems, db):
    out["flops"] = flops
    out["params"] = params
    out["bytes_in"] = bytes_in
    out["bytes_weight"] = params * db
    out["bytes_out"] = out_elems * db
    out["arith_intensity"] = flops / np.maximum(bytes_in + out["bytes_weight"] + out["bytes_out"], 1.0)


def _tail(out, r, flops, params, in_elems, out_elems):
    db = r["dtype_bytes"]
    ops = sum(r[k] for k in EPILOGUE_COUNTS)
    ep_flops = (ops - r["ep_movement"] - r["ep_other"] + r["ep_bn"]) * out_elems
    out["ep_ops"] = ops
    out["ep_flops"] = ep_flops
    out["ep_bytes_in"] = r["ep_extra_elems"] * db
    _cost(out, flops + ep_flops, params, in_elems * db + out["ep_bytes_in"], out_elems, db)


def _one(x):
    return np.maximum(x, 1.0)


def _conv(r, out, transpose):
    sh, sw, dh, dw, g = _one(r["sh"]), _one(r["sw"]), _one(r["dh"]), _one(r["dw"]), _one(r["groups"])
    b, cin, cout, kh, kw = r["batch"], r["cin"], r["cout"], r["kh"], r["kw"]
    if transpose:
        hout = (r["hin"] - 1) * sh - r["pad_t"] - r["pad_b"] + dh * (kh - 1) + r["out_pad_h"] + 1
        wout = (r["win"] - 1) * sw - r["pad_l"] - r["pad_r"] + dw * (kw - 1) + r["out_pad_w"] + 1
        weights = cin * (cout / g) * kh * kw
        macs = b * r["hin"] * r["win"] * weights
    else:
        hout = np.floor((r["hin"] + r["pad_t"] + r["pad_b"] - dh * (kh - 1) - 1) / sh) + 1
        wout = np.floor((r["win"] + r["pad_l"] + r["pad_r"] - dw * (kw - 1) - 1) / sw) + 1
        weights = cout * (cin / g) * kh * kw
    hout, wout = np.maximum(hout, 0.0), np.maximum(wout, 0.0)
    if not transpose:
        macs = b * hout * wout * weights
    out_elems = b * cout * hout * wout
    out.update(hout=hout, wout=wout, cin_per_group=cin / g, cout_per_group=cout / g)
    _align(out, "cin", cin)
    _align(out, "cout", cout)
    bias = r["has_bias"]
    _tail(out, r, 2 * macs + bias * out_elems, weights + bias * cout, b * cin * r["hin"] * r["win"], out_elems)


def _gemm(r, out):
    b, m, k, n, bb, bc, bias = (r[f] for f in ("batch", "m", "k", "n", "b_batch", "b_const", "has_bias"))
    out_elems = b * m * n
    _align(out, "k", k)
    _align(out, "n", n)
    _tail(out, r, 2 * b * m * k * n + bias * out_elems, bc * bb * k * n + bias * n,
          b * m * k + (1 - bc) * bb * k * n, out_elems)


def _pool_out(x, k, s, p0, p1, ceil_mode):
    q = (x + p0 + p1 - k) / s
    o = np.where(ceil_mode != 0, np.ceil(q), np.floor(q)) + 1
    o = np.where((ceil_mode != 0) & ((o - 1) * s >= x + p0), o - 1, o)
    return np.maximum(o, 0.0)


def _pool(r, out):
    sh, sw = _one(r["sh"]), _one(r["sw"])
    hout = _pool_out(r["hin"], r["kh"], sh, r["pad_t"], r["pad_b"], r["ceil_mode"])
    wout = _pool_out(r["win"], r["kw"], sw, r["pad_l"], r["pad_r"], r["ceil_mode"])
    b, c = r["batch"], r["c"]
    out_elems = b * c * hout * wout
    out.update(hout=hout, wout=wout)
    _align(out, "c", c)
    _tail(out, r, out_elems * r["kh"] * r["kw"], 0 * c, b * c * r["hin"] * r["win"], out_elems)


def _globalpool(r, out):
    b, c = r["batch"], r["c"]
    e = b * c * r["hin"] * r["win"]
    _align(out, "c", c)
    _tail(out, r, e, 0 * c, e, b * c)


def _elementwise(r, out):
    e = r["batch"] * r["c"] * r["h"] * r["w"]
    out["elems"] = e
    _align(out, "c", r["c"])
    _tail(out, r, e * np.where(r["op_code"] == 0, 2.0, 1.0), r["weight_elems"], e, e)


def _binary(r, out):
    e = r["batch"] * r["c"] * r["h"] * r["w"]
    ea, eb, bc = r["a_elems"], r["b_elems"], r["b_const"]
    out.update(elems=e, a_bcast=(ea < e) * 1.0, b_bcast=(eb < e) * 1.0, bcast_ratio=e / _one(eb))
    _align(out, "c", r["c"])
    _tail(out, r, e, bc * eb, ea + (1 - bc) * eb, e)


def _concat(r, out):
    c = r["c1"] + r["c2"] + r["c3"] + r["c4"] + r["c_rest"]
    e = r["outer"] * c * r["inner"]
    out["c_total"] = c
    _align(out, "c_total", c)
    _tail(out, r, 0 * e, 0 * e, e, e)


def _split(r, out):
    ein = r["outer"] * r["axis_len"] * r["inner"]
    eout = r["outer"] * r["out_axis_total"] * r["inner"]
    out.update(in_elems=ein, out_elems=eout)
    _align(out, "axis_len", r["axis_len"])
    _tail(out, r, 0 * ein, 0 * ein, ein, eout)


def _pad(r, out):
    hout = r["hin"] + r["pad_t"] + r["pad_b"]
    wout = r["win"] + r["pad_l"] + r["pad_r"]
    cout = r["c"] + r["pad_c"]
    out.update(hout=hout, wout=wout, cout=cout)
    _align(out, "c", r["c"])
    ein = r["batch"] * r["c"] * r["hin"] * r["win"]
    _tail(out, r, 0 * ein, 0 * ein, ein, r["batch"] * cout * hout * wout)


def _movement(r, out):
    ein = r["n"] * r["c"] * r["h"] * r["w"]
    eout = r["on"] * r["oc"] * r["oh"] * r["ow"]
    out.update(in_elems=ein, out_elems=eout, size_ratio=eout / _one(ein))
    _align(out, "c", r["c"])
    _tail(out, r, 0 * ein, 0 * ein, ein, eout)


def _softmax(r, out):
    e = r["outer"] * r["axis_len"] * r["inner"]
    out["elems"] = e
    _align(out, "axis_len", r["axis_len"])
    _tail(out, r, 5 * e, r["weight_elems"], e, e)


def _reduce(r, out):
    ein = r["outer"] * r["axis_len"] * r["inner"]
    eout = r["outer"] * r["inner"]
    out.update(in_elems=ein, out_elems=eout)
    _align(out, "axis_len", r["axis_len"])
    _tail(out, r, ein, 0 * ein, ein, eout)


def _layout(r, out):
    block = _one(r["block"])
    e = r["n"] * r["c"] * r["h"] * r["w"]
    blocked = r["n"] * (np.ceil(r["c"] / block) * block) * r["h"] * r["w"]
    out.update(elems=e, blocked_elems=blocked)
    _align(out, "c", r["c"])
    d = r["direction"]
    _cost(out, 0 * e, 0 * e, np.where(d == 2, blocked, e) * r["dtype_bytes"],
          np.where(d == 1, blocked, e), r["dtype_bytes"])


def _generic(r, out):
    _tail(out, r, r["flops_est"], r["weight_elems"], r["in_elems"], r["out_elems"])


_REF = {
    "conv": lambda r, o: _conv(r, o, False), "dwconv": lambda r, o: _conv(r, o, False),
    "gconv": lambda r, o: _conv(r, o, False), "convtranspose": lambda r, o: _conv(r, o, True),
    "gemm": _gemm, "pool": _pool, "globalpool": _globalpool, "elementwise": _elementwise,
    "binary": _binary, "concat": _concat, "split": _split, "pad": _pad, "movement": _movement,
    "softmax": _softmax, "reduce": _reduce, "layout": _layout, "generic": _generic,
}


def encode_reference(name: str, configs, exact: bool = False) -> np.ndarray:
    """What ``nnmeter_tvm.features.encode`` must return, computed with NumPy."""
    fam = family(name)
    x = as_rows(name, configs)
    raw = {f: x[:, i] for i, f in enumerate(fam.raw)}
    derived: dict = {}
    _REF[name](raw, derived)
    missing = set(fam.derived) ^ set(derived)
    assert not missing, f"reference for {name!r} disagrees with the schema on {sorted(missing)}"
    inner = len(fam.encoded_raw)
    cols = [x[:, :inner]] + [np.broadcast_to(derived[f], (x.shape[0],))[:, None]
                             for f in fam.derived] + [x[:, inner:]]
    n = x.shape[0]
    rows = {k: np.broadcast_to(v, (n,)) for k, v in {**raw, **derived}.items()}
    blocked = [_flops_blocked(name, {k: v[i] for k, v in rows.items()}) for i in range(n)]
    cols.append(np.array(blocked)[:, None])
    return np.hstack(cols).astype(np.float64 if exact else np.float32)


def _flops_blocked(name: str, r: dict) -> float:
    """One row's ``flops_blocked`` (``r``: its raw and derived fields): the work of the
    channels a blocked layout runs."""
    if name not in ("conv", "dwconv") or r["layout"] != LAYOUT_CODES.index("blocked"):
        return r["flops"]
    b = max(r["channel_block"], 1)
    padded = lambda c: -(-c // b) * b  # noqa: E731
    cout = max(r["cout"], 1)
    scale = padded(cout) / cout
    cin = max(r["cin_per_group"], 1)
    if name == "conv" and cin >= b:
        scale *= padded(cin) / cin
    return r["flops"] * scale
