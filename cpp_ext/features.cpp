// The per-family encoders (see feature_encoder.h and nnmeter_tvm/features/schema.py for the formulas).
#include "feature_encoder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace nnm {
namespace {

constexpr std::size_t kMaxWidth = 256;

double at_least1(double x) { return x < 1.0 ? 1.0 : x; }

// X rounded up to 4/8/16, then X mod 4/8/16: latency steps at SIMD-width multiples.
void put_align(Io& io, const char* base, double x) {
    static const double kMultiples[3] = {4.0, 8.0, 16.0};
    static const char* kUp[3] = {"_up4", "_up8", "_up16"};
    static const char* kRem[3] = {"_rem4", "_rem8", "_rem16"};
    for (int i = 0; i < 3; ++i) {
        if (io.naming())
            io.put(std::string(base) + kUp[i], 0.0);
        else
            io.put(base, std::ceil(x / kMultiples[i]) * kMultiples[i]);
    }
    for (int i = 0; i < 3; ++i) {
        if (io.naming())
            io.put(std::string(base) + kRem[i], 0.0);
        else
            io.put(base, std::fmod(x, kMultiples[i]));
    }
}

// The fused-epilogue block every family but layout ends its raw fields with.
struct Epilogue {
    double bn, relu, clip, sigmoid, hardswish, transcendental, add, mul, other_binary, movement,
        other, extra_elems;
};

Epilogue read_epilogue(Io& io) {
    Epilogue e;
    e.bn = io.get("ep_bn");
    e.relu = io.get("ep_relu");
    e.clip = io.get("ep_clip");
    e.sigmoid = io.get("ep_sigmoid");
    e.hardswish = io.get("ep_hardswish");
    e.transcendental = io.get("ep_transcendental");
    e.add = io.get("ep_add");
    e.mul = io.get("ep_mul");
    e.other_binary = io.get("ep_other_binary");
    e.movement = io.get("ep_movement");
    e.other = io.get("ep_other");
    e.extra_elems = io.get("ep_extra_elems");
    return e;
}

// The cost block: FLOPs, params, bytes in / weights / out, arithmetic intensity.
void put_cost(Io& io, double flops, double params, double bytes_in, double out_elems, double db) {
    const double bytes_weight = params * db;
    const double bytes_out = out_elems * db;
    io.put("flops", flops);
    io.put("params", params);
    io.put("bytes_in", bytes_in);
    io.put("bytes_weight", bytes_weight);
    io.put("bytes_out", bytes_out);
    io.put("arith_intensity", flops / std::max(bytes_in + bytes_weight + bytes_out, 1.0));
}

// Epilogue features, then the cost block with the epilogue's work and reads included.
void put_tail(Io& io, const Epilogue& e, double flops, double params, double in_elems,
              double out_elems, double db) {
    const double ops = e.bn + e.relu + e.clip + e.sigmoid + e.hardswish + e.transcendental + e.add +
                       e.mul + e.other_binary + e.movement + e.other;
    const double ep_flops = (ops - e.movement - e.other + e.bn) * out_elems;
    const double ep_bytes = e.extra_elems * db;
    io.put("ep_ops", ops);
    io.put("ep_flops", ep_flops);
    io.put("ep_bytes_in", ep_bytes);
    put_cost(io, flops + ep_flops, params, in_elems * db + ep_bytes, out_elems, db);
}

// ---------------------------------------------------------------------------- encoders
template <bool kTranspose>
void enc_conv(Io& io) {
    const double b = io.get("batch"), cin = io.get("cin"), hin = io.get("hin"), win = io.get("win");
    const double cout = io.get("cout"), kh = io.get("kh"), kw = io.get("kw");
    const double sh = at_least1(io.get("sh")), sw = at_least1(io.get("sw"));
    const double dh = at_least1(io.get("dh")), dw = at_least1(io.get("dw"));
    const double g = at_least1(io.get("groups"));
    const double pt = io.get("pad_t"), pl = io.get("pad_l"), pb = io.get("pad_b"), pr = io.get("pad_r");
    const double oph = io.get("out_pad_h"), opw = io.get("out_pad_w"), bias = io.get("has_bias");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");

    double hout, wout, weights, macs = 0;
    if (kTranspose) {  // weight (cin, cout/groups, kh, kw), every input pixel scatters
        hout = (hin - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1;
        wout = (win - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1;
        weights = cin * (cout / g) * kh * kw;
        macs = b * hin * win * weights;
    } else {  // weight (cout, cin/groups, kh, kw)
        hout = std::floor((hin + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
        wout = std::floor((win + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
        weights = cout * (cin / g) * kh * kw;
    }
    hout = std::max(hout, 0.0);
    wout = std::max(wout, 0.0);
    if (!kTranspose) macs = b * hout * wout * weights;
    const double out_elems = b * cout * hout * wout;
    io.put("hout", hout);
    io.put("wout", wout);
    io.put("cin_per_group", cin / g);
    io.put("cout_per_group", cout / g);
    put_align(io, "cin", cin);
    put_align(io, "cout", cout);
    put_tail(io, e, 2 * macs + bias * out_elems, weights + bias * cout, b * cin * hin * win,
             out_elems, db);
}

void enc_gemm(Io& io) {
    const double b = io.get("batch"), m = io.get("m"), k = io.get("k"), n = io.get("n");
    const double bb = io.get("b_batch"), bc = io.get("b_const"), bias = io.get("has_bias");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double out_elems = b * m * n;
    put_align(io, "k", k);
    put_align(io, "n", n);
    put_tail(io, e, 2 * b * m * k * n + bias * out_elems, bc * bb * k * n + bias * n,
             b * m * k + (1 - bc) * bb * k * n, out_elems, db);
}

// ONNX pooling output extent (ceil_mode drops a window that would start in the end padding).
double pool_out(double in, double k, double s, double p0, double p1, double ceil_mode) {
    const double x = (in + p0 + p1 - k) / s;
    double o = (ceil_mode != 0 ? std::ceil(x) : std::floor(x)) + 1;
    if (ceil_mode != 0 && (o - 1) * s >= in + p0) o -= 1;
    return std::max(o, 0.0);
}

void enc_pool(Io& io) {
    const double b = io.get("batch"), c = io.get("c"), hin = io.get("hin"), win = io.get("win");
    const double kh = io.get("kh"), kw = io.get("kw");
    const double sh = at_least1(io.get("sh")), sw = at_least1(io.get("sw"));
    const double pt = io.get("pad_t"), pl = io.get("pad_l"), pb = io.get("pad_b"), pr = io.get("pad_r");
    const double ceil_mode = io.get("ceil_mode");
    io.get("is_max");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double hout = pool_out(hin, kh, sh, pt, pb, ceil_mode);
    const double wout = pool_out(win, kw, sw, pl, pr, ceil_mode);
    const double out_elems = b * c * hout * wout;
    io.put("hout", hout);
    io.put("wout", wout);
    put_align(io, "c", c);
    put_tail(io, e, out_elems * kh * kw, 0, b * c * hin * win, out_elems, db);
}

void enc_globalpool(Io& io) {
    const double b = io.get("batch"), c = io.get("c"), h = io.get("hin"), w = io.get("win");
    io.get("is_max");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double in_elems = b * c * h * w;
    put_align(io, "c", c);
    put_tail(io, e, in_elems, 0, in_elems, b * c, db);
}

void enc_elementwise(Io& io) {
    const double b = io.get("batch"), c = io.get("c"), h = io.get("h"), w = io.get("w");
    const double op = io.get("op_code"), weights = io.get("weight_elems");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double elems = b * c * h * w;
    io.put("elems", elems);
    put_align(io, "c", c);
    put_tail(io, e, elems * (op == 0 ? 2 : 1), weights, elems, elems, db);  // op 0 is bn
}

void enc_binary(Io& io) {
    const double b = io.get("batch"), c = io.get("c"), h = io.get("h"), w = io.get("w");
    const double ea = io.get("a_elems"), eb = io.get("b_elems"), bc = io.get("b_const");
    io.get("op_code");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double elems = b * c * h * w;
    io.put("elems", elems);
    io.put("a_bcast", ea < elems ? 1 : 0);
    io.put("b_bcast", eb < elems ? 1 : 0);
    io.put("bcast_ratio", elems / std::max(eb, 1.0));
    put_align(io, "c", c);
    put_tail(io, e, elems, bc * eb, ea + (1 - bc) * eb, elems, db);
}

void enc_concat(Io& io) {
    const double outer = io.get("outer"), inner = io.get("inner");
    io.get("n_inputs");
    const double c1 = io.get("c1"), c2 = io.get("c2"), c3 = io.get("c3"), c4 = io.get("c4");
    const double rest = io.get("c_rest");
    io.get("n_misaligned4");
    io.get("n_misaligned8");
    io.get("n_misaligned16");
    io.get("axis_is_channel");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double c = c1 + c2 + c3 + c4 + rest;
    const double elems = outer * c * inner;
    io.put("c_total", c);
    put_align(io, "c_total", c);
    put_tail(io, e, 0, 0, elems, elems, db);
}

void enc_split(Io& io) {
    const double outer = io.get("outer"), len = io.get("axis_len"), inner = io.get("inner");
    io.get("n_outputs");
    const double out_len = io.get("out_axis_total");
    io.get("op_code");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double in_elems = outer * len * inner, out_elems = outer * out_len * inner;
    io.put("in_elems", in_elems);
    io.put("out_elems", out_elems);
    put_align(io, "axis_len", len);
    put_tail(io, e, 0, 0, in_elems, out_elems, db);
}

void enc_pad(Io& io) {
    const double b = io.get("batch"), c = io.get("c"), hin = io.get("hin"), win = io.get("win");
    const double pt = io.get("pad_t"), pl = io.get("pad_l"), pb = io.get("pad_b"), pr = io.get("pad_r");
    const double pc = io.get("pad_c");
    io.get("mode");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double hout = hin + pt + pb, wout = win + pl + pr, cout = c + pc;
    io.put("hout", hout);
    io.put("wout", wout);
    io.put("cout", cout);
    put_align(io, "c", c);
    put_tail(io, e, 0, 0, b * c * hin * win, b * cout * hout * wout, db);
}

void enc_movement(Io& io) {
    io.get("op_code");
    const double n = io.get("n"), c = io.get("c"), h = io.get("h"), w = io.get("w");
    const double on = io.get("on"), oc = io.get("oc"), oh = io.get("oh"), ow = io.get("ow");
    io.get("moves_inner");
    io.get("mode");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double in_elems = n * c * h * w, out_elems = on * oc * oh * ow;
    io.put("in_elems", in_elems);
    io.put("out_elems", out_elems);
    io.put("size_ratio", out_elems / std::max(in_elems, 1.0));
    put_align(io, "c", c);
    put_tail(io, e, 0, 0, in_elems, out_elems, db);
}

void enc_softmax(Io& io) {
    io.get("op_code");
    const double outer = io.get("outer"), len = io.get("axis_len"), inner = io.get("inner");
    const double weights = io.get("weight_elems");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double elems = outer * len * inner;
    io.put("elems", elems);
    put_align(io, "axis_len", len);
    put_tail(io, e, 5 * elems, weights, elems, elems, db);
}

void enc_reduce(Io& io) {
    io.get("op_code");
    const double outer = io.get("outer"), len = io.get("axis_len"), inner = io.get("inner");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    const double in_elems = outer * len * inner, out_elems = outer * inner;
    io.put("in_elems", in_elems);
    io.put("out_elems", out_elems);
    put_align(io, "axis_len", len);
    put_tail(io, e, in_elems, 0, in_elems, out_elems, db);
}

void enc_layout(Io& io) {
    const double n = io.get("n"), c = io.get("c"), h = io.get("h"), w = io.get("w");
    const double direction = io.get("direction"), block = at_least1(io.get("block"));
    const double db = io.get("dtype_bytes");
    const double elems = n * c * h * w;
    const double blocked = n * (std::ceil(c / block) * block) * h * w;
    io.put("elems", elems);
    io.put("blocked_elems", blocked);
    put_align(io, "c", c);
    // direction 1: NCHW -> blocked (writes the padded tensor); 2: blocked -> NCHW (reads it)
    put_cost(io, 0, 0, (direction == 2 ? blocked : elems) * db, direction == 1 ? blocked : elems, db);
}

void enc_generic(Io& io) {
    const double flops = io.get("flops_est"), weights = io.get("weight_elems");
    const double in_elems = io.get("in_elems"), out_elems = io.get("out_elems");
    io.get("n_inputs");
    io.get("n_outputs");
    const Epilogue e = read_epilogue(io);
    const double db = io.get("dtype_bytes");
    put_tail(io, e, flops, weights, in_elems, out_elems, db);
}

std::vector<Family> build() {
    std::vector<Family> fams = {
        {"conv", enc_conv<false>, {}, {}},         {"dwconv", enc_conv<false>, {}, {}},
        {"gconv", enc_conv<false>, {}, {}},        {"convtranspose", enc_conv<true>, {}, {}},
        {"gemm", enc_gemm, {}, {}},                {"pool", enc_pool, {}, {}},
        {"globalpool", enc_globalpool, {}, {}},    {"elementwise", enc_elementwise, {}, {}},
        {"binary", enc_binary, {}, {}},            {"concat", enc_concat, {}, {}},
        {"split", enc_split, {}, {}},              {"pad", enc_pad, {}, {}},
        {"movement", enc_movement, {}, {}},        {"softmax", enc_softmax, {}, {}},
        {"reduce", enc_reduce, {}, {}},            {"layout", enc_layout, {}, {}},
        {"generic", enc_generic, {}, {}},
    };
    for (Family& f : fams) {  // names mode: the encoder lists what it reads and writes
        Io io;
        io.raw_names = &f.raw;
        io.derived_names = &f.derived;
        f.encode(io);
        if (f.derived.size() > kMaxWidth) throw std::logic_error("family " + f.name + " too wide");
    }
    return fams;
}

}  // namespace

const std::vector<Family>& families() {
    static const std::vector<Family> fams = build();
    return fams;
}

const Family* find_family(const std::string& name) {
    for (const Family& f : families())
        if (f.name == name) return &f;
    return nullptr;
}

template <class T>
void encode_rows(const Family& f, const double* raw, std::size_t n, T* out) {
    const std::size_t rw = f.raw_width(), width = f.width();
    double derived[kMaxWidth];
    for (std::size_t i = 0; i < n; ++i, raw += rw, out += width) {
        Io io;
        io.raw = raw;
        io.out = derived;
        f.encode(io);
        for (std::size_t j = 0; j < rw; ++j) out[j] = static_cast<T>(raw[j]);
        for (std::size_t j = rw; j < width; ++j) out[j] = static_cast<T>(derived[j - rw]);
    }
}

template void encode_rows<float>(const Family&, const double*, std::size_t, float*);
template void encode_rows<double>(const Family&, const double*, std::size_t, double*);

}  // namespace nnm
