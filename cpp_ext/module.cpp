// Python binding: nnmeter_tvm._features.  The shim nnmeter_tvm/features/__init__.py wraps the
// encoder; nnmeter_tvm/predictors/trees.py uses Forest; nnmeter_tvm/kernels/native.py uses
// PartitionRules and partition (bound in partition_py.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "feature_encoder.h"
#include "tree_table.h"

namespace py = pybind11;

namespace nnm {
void bind_partition(py::module_& m);  // partition_py.cpp
}  // namespace nnm

namespace {

const nnm::Family& lookup(const std::string& name) {
    if (const nnm::Family* f = nnm::find_family(name)) return *f;
    std::string valid;
    for (const nnm::Family& f : nnm::families()) valid += (valid.empty() ? "" : ", ") + f.name;
    throw py::key_error("unknown feature family '" + name + "'; valid: " + valid);
}

template <class T>
py::array_t<T> run(const nnm::Family& f, const double* raw, py::ssize_t n) {
    py::array_t<T> out({n, static_cast<py::ssize_t>(f.width())});
    T* dst = out.mutable_data();
    if (n > 4096) {
        py::gil_scoped_release release;
        nnm::encode_rows<T>(f, raw, static_cast<std::size_t>(n), dst);
    } else {
        nnm::encode_rows<T>(f, raw, static_cast<std::size_t>(n), dst);
    }
    return out;
}

py::array encode(const std::string& family,
                 py::array_t<double, py::array::c_style | py::array::forcecast> configs,
                 bool exact) {
    const nnm::Family& f = lookup(family);
    const py::ssize_t rw = static_cast<py::ssize_t>(f.raw_width());
    py::ssize_t n = 0;
    if (configs.ndim() == 2 && configs.shape(1) == rw) {
        n = configs.shape(0);
    } else if (configs.ndim() == 1 && configs.shape(0) == rw) {
        n = 1;
    } else {
        std::string got = "shape (";
        for (py::ssize_t d = 0; d < configs.ndim(); ++d)
            got += (d ? ", " : "") + std::to_string(configs.shape(d));
        got += configs.ndim() == 1 ? ",)" : ")";
        throw py::value_error("feature family '" + family + "' expects configs of shape (N, " +
                              std::to_string(rw) + ") -- its raw fields " + f.raw.front() +
                              " ... " + f.raw.back() + " -- but got " + got +
                              "; build rows with nnmeter_tvm.features.kernel_config or "
                              "raw_fields('" + family + "')");
    }
    if (exact) return run<double>(f, configs.data(), n);
    return run<float>(f, configs.data(), n);
}

template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

nnm::Forest make_forest(CArray<std::int64_t> feat, CArray<float> thr, CArray<std::int64_t> child,
                        CArray<float> value) {
    const py::ssize_t size = feat.size();
    if (thr.size() != size || child.size() != size || value.size() != size)
        throw py::value_error("Forest: feat, thr, child and value need one entry per node");
    return nnm::Forest(feat.data(), thr.data(), child.data(), value.data(),
                       static_cast<std::size_t>(size));
}

py::array_t<double> forest_margins(const nnm::Forest& forest, CArray<std::int64_t> roots,
                                   CArray<float> x) {
    if (x.ndim() != 2)
        throw py::value_error("Forest.margins: x must be 2-D (rows x features), got " +
                              std::to_string(x.ndim()) + " dimensions");
    py::array_t<double> out(x.shape(0));
    forest.margins(roots.data(), static_cast<std::size_t>(roots.size()), x.data(),
                   static_cast<std::size_t>(x.shape(0)), static_cast<std::size_t>(x.shape(1)),
                   out.mutable_data());
    return out;
}

}  // namespace

PYBIND11_MODULE(_features, m) {
    m.doc() = "Kernel feature encoder, tree evaluator and kernel partition (C++). Use them "
               "through nnmeter_tvm.features, nnmeter_tvm.predictors.trees and "
               "nnmeter_tvm.kernels.partition.";
    m.attr("SCHEMA_VERSION") = nnm::kSchemaVersion;
    m.def("families", [] {
        std::vector<std::string> names;
        for (const nnm::Family& f : nnm::families()) names.push_back(f.name);
        return names;
    }, "Family names, in schema order.");
    m.def("raw_fields", [](const std::string& family) { return lookup(family).raw; },
          py::arg("family"), "Raw config field names of a family, in column order.");
    m.def("feature_names", [](const std::string& family) {
        const nnm::Family& f = lookup(family);
        std::vector<std::string> names(f.raw);
        names.insert(names.end(), f.derived.begin(), f.derived.end());
        return names;
    }, py::arg("family"), "Feature (output column) names of a family: raw fields, then derived.");
    py::class_<nnm::Forest>(m, "Forest",
                            "XGBoost trees flattened into one node table "
                            "(nnmeter_tvm.predictors.trees.TreeTable).")
        .def(py::init(&make_forest), py::arg("feat"), py::arg("thr"), py::arg("child"),
             py::arg("value"))
        .def("margins", &forest_margins, py::arg("roots"), py::arg("x"),
             "Sum of the leaf values each row of x (float32, rows x features) reaches in the "
             "trees at roots, in tree order (float64, one per row).")
        .def_property_readonly("size", &nnm::Forest::size);
    m.def("encode", &encode, py::arg("family"), py::arg("configs"), py::arg("exact") = false,
          "Encode raw configs (N x raw width, float64) of one family: float32 N x F "
          "(float64 when exact).");
    nnm::bind_partition(m);
}
