// The kernel partition (see partition.h): a port of nnmeter_tvm/kernels/partition.py.  Comments
// name the Python function each piece follows; read that module for the why of each rule.
#include "partition.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <stdexcept>
#include <string>

namespace nnm::part {
namespace {

// ---- small helpers -----------------------------------------------------------------------------

struct Span {
    const int* first;
    const int* last;
    const int* begin() const { return first; }
    const int* end() const { return last; }
    int size() const { return static_cast<int>(last - first); }
    bool empty() const { return first == last; }
    int operator[](int i) const { return first[i]; }
};

Span range(const std::vector<int>& items, const std::vector<int>& at, int i) {
    return {items.data() + at[i], items.data() + at[i + 1]};
}

bool contains(const std::vector<int>& items, int x) {
    return std::find(items.begin(), items.end(), x) != items.end();
}

int lookup(const PatternIndex& index, std::uint64_t key) {
    auto it = index.find(key);
    return it == index.end() ? -1 : it->second;
}

// Python's // and % (the layout conditions are written with them).
void check_divisor(std::int64_t b) {
    if (b == 0) throw std::domain_error("partition: a layout condition divides by zero");
}
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    check_divisor(b);
    std::int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) --q;
    return q;
}
std::int64_t floor_mod(std::int64_t a, std::int64_t b) {
    check_divisor(b);
    std::int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

// Epoch-stamped marks over 0 .. n-1: clearing them all is one increment.
class Marks {
  public:
    explicit Marks(int n) : stamp_(n, 0) {}
    void clear() { ++epoch_; }
    void set(int i) { stamp_[i] = epoch_; }
    bool test(int i) const { return stamp_[i] == epoch_; }

  private:
    std::vector<std::uint32_t> stamp_;
    std::uint32_t epoch_ = 1;
};

// ---- the graph the partitioner runs on ---------------------------------------------------------

// The graph after the rewrites: its nodes in their (new) order, inputs renamed by CSE, and its
// adjacency as adjacency() gives it.  Positions are indexes into `node`.
struct Work {
    std::vector<int> node;              // graph node at each position
    std::vector<int> in_begin, inputs;  // input tensors per position
    std::vector<int> producer;          // per tensor: the last position writing it, or -1
    std::vector<int> reader_begin, readers;  // per tensor: the positions reading it, in order
    std::vector<int> pred_begin, preds, succ_begin, succs;  // per position, first seen first
};

void link(Work& w, const Graph& g) {
    const int n = static_cast<int>(w.node.size());
    w.producer.assign(g.n_tensors, -1);
    std::vector<int> count(g.n_tensors + 1, 0);
    for (int p = 0; p < n; ++p) {
        for (int t : range(g.outputs, g.out_begin, w.node[p])) w.producer[t] = p;
        for (int t : range(w.inputs, w.in_begin, p)) ++count[t + 1];
    }
    for (int t = 0; t < g.n_tensors; ++t) count[t + 1] += count[t];
    w.reader_begin = count;
    w.readers.assign(count.back(), 0);
    for (int p = 0; p < n; ++p)
        for (int t : range(w.inputs, w.in_begin, p)) w.readers[count[t]++] = p;
    w.pred_begin.assign(1, 0);
    w.succ_begin.assign(1, 0);
    w.preds.clear();
    w.succs.clear();
    for (int p = 0; p < n; ++p) {
        const int pred0 = static_cast<int>(w.preds.size());
        for (int t : range(w.inputs, w.in_begin, p)) {
            const int q = w.producer[t];
            if (q >= 0 && std::find(w.preds.begin() + pred0, w.preds.end(), q) == w.preds.end())
                w.preds.push_back(q);
        }
        w.pred_begin.push_back(static_cast<int>(w.preds.size()));
        const int succ0 = static_cast<int>(w.succs.size());
        for (int t : range(g.outputs, g.out_begin, w.node[p]))
            for (int c : range(w.readers, w.reader_begin, t))
                if (std::find(w.succs.begin() + succ0, w.succs.end(), c) == w.succs.end())
                    w.succs.push_back(c);
        w.succ_begin.push_back(static_cast<int>(w.succs.size()));
    }
}

Work identity_work(const Graph& g) {
    Work w;
    w.node.resize(g.n_nodes);
    for (int i = 0; i < g.n_nodes; ++i) w.node[i] = i;
    w.in_begin = g.in_begin;
    w.inputs = g.inputs;
    link(w, g);
    return w;
}

// ---- rewrites: common subexpressions -----------------------------------------------------------

bool has_graph_output(const Graph& g, int node) {
    for (int t : range(g.outputs, g.out_begin, node))
        if (g.graph_output[t]) return true;
    return false;
}

// Nodes CSE never merges: with weights, or returned by the graph.
bool cse_skips(const Graph& g, int node) {
    return g.const_inputs[node] || has_graph_output(g, node);
}

bool same_dims(const Graph& g, int s, int t) {
    return std::equal(g.dims.begin() + g.dim_at[s], g.dims.begin() + g.dim_at[s + 1],
                      g.dims.begin() + g.dim_at[t], g.dims.begin() + g.dim_at[t + 1]);
}

bool same_output_shapes(const Graph& g, int a, int b) {
    const int na = g.shape_at[a + 1] - g.out_shape_at[a];
    if (na != g.shape_at[b + 1] - g.out_shape_at[b]) return false;
    for (int k = 0; k < na; ++k)
        if (!same_dims(g, g.out_shape_at[a] + k, g.out_shape_at[b] + k)) return false;
    return true;
}

// _may_repeat: whether two weightless nodes share op, source op, inputs and output shapes.
// Nodes are bucketed by a hash of that key; only nodes in one bucket are compared.
bool may_repeat(const Graph& g) {
    std::vector<std::pair<std::uint64_t, int>> keyed;
    for (int i = 0; i < g.n_nodes; ++i) {
        if (cse_skips(g, i)) continue;
        std::uint64_t h = static_cast<std::uint64_t>(g.op[i]) * 0x9E3779B97F4A7C15ULL ^
                          static_cast<std::uint64_t>(g.source_op[i]);
        for (int t : range(g.inputs, g.in_begin, i))
            h = h * 1000003ULL ^ static_cast<std::uint64_t>(t);
        for (int s = g.out_shape_at[i]; s < g.shape_at[i + 1]; ++s)
            for (int d = g.dim_at[s]; d < g.dim_at[s + 1]; ++d)
                h = h * 1000003ULL ^ static_cast<std::uint64_t>(g.dims[d]);
        keyed.emplace_back(h, i);
    }
    std::sort(keyed.begin(), keyed.end());
    for (std::size_t a = 0; a < keyed.size(); ++a) {
        for (std::size_t b = a + 1; b < keyed.size() && keyed[b].first == keyed[a].first; ++b) {
            const int i = keyed[a].second, j = keyed[b].second;
            const Span in_i = range(g.inputs, g.in_begin, i), in_j = range(g.inputs, g.in_begin, j);
            if (g.op[i] == g.op[j] && g.source_op[i] == g.source_op[j] &&
                std::equal(in_i.begin(), in_i.end(), in_j.begin(), in_j.end()) &&
                same_output_shapes(g, i, j))
                return true;
        }
    }
    return false;
}

// reverse_dfs_order: onnxruntime's topological order (see the Python docstring).
std::vector<int> reverse_dfs_order(const Graph& g, const Work& w) {
    const int n = g.n_nodes;
    std::vector<std::vector<int>> preds(n);
    for (int i = 0; i < n; ++i) {
        const Span ps = range(w.preds, w.pred_begin, i);
        preds[i].assign(ps.begin(), ps.end());
        std::sort(preds[i].begin(), preds[i].end());
    }
    std::vector<int> order;
    std::vector<std::uint8_t> added(n, 0), seen(n, 0);
    for (int i = 0; i < n; ++i) {
        if (preds[i].empty()) {
            order.push_back(i);
            added[i] = seen[i] = 1;
        }
    }
    std::vector<int> stack;
    for (int i = 0; i < n; ++i)
        if (w.succ_begin[i] == w.succ_begin[i + 1]) stack.push_back(i);
    while (!stack.empty()) {
        const int cur = stack.back();
        stack.pop_back();
        if (added[cur]) continue;
        if (seen[cur]) {
            order.push_back(cur);
            added[cur] = 1;
            continue;
        }
        seen[cur] = 1;
        stack.push_back(cur);
        for (int p : preds[cur])
            if (!seen[p]) stack.push_back(p);
    }
    return order;
}

struct Cse {
    std::vector<std::pair<int, int>> dups;  // (node removed, node kept), in the order found
    Work work;                              // the graph without the removed nodes
};

// eliminate_common_subexpressions: the repeats of each weightless node, and the graph without
// them (their readers read the kept node; sorted again, as the kept one may come later).
bool eliminate_common_subexpressions(const Graph& g, const Work& w, bool keep_first, Cse& out) {
    if (!may_repeat(g)) return false;
    std::vector<int> canon(g.n_tensors);  // tensor -> canonical tensor (after merging repeats)
    for (int t = 0; t < g.n_tensors; ++t) canon[t] = t;
    std::vector<int> walk = keep_first ? reverse_dfs_order(g, w) : w.node;
    std::map<std::vector<std::int64_t>, int> group_of;
    std::vector<std::vector<int>> groups;
    std::vector<std::int64_t> key;
    for (int n : walk) {
        if (cse_skips(g, n)) continue;
        const Span ins = range(g.inputs, g.in_begin, n);
        key.assign({g.op[n], g.source_op[n], g.attrs_key(n), ins.size()});
        for (int t : ins) key.push_back(canon[t]);
        for (int s = g.out_shape_at[n]; s < g.shape_at[n + 1]; ++s) {
            key.push_back(g.dim_at[s + 1] - g.dim_at[s]);
            key.insert(key.end(), g.dims.begin() + g.dim_at[s], g.dims.begin() + g.dim_at[s + 1]);
        }
        auto found = group_of.emplace(key, static_cast<int>(groups.size()));
        if (found.second) groups.emplace_back();
        std::vector<int>& members = groups[found.first->second];
        members.push_back(n);
        const Span outs = range(g.outputs, g.out_begin, n);
        const Span firsts = range(g.outputs, g.out_begin, members.front());
        for (int k = 0; k < std::min(outs.size(), firsts.size()); ++k) canon[outs[k]] = firsts[k];
    }
    std::vector<int> rename(g.n_tensors), kept_as(g.n_nodes, -1);
    for (int t = 0; t < g.n_tensors; ++t) rename[t] = t;
    for (const std::vector<int>& members : groups) {
        const int kept = keep_first ? members.front() : members.back();
        for (int n : members) {
            if (n == kept) continue;
            out.dups.emplace_back(n, kept);
            kept_as[n] = kept;
            const Span outs = range(g.outputs, g.out_begin, n);
            const Span keeps = range(g.outputs, g.out_begin, kept);
            for (int k = 0; k < std::min(outs.size(), keeps.size()); ++k)
                rename[outs[k]] = keeps[k];
        }
    }
    if (out.dups.empty()) return false;
    // the remaining nodes in graph order, inputs renamed; then a stable topological sort
    std::vector<int> nodes, in_begin{0}, inputs;
    for (int n = 0; n < g.n_nodes; ++n) {
        if (kept_as[n] >= 0) continue;
        nodes.push_back(n);
        for (int t : range(g.inputs, g.in_begin, n)) inputs.push_back(rename[t]);
        in_begin.push_back(static_cast<int>(inputs.size()));
    }
    const int m = static_cast<int>(nodes.size());
    std::vector<int> producer(g.n_tensors, -1);
    for (int i = 0; i < m; ++i)
        for (int t : range(g.outputs, g.out_begin, nodes[i])) producer[t] = i;
    std::vector<std::vector<int>> users(m);
    std::vector<int> waiting(m, 0);
    for (int i = 0; i < m; ++i) {
        std::vector<int> deps;
        for (int t : range(inputs, in_begin, i))
            if (producer[t] >= 0 && !contains(deps, producer[t])) deps.push_back(producer[t]);
        for (int d : deps) users[d].push_back(i);
        waiting[i] = static_cast<int>(deps.size());
    }
    std::priority_queue<int, std::vector<int>, std::greater<int>> heap;
    for (int i = 0; i < m; ++i)
        if (waiting[i] == 0) heap.push(i);
    Work& work = out.work;
    work.in_begin.assign(1, 0);
    while (!heap.empty()) {
        const int i = heap.top();
        heap.pop();
        work.node.push_back(nodes[i]);
        for (int t : range(inputs, in_begin, i)) work.inputs.push_back(t);
        work.in_begin.push_back(static_cast<int>(work.inputs.size()));
        for (int u : users[i])
            if (--waiting[u] == 0) heap.push(u);
    }
    link(work, g);
    return true;
}

// ---- the partitioner ---------------------------------------------------------------------------

struct Decision {
    bool fused = false;
    int rule = -1;  // the rule that decided (-1: a default)
};

struct Candidate {
    int u;     // the producer's position
    int rule;  // the rule that fuses it
};

// _Partitioner, on positions of the work graph (a group's root is its first member).
class Partitioner {
  public:
    Partitioner(const Graph& g, const Rules& r, const Work& w)
        : g_(g), r_(r), w_(w), n_(static_cast<int>(w.node.size())), parent_(n_), members_(n_),
          leads_(n_), rules_used_(n_), single_(n_), blocked_(g.n_tensors, 0), in_union_(n_),
          seen_(n_) {
        for (int p = 0; p < n_; ++p) {
            parent_[p] = p;
            members_[p] = {p};
            leads_[p] = p;
            single_[p] = succs(p).size() == 1 && !has_graph_output(g_, w_.node[p]);
        }
    }

    void run() {
        for (int v = 0; v < n_; ++v) visit(v);
    }

    std::vector<Kernel> kernels();

  private:
    const Graph& g_;
    const Rules& r_;
    const Work& w_;
    const int n_;
    std::vector<int> parent_;
    std::vector<std::vector<int>> members_;  // per root, sorted by position
    std::vector<int> leads_;                 // per root: the anchor of its members
    std::vector<std::vector<int>> rules_used_;
    std::vector<std::uint8_t> single_;
    std::vector<std::uint8_t> blocked_;      // per tensor: in the blocked layout
    Marks in_union_, seen_;

    // ---- the work graph
    int op(int p) const { return g_.op[w_.node[p]]; }
    Span preds(int p) const { return range(w_.preds, w_.pred_begin, p); }
    Span succs(int p) const { return range(w_.succs, w_.succ_begin, p); }
    Span inputs(int p) const { return range(w_.inputs, w_.in_begin, p); }
    Span outputs(int p) const { return range(g_.outputs, g_.out_begin, w_.node[p]); }
    int first_output(int p) const {
        const Span outs = outputs(p);
        if (outs.empty()) throw std::out_of_range("partition: a node without outputs");
        return outs[0];
    }
    bool compute(int p) const { return op(p) < r_.n_ops && r_.compute[op(p)]; }
    int layout_conds(const std::vector<int>& table, int p) const {
        return op(p) < r_.n_ops ? table[op(p)] : -1;
    }
    int in_shapes_begin(int p) const { return g_.shape_at[w_.node[p]]; }
    int in_shapes_end(int p) const { return g_.out_shape_at[w_.node[p]]; }
    // _channels: dim 1 of a 4-D shape
    bool channels(int shape, std::int64_t& c) const {
        if (g_.dim_at[shape + 1] - g_.dim_at[shape] != 4) return false;
        c = g_.dims[g_.dim_at[shape] + 1];
        return true;
    }

    // ---- union-find
    int find(int x) {
        while (parent_[x] != x) {
            parent_[x] = parent_[parent_[x]];
            x = parent_[x];
        }
        return x;
    }
    int lead(int p) { return leads_[find(p)]; }

    bool merge(int a, int b, int rule) {
        const int ra = find(a), rb = find(b);
        if (ra == rb) return true;
        if (creates_cycle(ra, rb)) return false;
        const int keep = std::min(ra, rb), drop = std::max(ra, rb);
        parent_[drop] = keep;
        std::vector<int> members;
        std::merge(members_[keep].begin(), members_[keep].end(), members_[drop].begin(),
                   members_[drop].end(), std::back_inserter(members));
        members_[keep] = std::move(members);
        members_[drop].clear();
        leads_[keep] = joint_lead(leads_[keep], leads_[drop], members_[keep].front());
        std::vector<int>& used = rules_used_[keep];
        used.insert(used.end(), rules_used_[drop].begin(), rules_used_[drop].end());
        used.push_back(rule);
        rules_used_[drop].clear();
        return true;
    }

    int joint_lead(int a, int b, int first) const {
        const bool a_leads = compute(a), b_leads = compute(b);
        if (a_leads && b_leads) return a < b ? a : b;
        return a_leads ? a : b_leads ? b : first;
    }

    bool creates_cycle(int ra, int rb) {
        in_union_.clear();
        for (int m : members_[ra]) in_union_.set(m);
        for (int m : members_[rb]) in_union_.set(m);
        const int limit = std::max(members_[ra].back(), members_[rb].back());
        std::vector<int> stack;
        for (int root : {ra, rb})
            for (int m : members_[root])
                for (int s : succs(m))
                    if (!in_union_.test(s) && s <= limit) stack.push_back(s);
        seen_.clear();
        while (!stack.empty()) {
            const int x = stack.back();
            stack.pop_back();
            if (seen_.test(x) || x > limit) continue;
            seen_.set(x);
            for (int s : succs(x)) {
                if (in_union_.test(s)) return true;
                stack.push_back(s);
            }
        }
        return false;
    }

    // ---- decisions
    bool inputs_blocked(int v) const {
        const Span ins = inputs(v);
        if (ins.empty()) return false;
        for (int t : ins)
            if (!blocked_[t]) return false;
        return true;
    }

    bool conditions_hold(const Rule& rule, int u, int v) const {
        if (rule.requires.empty()) return true;
        const bool blocked = inputs_blocked(v);
        for (Cond cond : rule.requires) {
            if (cond == Cond::kBlocked && !blocked) return false;
            if (cond == Cond::kPlain)
                for (int t : inputs(v))
                    if (blocked_[t]) return false;
            if (cond == Cond::kCompatible && blocked_[first_output(u)] && !blocked) return false;
            if (cond == Cond::kConstOperand && !g_.const_inputs[v]) return false;
        }
        return true;
    }

    Decision decide_single(int u, int v) {
        const int lead_pos = lead(u);
        int rule = -1;
        bool fused = false;
        if (lead_pos != u) {
            rule = lookup(r_.chain, Rules::key(op(lead_pos), op(u), op(v)));
            if (rule >= 0) fused = r_.rules[rule].joined(1, 2);
        }
        if (rule < 0) {
            rule = lookup(r_.pair, Rules::key(op(u), op(v)));
            if (rule < 0) return {};
            fused = r_.rules[rule].joined(0, 1);
        }
        if (fused && !conditions_hold(r_.rules[rule], u, v)) fused = false;
        return {fused, rule};
    }

    bool decide_multi_output(int u, int v, Decision& d) const {
        const Span cons_all = succs(u);
        int w = -1, others = 0;
        for (int c : cons_all)
            if (c != v) w = c, ++others;
        if (others != 1 || has_graph_output(g_, w_.node[u])) return false;
        // diamond: one consumer b reads only u and feeds only c, c reads u and b
        const int shapes[2][3] = {{w, v, 2}, {v, w, 1}};
        for (const auto& bcv : shapes) {
            const int b = bcv[0], c = bcv[1];
            const Span pb = preds(b), sb = succs(b), pc = preds(c);
            if (pb.size() == 1 && pb[0] == u && sb.size() == 1 && sb[0] == c &&
                std::find(pc.begin(), pc.end(), u) != pc.end() &&
                std::find(pc.begin(), pc.end(), b) != pc.end()) {
                const int rule = lookup(r_.diamond, Rules::key(op(u), op(b), op(c)));
                if (rule < 0) return false;
                d = {r_.rules[rule].joined(0, bcv[2]), rule};
                return d.fused;
            }
        }
        const int first = cons_all[0], second = cons_all[1];
        const int role = v == first ? 1 : 2;
        int rule = lookup(r_.fork, Rules::key(op(u), op(first), op(second)));
        if (rule >= 0) {
            d = {r_.rules[rule].joined(0, role), rule};
            return d.fused;
        }
        rule = lookup(r_.fork, Rules::key(op(u), op(second), op(first)));
        if (rule >= 0) {
            d = {r_.rules[rule].joined(0, 3 - role), rule};
            return d.fused;
        }
        return false;
    }

    // diamond_inner: the edge b -> c inside a diamond u -> b -> c <- u; false: not one
    bool diamond_inner(int b, int c, Decision& d) const {
        const Span pb = preds(b), sb = succs(b);
        if (pb.size() != 1 || sb.size() != 1 || sb[0] != c) return false;
        const int u = pb[0];
        const Span pc = preds(c);
        if (std::find(pc.begin(), pc.end(), u) == pc.end() || succs(u).size() != 2) return false;
        const int rule = lookup(r_.diamond, Rules::key(op(u), op(b), op(c)));
        if (rule < 0) return false;
        d = {r_.rules[rule].joined(1, 2), rule};
        return true;
    }

    void visit(int v) {
        std::vector<Candidate> candidates;
        for (int u : preds(v)) {
            Decision d;
            if (single_[u]) {
                if (!diamond_inner(u, v, d)) d = decide_single(u, v);
            } else {
                decide_multi_output(u, v, d);
            }
            if (d.fused) candidates.push_back({u, d.rule});
        }
        if (candidates.size() >= 2) candidates = choose_inputs(std::move(candidates), v);
        int fused_layout = -1;  // the layout of the first producer merged, -1: none
        for (const Candidate& c : candidates)
            if (merge(c.u, v, c.rule) && fused_layout < 0)
                fused_layout = blocked_[first_output(c.u)];
        set_layout(v, fused_layout);
    }

    std::vector<Candidate> choose_inputs(std::vector<Candidate> candidates, int v) {
        if (r_.layout) {
            // the layout model: plain producers take a consumer first (graph order, before the
            // layout pass), blocked ones after (input order)
            std::vector<std::pair<int, Candidate>> plain;  // (position of its lead, candidate)
            std::vector<Candidate> blocked;
            for (const Candidate& c : candidates) {
                if (blocked_[first_output(c.u)])
                    blocked.push_back(c);
                else
                    plain.emplace_back(lead(c.u), c);
            }
            std::stable_sort(plain.begin(), plain.end(),
                             [](const auto& x, const auto& y) { return x.first < y.first; });
            candidates.clear();
            for (const auto& c : plain) candidates.push_back(c.second);
            candidates.insert(candidates.end(), blocked.begin(), blocked.end());
        }
        const int a = candidates[0].u, b = candidates[1].u;
        int rule = lookup(r_.multi_input, Rules::key(op(lead(a)), op(lead(b)), op(v)));
        if (rule < 0) rule = lookup(r_.multi_input, Rules::key(op(a), op(b), op(v)));
        if (rule < 0) return {candidates[0]};
        const bool first = r_.rules[rule].joined(0, 2), second = r_.rules[rule].joined(1, 2);
        if (first && second) return candidates;
        if (first) return {candidates[0]};
        if (second) return {candidates[1]};
        return {};
    }

    // ---- layout
    void set_layout(int v, int fused_layout) {
        if (!r_.layout) return;
        bool state;
        if (layout_conds(r_.starts, v) >= 0)
            state = starts(v);
        else if (fused_layout >= 0)
            state = fused_layout != 0;
        else
            state = follows(v);
        for (int t : outputs(v)) blocked_[t] = state;
    }

    bool starts(int v) const {
        const int conds = layout_conds(r_.starts, v);
        if (conds < 0 || in_shapes_begin(v) == in_shapes_end(v)) return false;
        std::int64_t c;
        return channels(in_shapes_begin(v), c) && eligible(v, r_.conds[conds], c);
    }

    bool follows(int v) const {
        const int at = layout_conds(r_.follows, v);
        if (at < 0 || !inputs_blocked(v)) return false;
        const LayoutConds& conds = r_.conds[at];
        const int node = w_.node[v];
        const bool binary = op(v) < r_.n_ops && r_.binary[op(v)];
        if (binary && g_.const_inputs[node] && !conds.const_operand) return false;
        if (conds.same_shape)
            for (int s = in_shapes_begin(v) + 1; s < in_shapes_end(v); ++s)
                if (!same_dims(g_, s, in_shapes_begin(v))) return false;
        if (op(v) == r_.concat && !g_.concat_axis_ok[node]) return false;
        for (int s = in_shapes_begin(v); s < in_shapes_end(v); ++s) {
            std::int64_t c;
            if (!channels(s, c) || !eligible(v, conds, c)) return false;
        }
        return true;
    }

    bool eligible(int v, const LayoutConds& conds, std::int64_t channels) const {
        if (conds.has_plain_below && channels < conds.plain_below) return true;
        if (conds.has_multiple && floor_mod(channels, conds.multiple) != 0) return false;
        if (conds.has_group_multiple) {
            const int node = w_.node[v];
            const std::int64_t groups = g_.group[node];
            const std::int64_t cout = g_.has_cout[node] ? g_.cout[node] : channels;
            const std::int64_t m = conds.group_multiple;
            if (floor_mod(floor_div(channels, groups), m) != 0 ||
                floor_mod(floor_div(cout, groups), m) != 0)
                return false;
        }
        return true;
    }

    bool reads_plain_directly(int v) const {
        const int at = layout_conds(r_.starts, v);
        if (at < 0 || in_shapes_begin(v) == in_shapes_end(v)) return false;
        const LayoutConds& conds = r_.conds[at];
        std::int64_t c;
        return channels(in_shapes_begin(v), c) && conds.has_plain_below && c < conds.plain_below;
    }

    // ---- output
    std::vector<int> kernel_order();
    void reorders_in(const std::vector<int>& members, std::vector<std::uint8_t>& done,
                     std::vector<Kernel>& out);
    void reorders_out(const std::vector<int>& members, int root, std::vector<Kernel>& out);
    bool reads_blocked(int c) const;

    Kernel reorder(int tensor, int shape, Kernel::Kind kind) const {
        Kernel k;
        k.kind = kind;
        k.tensor = tensor;
        k.shape = shape;
        return k;
    }

    std::vector<int> root_of_;  // per position, filled by kernel_order
};

// kernel_order: group roots in a topological order of the kernel graph (ties: earliest first)
std::vector<int> Partitioner::kernel_order() {
    root_of_.resize(n_);
    for (int p = 0; p < n_; ++p) root_of_[p] = find(p);
    std::vector<std::vector<int>> users(n_);
    std::vector<int> waiting(n_, 0);
    std::vector<int> deps;
    for (int r = 0; r < n_; ++r) {
        if (root_of_[r] != r) continue;
        deps.clear();
        for (int m : members_[r])
            for (int p : preds(m))
                if (root_of_[p] != r && !contains(deps, root_of_[p])) deps.push_back(root_of_[p]);
        for (int d : deps) users[d].push_back(r);
        waiting[r] = static_cast<int>(deps.size());
    }
    std::priority_queue<int, std::vector<int>, std::greater<int>> heap;
    int roots = 0;
    for (int r = 0; r < n_; ++r) {
        if (root_of_[r] != r) continue;
        ++roots;
        if (waiting[r] == 0) heap.push(r);
    }
    std::vector<int> out;
    while (!heap.empty()) {
        const int r = heap.top();
        heap.pop();
        out.push_back(r);
        for (int u : users[r])
            if (--waiting[u] == 0) heap.push(u);
    }
    if (static_cast<int>(out.size()) != roots) throw std::logic_error("kernel graph has a cycle");
    return out;
}

// _reorders_in: to-blocked reorders of the plain tensors read up to the group's blocked start op
void Partitioner::reorders_in(const std::vector<int>& members, std::vector<std::uint8_t>& done,
                              std::vector<Kernel>& out) {
    std::size_t start = 0;
    while (start < members.size() && layout_conds(r_.starts, members[start]) < 0) ++start;
    if (start == members.size()) return;
    const int s = members[start];
    if (!blocked_[first_output(s)] || reads_plain_directly(s)) return;
    const int root = root_of_[s];
    for (std::size_t i = 0; i <= start; ++i) {
        const int n = members[i];
        const Span ins = inputs(n);
        const int shapes = in_shapes_end(n) - in_shapes_begin(n);
        for (int k = 0; k < std::min(ins.size(), shapes); ++k) {
            const int t = ins[k];
            const int producer = w_.producer[t];
            if ((producer >= 0 && root_of_[producer] == root) || blocked_[t] || done[t]) continue;
            done[t] = 1;
            out.push_back(reorder(t, in_shapes_begin(n) + k, Kernel::Kind::kReorderIn));
        }
    }
}

// _reorders_out: a from-blocked reorder per blocked output read by a plain kernel or returned
void Partitioner::reorders_out(const std::vector<int>& members, int root,
                               std::vector<Kernel>& out) {
    for (int n : members) {
        const Span outs = outputs(n);
        const int node = w_.node[n];
        const int shapes = g_.shape_at[node + 1] - g_.out_shape_at[node];
        for (int k = 0; k < std::min(outs.size(), shapes); ++k) {
            const int t = outs[k];
            if (!blocked_[t]) continue;
            bool plain = false;
            for (int c : range(w_.readers, w_.reader_begin, t))
                if (root_of_[c] != root && !reads_blocked(c)) plain = true;
            if (plain || g_.graph_output[t])
                out.push_back(reorder(t, g_.out_shape_at[node] + k, Kernel::Kind::kReorderOut));
        }
    }
}

// _reads_blocked: consumer c runs blocked and is no conv reading its (narrow) input plain
bool Partitioner::reads_blocked(int c) const {
    if (layout_conds(r_.starts, c) >= 0 && reads_plain_directly(c)) return false;
    for (int o : outputs(c))
        if (!blocked_[o]) return false;
    return true;
}

std::vector<Kernel> Partitioner::kernels() {
    const std::vector<int> roots = kernel_order();
    std::vector<Kernel> out;
    std::vector<std::uint8_t> reordered_in(g_.n_tensors, 0);
    for (int r : roots) {
        const std::vector<int>& members = members_[r];
        bool blocked = r_.layout;
        if (r_.layout)
            for (int t : outputs(members.back()))
                if (!blocked_[t]) blocked = false;
        if (r_.layout) reorders_in(members, reordered_in, out);
        Kernel k;
        for (int p : members) k.nodes.push_back(w_.node[p]);
        k.anchor = w_.node[leads_[r]];
        k.rules = rules_used_[r];
        if (members.size() == 1) {
            const int view = lookup(r_.view, Rules::key(op(members[0])));
            // a view cannot be a graph output: the backend copies it
            if (view >= 0 && !has_graph_output(g_, w_.node[members[0]])) {
                k.view = true;
                k.rules.push_back(view);
            }
        }
        k.blocked = blocked;
        out.push_back(std::move(k));
        if (r_.layout) reorders_out(members, r, out);
    }
    return out;
}

}  // namespace

// partition_with_decisions, without the decisions: the rewrites, the pass, the kernels, then a
// view kernel for each node CSE removed.
std::vector<Kernel> partition(const Graph& g, const Rules& rules) {
    Work identity = identity_work(g);
    Cse cse;
    const bool rewritten =
        rules.cse && eliminate_common_subexpressions(g, identity, rules.cse_keep_first, cse);
    const Work& work = rewritten ? cse.work : identity;
    Partitioner p(g, rules, work);
    p.run();
    std::vector<Kernel> out = p.kernels();
    for (const auto& [dup, kept] : cse.dups) {
        Kernel k;
        k.kind = Kernel::Kind::kDuplicate;
        k.nodes = {dup};
        k.duplicate_of = kept;
        out.push_back(std::move(k));
    }
    return out;
}

}  // namespace nnm::part
