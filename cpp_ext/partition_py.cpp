// Python side of the C++ partition (partition.h): _features.PartitionRules (a Rules object
// compiled once into lookup tables; nnmeter_tvm/kernels/native.py writes its spec) and
// _features.partition(graph, rules), which reads a Graph into arrays, partitions it and returns
// the kernels as nnmeter_tvm.kernels.Kernel objects.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "partition.h"

namespace py = pybind11;

namespace nnm {
namespace {

using part::Kernel;

// Strings the kernels are built from, made once per rules object.
struct Names {
    py::str name{"name"}, op{"op"}, source_op{"source_op"}, inputs{"inputs"}, outputs{"outputs"},
        input_shapes{"input_shapes"}, output_shapes{"output_shapes"}, attrs{"attrs"},
        nodes{"nodes"}, graph_outputs{"outputs"};
    py::str const_inputs{"const_inputs"}, group{"group"}, cout{"cout"}, axis{"axis"};
    // Kernel fields, in declaration order (native.py checks them against the dataclass)
    py::str k_name{"name"}, k_type{"type"}, k_nodes{"nodes"}, k_anchor{"anchor"}, k_ops{"ops"},
        k_inserted{"inserted"}, k_rule{"rule"}, k_attrs{"attrs"};
    py::str rules{"rules"}, view{"view"}, layout{"layout"}, plain{"plain"}, tensor{"tensor"},
        shape{"shape"}, direction{"direction"}, block{"block"}, dtype{"dtype"}, float32{"float32"},
        to_blocked{"to_blocked"}, from_blocked{"from_blocked"}, duplicate_of{"duplicate_of"},
        cse{"cse"}, reorder{"reorder"}, dash{"-"}, reorder_input{"reorder_input:"},
        reorder_output{"reorder_output:"};
    py::int_ one{1}, minus_three{-3};
};

class PartitionRules {
  public:
    explicit PartitionRules(const py::dict& spec);

