// The kernel partition in C++: the fast path behind nnmeter_tvm.kernels.partition.
//
// nnmeter_tvm/kernels/partition.py is the specification (and stays the readable reference, with
// the per-edge explanations); this is a step-by-step port of it, with the same function names
// where it can, and tests/test_partition_cpp.py checks that both give the same kernels.  It
// works on integer ids: partition_py.cpp turns a Graph and a Rules object into the tables
// below, and the records partition() returns back into Kernel objects.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

namespace nnm::part {

// An op's conditions in the layout model (rules/SCHEMA.md, "Layout"); has_*: present.
struct LayoutConds {
    bool has_plain_below = false, has_multiple = false, has_group_multiple = false;
    std::int64_t plain_below = 0, multiple = 0, group_multiple = 0;
    bool same_shape = false, const_operand = false;
};

// a rule's `requires` (native.py's _CONDITION_CODES)
enum class Cond : std::uint8_t { kBlocked, kPlain, kCompatible, kConstOperand };

struct Rule {
    std::uint16_t together = 0;  // bit 3 * i + j: roles i and j run in one kernel
    std::vector<Cond> requires;
    bool joined(int i, int j) const { return (together >> (3 * i + j)) & 1; }
};

using PatternIndex = std::unordered_map<std::uint64_t, int>;  // packed op ids -> rule index

// A Rules object as lookup tables.  Op ids 0 .. n_ops - 1 are the ops of the op vocabulary and
// of the rules; a graph's other ops get higher ids (they match no rule and anchor nothing).
struct Rules {
    int n_ops = 0;
    std::vector<std::uint8_t> compute;  // per op: a compute op, the anchor of its kernel
    std::vector<std::uint8_t> binary;   // per op: add, sub, mul, div or pow
    int concat = -1;
    std::vector<Rule> rules;
    PatternIndex pair, chain, diamond, fork, multi_input, view;  // the first rule of a pattern wins
    bool layout = false;
    std::vector<int> starts, follows;       // per op: index into conds, or -1
    std::vector<LayoutConds> conds;
    std::vector<std::uint8_t> reads_group;  // per op: a layout condition reads group and cout
    bool cse = false, cse_keep_first = true;

    static std::uint64_t key(std::uint64_t a, std::uint64_t b = 0, std::uint64_t c = 0) {
        return a | b << 21 | c << 42;
    }
};

// A Graph as arrays.  Nodes, tensors and shapes are numbered; per-node lists are CSR ranges.
struct Graph {
    int n_nodes = 0, n_tensors = 0;
    std::vector<int> op, source_op;            // op ids (source_op: only read by CSE)
    std::vector<std::uint8_t> const_inputs;    // attrs["const_inputs"] is set: it has weights
    std::vector<std::uint8_t> concat_axis_ok;  // attrs.get("axis") in (1, -3)
    std::vector<std::int64_t> group, cout;     // attrs.get("group", 1), attrs["cout"]
    std::vector<std::uint8_t> has_cout;
    std::vector<int> in_begin, inputs;     // input tensors of node i: inputs[in_begin[i] ..
    std::vector<int> out_begin, outputs;   //   in_begin[i + 1]), likewise outputs
    // shape ids of node i: its input shapes [shape_at[i], out_shape_at[i]), then its output
    // shapes [out_shape_at[i], shape_at[i + 1]); shape s has dims [dim_at[s], dim_at[s + 1])
    std::vector<int> shape_at, out_shape_at, dim_at;
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> graph_output;  // per tensor
    // CSE: an id per distinct attributes of node i; asked only when two nodes may repeat
    std::function<int(int)> attrs_key;
};

// One kernel of the result, in the order partition.py returns them.
struct Kernel {
    enum class Kind : std::uint8_t { kGroup, kReorderIn, kReorderOut, kDuplicate };
    Kind kind = Kind::kGroup;
    std::vector<int> nodes;   // graph nodes, in order (kDuplicate: the node CSE removed)
    int anchor = -1;          // kGroup
    std::vector<int> rules;   // kGroup: attrs["rules"] as rule indices (a view rule last)
    bool view = false;        // kGroup: a lone op with a view rule
    bool blocked = false;     // kGroup: attrs["layout"] is the layout's name, not "plain"
    int tensor = -1;          // reorders: the tensor converted
    int shape = -1;           //   and its shape id
    int duplicate_of = -1;    // kDuplicate: the node kept in its place
};

std::vector<Kernel> partition(const Graph& g, const Rules& rules);

}  // namespace nnm::part
