// Tree-ensemble evaluation (see tree_table.h).  The NumPy evaluator it replaces walked every
// (row, tree) pair level by level with array indexing, which cost more than the trees' own work
// for one model.  Here a tree is walked for a block of rows at once: the walks are independent,
// so the CPU overlaps their memory loads, and every walk takes the tree's height in steps (a
// leaf points at itself), so the loop has no branch on the data.
#include "tree_table.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace nnm {
namespace {

constexpr std::size_t kBlock = 16;  // rows walked together through one tree

}  // namespace

Forest::Forest(const std::int64_t* feat, const float* thr, const std::int64_t* child,
               const float* value, std::size_t size)
    : nodes_(size), height_(size, 0), max_feat_(size, -1) {
    if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) - 1)
        throw std::invalid_argument("tree table too large: " + std::to_string(size) + " nodes");
    for (std::size_t i = 0; i < size; ++i) {
        const bool leaf = child[i] == static_cast<std::int64_t>(i);
        if (!leaf && (child[i] <= static_cast<std::int64_t>(i) ||
                      child[i] + 1 >= static_cast<std::int64_t>(size)))
            throw std::invalid_argument("tree node " + std::to_string(i) + " has child " +
                                        std::to_string(child[i]) + ": not after it in the table");
        if (!leaf && (feat[i] < 0 || feat[i] > std::numeric_limits<std::int32_t>::max()))
            throw std::invalid_argument("tree node " + std::to_string(i) + " splits on feature " +
                                        std::to_string(feat[i]));
        nodes_[i] = {leaf ? 0 : static_cast<std::int32_t>(feat[i]),
                     leaf ? std::numeric_limits<float>::quiet_NaN() : thr[i],
                     static_cast<std::int32_t>(child[i]), value[i]};
    }
    for (std::size_t i = size; i-- > 0;) {  // children come after their node: fill bottom-up
        const Node& n = nodes_[i];
        if (n.child == static_cast<std::int32_t>(i)) continue;
        const std::size_t l = static_cast<std::size_t>(n.child), r = l + 1;
        height_[i] = 1 + std::max(height_[l], height_[r]);
        max_feat_[i] = std::max({n.feat, max_feat_[l], max_feat_[r]});
    }
}

void Forest::margins(const std::int64_t* roots, std::size_t n_roots, const float* x,
                     std::size_t n_rows, std::size_t width, double* out) const {
    for (std::size_t k = 0; k < n_roots; ++k) {
        if (roots[k] < 0 || static_cast<std::size_t>(roots[k]) >= nodes_.size())
            throw std::out_of_range("tree root " + std::to_string(roots[k]) +
                                    " outside the table of " + std::to_string(nodes_.size()) +
                                    " nodes");
        if (max_feat_[roots[k]] >= static_cast<std::int64_t>(width))
            throw std::out_of_range("a tree splits on feature " +
                                    std::to_string(max_feat_[roots[k]]) + " but rows have " +
                                    std::to_string(width) + " features");
    }
    std::fill(out, out + n_rows, 0.0);
    for (std::size_t k = 0; k < n_roots; ++k) {  // tree by tree: each row still sums in tree order
        const std::int32_t root = static_cast<std::int32_t>(roots[k]);
        const std::int32_t height = height_[root];
        for (std::size_t r0 = 0; r0 < n_rows; r0 += kBlock) {
            const std::size_t nb = std::min(kBlock, n_rows - r0);
            const float* rows = x + r0 * width;
            std::int32_t at[kBlock];
            for (std::size_t b = 0; b < nb; ++b) at[b] = root;
            for (std::int32_t d = 0; d < height; ++d)
                for (std::size_t b = 0; b < nb; ++b) {
                    const Node& n = nodes_[at[b]];
                    at[b] = n.child + (rows[b * width + n.feat] >= n.thr);
                }
            for (std::size_t b = 0; b < nb; ++b) out[r0 + b] += nodes_[at[b]].value;
        }
    }
}

}  // namespace nnm