    part::Rules tables;
    py::dict op_ids;                     // op name -> id
    std::vector<py::object> rule_names;  // per rule
    py::object layout_name, layout_block, layout_rule;
    py::object kernel_class, attrs_key;
    Names names;
};

part::LayoutConds read_conds(const py::handle& raw) {
    // (has plain_below, plain_below, has multiple, multiple, has group_multiple,
    //  group_multiple, same_shape, const_operand), normalized by native.py
    const py::tuple c = py::reinterpret_borrow<py::tuple>(raw);
    part::LayoutConds out;
    out.has_plain_below = c[0].cast<bool>();
    if (out.has_plain_below) out.plain_below = c[1].cast<std::int64_t>();
    out.has_multiple = c[2].cast<bool>();
    if (out.has_multiple) out.multiple = c[3].cast<std::int64_t>();
    out.has_group_multiple = c[4].cast<bool>();
    if (out.has_group_multiple) out.group_multiple = c[5].cast<std::int64_t>();
    out.same_shape = c[6].cast<bool>();
    out.const_operand = c[7].cast<bool>();
    return out;
}

PartitionRules::PartitionRules(const py::dict& spec) {
    part::Rules& t = tables;
    const py::list ops = spec["ops"];
    t.n_ops = static_cast<int>(ops.size());
    for (int i = 0; i < t.n_ops; ++i) op_ids[ops[i]] = i;
    t.compute.assign(t.n_ops, 0);
    t.binary.assign(t.n_ops, 0);
    for (const py::handle op : spec["compute"]) t.compute.at(op.cast<int>()) = 1;
    for (const py::handle op : spec["binary"]) t.binary.at(op.cast<int>()) = 1;
    t.concat = spec["concat"].cast<int>();
    for (const py::handle raw : spec["rules"]) {
        // (kind, topology, op ids, together bits, requires codes, name)
        const py::tuple r = py::reinterpret_borrow<py::tuple>(raw);
        const std::string kind = r[0].cast<std::string>();
        const std::vector<int> rops = r[2].cast<std::vector<int>>();
        part::Rule rule;
        rule.together = r[3].cast<std::uint16_t>();
        for (int code : r[4].cast<std::vector<int>>())
            rule.requires.push_back(static_cast<part::Cond>(code));
        const int index = static_cast<int>(t.rules.size());
        t.rules.push_back(rule);
        rule_names.push_back(r[5]);
        std::uint64_t key = 0;
        for (std::size_t k = 0; k < rops.size(); ++k)
            key |= static_cast<std::uint64_t>(rops[k]) << (21 * k);
        part::PatternIndex* table = nullptr;
        if (kind == "pair") table = &t.pair;
        else if (kind == "chain") table = &t.chain;
        else if (kind == "multi_input") table = &t.multi_input;
        else if (kind == "view") table = &t.view;
        else if (kind == "multi_output")
            table = r[1].cast<std::string>() == "diamond" ? &t.diamond : &t.fork;
        else throw py::value_error("PartitionRules: unknown rule kind '" + kind + "'");
        table->emplace(key, index);  // emplace keeps the first rule of a pattern
    }
    t.starts.assign(t.n_ops, -1);
    t.follows.assign(t.n_ops, -1);
    t.reads_group.assign(t.n_ops, 0);
    const py::object layout = spec["layout"];
    if (!layout.is_none()) {
        t.layout = true;
        layout_name = layout["name"];
        layout_block = layout["block"];
        layout_rule = layout["rule"];
        for (const char* which : {"starts", "follows"}) {
            std::vector<int>& at = std::string(which) == "starts" ? t.starts : t.follows;
            for (const auto& item : py::reinterpret_borrow<py::dict>(layout[which])) {
                const int op = item.first.cast<int>();
                at.at(op) = static_cast<int>(t.conds.size());
                t.conds.push_back(read_conds(item.second));
                if (t.conds.back().has_group_multiple) t.reads_group[op] = 1;
            }
        }
    }
    const py::object cse = spec["cse_keep_first"];
    t.cse = !cse.is_none();
    t.cse_keep_first = t.cse && cse.cast<bool>();
    kernel_class = spec["kernel"];
    attrs_key = spec["attrs_key"];
}

// ---- reading a Graph ---------------------------------------------------------------------------

// The Python objects a graph's kernels are made of.  Tensors and shapes are borrowed from the
// node sequences held here.
struct GraphObjects {
    std::vector<py::object> name, op, attrs, seqs;
    std::vector<PyObject*> tensor, shape;
    py::dict tensor_ids, extra_op_ids, attrs_ids;
};

// A sequence as a tuple or list (kept alive in objs.seqs).
PyObject* fast(GraphObjects& objs, PyObject* seq) {
    PyObject* f = PySequence_Fast(seq, "partition: expected a sequence");
    if (!f) throw py::error_already_set();
    objs.seqs.push_back(py::reinterpret_steal<py::object>(f));
    return f;
}

py::object get_attr(PyObject* obj, const py::str& name) {
    PyObject* v = PyObject_GetAttr(obj, name.ptr());
    if (!v) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(v);
}

// attrs.get(key): a borrowed reference, or null when missing
PyObject* attrs_get(PyObject* attrs, const py::str& key, py::object& hold) {
    if (PyDict_Check(attrs)) {
        PyObject* v = PyDict_GetItemWithError(attrs, key.ptr());
        if (!v && PyErr_Occurred()) throw py::error_already_set();
        return v;
    }
    hold = py::reinterpret_borrow<py::object>(attrs).attr("get")(key);
    return hold.is_none() ? nullptr : hold.ptr();
}

int intern(py::dict& ids, PyObject* key, int next) {
    PyObject* id = PyDict_GetItemWithError(ids.ptr(), key);
    if (id) return static_cast<int>(PyLong_AsLong(id));
    if (PyErr_Occurred()) throw py::error_already_set();
    py::int_ value(next);
    if (PyDict_SetItem(ids.ptr(), key, value.ptr()) < 0) throw py::error_already_set();
    return next;
}

int tensor_id(GraphObjects& objs, PyObject* name) {
    const int id = intern(objs.tensor_ids, name, static_cast<int>(objs.tensor.size()));
    if (id == static_cast<int>(objs.tensor.size())) objs.tensor.push_back(name);
    return id;
}

int op_id(const PartitionRules& rules, GraphObjects& objs, PyObject* op) {
    PyObject* id = PyDict_GetItemWithError(rules.op_ids.ptr(), op);
    if (id) return static_cast<int>(PyLong_AsLong(id));
    if (PyErr_Occurred()) throw py::error_already_set();
    // an op the rules and the vocabulary do not know: an id of this graph's own
    const int next = rules.tables.n_ops + static_cast<int>(PyDict_Size(objs.extra_op_ids.ptr()));
    return intern(objs.extra_op_ids, op, next);
}

std::int64_t to_int(PyObject* v, const char* what) {
    const long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error(std::string("partition: ") + what + " must be an integer, got " +
                             py::repr(v).cast<std::string>());
    }
    return x;
}

void read_shapes(GraphObjects& objs, part::Graph& g, PyObject* shapes) {
    PyObject* seq = fast(objs, shapes);
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* shape = PySequence_Fast_GET_ITEM(seq, i);
        PyObject* dims = fast(objs, shape);
        const Py_ssize_t rank = PySequence_Fast_GET_SIZE(dims);
        for (Py_ssize_t d = 0; d < rank; ++d)
            g.dims.push_back(to_int(PySequence_Fast_GET_ITEM(dims, d), "a shape dimension"));
        g.dim_at.push_back(static_cast<int>(g.dims.size()));
        objs.shape.push_back(shape);
    }
}

