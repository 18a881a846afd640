// Tree-ensemble evaluation over the flattened node table of nnmeter_tvm/predictors/trees.py.
//
// The table holds the trees of several XGBoost boosters side by side.  Node i splits on
// feature feat[i] at threshold thr[i]; its left child is child[i] and its right child
// child[i] + 1, both after i; a leaf has child[i] == i and its output in value[i].  As in
// XGBoost, a row goes left when x < threshold (features are finite: no default direction for
// missing values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nnm {

class Forest {
  public:
    // Copies and checks the table (children inside it and after their node, features >= 0);
    // throws std::invalid_argument naming the first bad node.
    Forest(const std::int64_t* feat, const float* thr, const std::int64_t* child,
           const float* value, std::size_t size);

    // out[r] = sum over the trees starting at roots[0..n_roots) of the leaf value row r of x
    // (n_rows x width, row-major) reaches, added in tree order in double precision.  Throws
    // std::out_of_range on a root outside the table or a tree splitting on a feature >= width.
    void margins(const std::int64_t* roots, std::size_t n_roots, const float* x,
                 std::size_t n_rows, std::size_t width, double* out) const;

    std::size_t size() const { return nodes_.size(); }

  private:
    struct Node {
        std::int32_t feat;
        float thr;  // a leaf: NaN, so that every row stays on it
        std::int32_t child;
        float value;
    };
    std::vector<Node> nodes_;
    std::vector<std::int32_t> height_;    // levels below each node (0 for a leaf)
    std::vector<std::int32_t> max_feat_;  // largest feature split on below each node (-1: none)
};

}  // namespace nnm