void read_tensors(GraphObjects& objs, PyObject* names, std::vector<int>& ids,
                  std::vector<int>& at) {
    PyObject* seq = fast(objs, names);
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; ++i)
        ids.push_back(tensor_id(objs, PySequence_Fast_GET_ITEM(seq, i)));
    at.push_back(static_cast<int>(ids.size()));
}

// The attributes the layout model reads, for the nodes whose op it reads them of.
void read_layout_attrs(const PartitionRules& rules, part::Graph& g, PyObject* attrs, int op) {
    const part::Rules& t = rules.tables;
    const Names& s = rules.names;
    py::object hold;
    std::int64_t group = 1, cout = 0;
    bool has_cout = false, axis_ok = false;
    if (op < t.n_ops && t.reads_group[op]) {
        if (PyObject* v = attrs_get(attrs, s.group, hold)) group = to_int(v, "attrs['group']");
        if (PyObject* v = attrs_get(attrs, s.cout, hold)) {
            cout = to_int(v, "attrs['cout']");
            has_cout = true;
        }
    }
    if (op == t.concat) {
        if (PyObject* v = attrs_get(attrs, s.axis, hold)) {
            const int one = PyObject_RichCompareBool(v, s.one.ptr(), Py_EQ);
            const int m3 = one == 1 ? 0 : PyObject_RichCompareBool(v, s.minus_three.ptr(), Py_EQ);
            if (one < 0 || m3 < 0) throw py::error_already_set();
            axis_ok = one == 1 || m3 == 1;
        }
    }
    g.group.push_back(group);
    g.cout.push_back(cout);
    g.has_cout.push_back(has_cout);
    g.concat_axis_ok.push_back(axis_ok);
}

part::Graph read_graph(const py::handle& graph, const PartitionRules& rules, GraphObjects& objs) {
    const Names& s = rules.names;
    part::Graph g;
    PyObject* nodes = fast(objs, get_attr(graph.ptr(), s.nodes).ptr());
    g.n_nodes = static_cast<int>(PySequence_Fast_GET_SIZE(nodes));
    g.in_begin.assign(1, 0);
    g.out_begin.assign(1, 0);
    g.shape_at.assign(1, 0);
    g.dim_at.assign(1, 0);
    const bool cse = rules.tables.cse;
    for (int i = 0; i < g.n_nodes; ++i) {
        PyObject* node = PySequence_Fast_GET_ITEM(nodes, i);
        objs.name.push_back(get_attr(node, s.name));
        objs.op.push_back(get_attr(node, s.op));
        objs.attrs.push_back(get_attr(node, s.attrs));
        const int op = op_id(rules, objs, objs.op.back().ptr());
        g.op.push_back(op);
        g.source_op.push_back(cse ? op_id(rules, objs, get_attr(node, s.source_op).ptr()) : 0);
        read_tensors(objs, get_attr(node, s.inputs).ptr(), g.inputs, g.in_begin);
        read_tensors(objs, get_attr(node, s.outputs).ptr(), g.outputs, g.out_begin);
        read_shapes(objs, g, get_attr(node, s.input_shapes).ptr());
        g.out_shape_at.push_back(static_cast<int>(objs.shape.size()));
        read_shapes(objs, g, get_attr(node, s.output_shapes).ptr());
        g.shape_at.push_back(static_cast<int>(objs.shape.size()));
        PyObject* attrs = objs.attrs.back().ptr();
        py::object hold;
        PyObject* ci = attrs_get(attrs, s.const_inputs, hold);
        const int weights = ci ? PyObject_IsTrue(ci) : 0;
        if (weights < 0) throw py::error_already_set();
        g.const_inputs.push_back(weights);
        read_layout_attrs(rules, g, attrs, op);
    }
    std::vector<int> returned;
    PyObject* outs = fast(objs, get_attr(graph.ptr(), s.graph_outputs).ptr());
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(outs); ++i) {
        objs.seqs.push_back(get_attr(PySequence_Fast_GET_ITEM(outs, i), s.name));
        returned.push_back(tensor_id(objs, objs.seqs.back().ptr()));
    }
    g.n_tensors = static_cast<int>(objs.tensor.size());
    g.graph_output.assign(g.n_tensors, 0);
    for (int t : returned) g.graph_output[t] = 1;
    g.attrs_key = [&rules, &objs](int node) {  // repr of the attributes, as an id
        const py::object key = rules.attrs_key(objs.attrs[node]);
        const int next = static_cast<int>(PyDict_Size(objs.attrs_ids.ptr()));
        return intern(objs.attrs_ids, key.ptr(), next);
    };
    return g;
}

// ---- building Kernels --------------------------------------------------------------------------

// A Kernel made as its frozen dataclass __init__ makes one, an object.__setattr__ per field,
// without the Python frame (which costs several times the rest of the partition per kernel).
py::object new_kernel(const PartitionRules& rules, py::object name, py::object type,
                      py::object nodes, py::object anchor, py::object ops, bool inserted,
                      py::object rule, py::object attrs) {
    const Names& s = rules.names;
    auto* cls = reinterpret_cast<PyTypeObject*>(rules.kernel_class.ptr());
    py::object obj =
        py::reinterpret_steal<py::object>(cls->tp_new(cls, py::tuple().ptr(), nullptr));
    if (!obj) throw py::error_already_set();
    const std::pair<const py::str&, PyObject*> fields[] = {
        {s.k_name, name.ptr()},   {s.k_type, type.ptr()},
        {s.k_nodes, nodes.ptr()}, {s.k_anchor, anchor.ptr()},
        {s.k_ops, ops.ptr()},     {s.k_inserted, inserted ? Py_True : Py_False},
        {s.k_rule, rule.ptr()},   {s.k_attrs, attrs.ptr()}};
    for (const auto& [field, value] : fields)
        if (PyObject_GenericSetAttr(obj.ptr(), field.ptr(), value) < 0)
            throw py::error_already_set();
    return obj;
}

py::object borrow(PyObject* o) { return py::reinterpret_borrow<py::object>(o); }

py::object group_kernel(const PartitionRules& rules, const GraphObjects& objs, const Kernel& k) {
    const Names& s = rules.names;
    const int n = static_cast<int>(k.nodes.size());
    py::tuple names(n), ops(n);
    for (int i = 0; i < n; ++i) {
        names[i] = objs.name[k.nodes[i]];
        ops[i] = objs.op[k.nodes[i]];
    }
    py::object name = objs.name[k.nodes.front()];
    if (n > 1) {  // _kernel_name: first..last
        PyObject* joined =
            PyUnicode_FromFormat("%U..%U", name.ptr(), objs.name[k.nodes.back()].ptr());
        if (!joined) throw py::error_already_set();
        name = py::reinterpret_steal<py::object>(joined);
    }
    PyObject* type = PyUnicode_Join(s.dash.ptr(), ops.ptr());  // kernel_type
    if (!type) throw py::error_already_set();
    py::list used(k.rules.size());
    for (std::size_t i = 0; i < k.rules.size(); ++i) used[i] = rules.rule_names[k.rules[i]];
    py::dict attrs;
    attrs[s.rules] = used;
    if (k.view) attrs[s.view] = py::bool_(true);
    if (rules.tables.layout) attrs[s.layout] = k.blocked ? rules.layout_name : py::object(s.plain);
    if (rules.tables.layout && k.blocked) attrs[s.block] = rules.layout_block;
    py::object rule = k.rules.empty() ? py::none() : rules.rule_names[k.rules.back()];
    return new_kernel(rules, name, py::reinterpret_steal<py::object>(type), names,
                      objs.name[k.anchor], ops, false, rule, attrs);
}

py::object reorder_kernel(const PartitionRules& rules, const GraphObjects& objs, const Kernel& k) {
    const Names& s = rules.names;
    const bool in = k.kind == Kernel::Kind::kReorderIn;
    PyObject* tensor = objs.tensor[k.tensor];
    PyObject* name = PyUnicode_Concat((in ? s.reorder_input : s.reorder_output).ptr(), tensor);
    if (!name) throw py::error_already_set();
    PyObject* shape = PySequence_Tuple(objs.shape[k.shape]);
    if (!shape) throw py::error_already_set();
    py::dict attrs;
    attrs[s.tensor] = borrow(tensor);
    attrs[s.shape] = py::reinterpret_steal<py::object>(shape);
    attrs[s.direction] = in ? s.to_blocked : s.from_blocked;
    attrs[s.block] = rules.layout_block;
    attrs[s.dtype] = s.float32;
    return new_kernel(rules, py::reinterpret_steal<py::object>(name), s.reorder, py::tuple(),
                      py::none(), py::make_tuple(s.reorder), true, rules.layout_rule, attrs);
}

py::object duplicate_kernel(const PartitionRules& rules, const GraphObjects& objs,
                            const Kernel& k) {
    const Names& s = rules.names;
    const py::object& name = objs.name[k.nodes.front()];
    const py::object& op = objs.op[k.nodes.front()];
    py::dict attrs;
    attrs[s.view] = py::bool_(true);
    attrs[s.duplicate_of] = objs.name[k.duplicate_of];
    py::list used(1);
    used[0] = s.cse;
    attrs[s.rules] = used;
    return new_kernel(rules, name, op, py::make_tuple(name), name, py::make_tuple(op), false,
                      s.cse, attrs);
}

py::list partition_graph(py::handle graph, const PartitionRules& rules) {
    GraphObjects objs;
    const part::Graph g = read_graph(graph, rules, objs);
    const std::vector<Kernel> kernels = part::partition(g, rules.tables);
    py::list out(kernels.size());
    for (std::size_t i = 0; i < kernels.size(); ++i) {
        const Kernel& k = kernels[i];
        switch (k.kind) {
            case Kernel::Kind::kGroup: out[i] = group_kernel(rules, objs, k); break;
            case Kernel::Kind::kDuplicate: out[i] = duplicate_kernel(rules, objs, k); break;
            default: out[i] = reorder_kernel(rules, objs, k);
        }
    }
    return out;
}

}  // namespace

void bind_partition(py::module_& m) {
    py::class_<PartitionRules>(m, "PartitionRules",
                               "A fusion Rules object compiled into lookup tables for partition(); "
                               "build it with nnmeter_tvm.kernels.native.compiled(rules).")
        .def(py::init<const py::dict&>(), py::arg("spec"));
    m.def("partition", &partition_graph, py::arg("graph"), py::arg("rules"),
          "The kernels of a Graph under PartitionRules: the same list of Kernel objects as "
          "nnmeter_tvm.kernels.partition.partition_with_decisions(graph, rules)[0].");
}

}  // namespace nnm
