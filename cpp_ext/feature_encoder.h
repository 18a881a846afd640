// Kernel feature encoder: raw kernel configurations -> feature rows, one encoder per family.
// (Not named features.h: with -Icpp_ext that would shadow glibc's <features.h>.)
//
// The schema it implements is nnmeter_tvm/features/schema.py (SCHEMA_VERSION below must equal
// it; the Python shim refuses to run otherwise, and tests compare every name).  Each encoder
// reads its raw fields and writes its derived features through an Io, by name: run once in
// "names" mode it lists the family's raw fields and feature names, so the column names the
// extension exposes are produced by the very code that fills the columns.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace nnm {

constexpr int kSchemaVersion = 3;

// Reads one raw row and writes one feature row; or, in names mode, records the names.
struct Io {
    const double* raw = nullptr;   // values mode: the raw row
    double* out = nullptr;         // values mode: where the derived features go
    std::vector<std::string>* raw_names = nullptr;      // names mode
    std::vector<std::string>* derived_names = nullptr;  // names mode

    double get(const char* name) {
        if (raw_names) {
            raw_names->emplace_back(name);
            return 1.0;
        }
        return *raw++;
    }
    void put(const char* name, double value) {
        if (derived_names)
            derived_names->emplace_back(name);
        else
            *out++ = value;
    }
    void put(const std::string& name, double value) {
        if (derived_names)
            derived_names->push_back(name);
        else
            *out++ = value;
    }
    bool naming() const { return derived_names != nullptr; }
};

using Encoder = void (*)(Io&);

struct Family {
    std::string name;
    Encoder encode;
    std::vector<std::string> raw;      // raw field names, in order
    std::vector<std::string> derived;  // derived feature names, in order
    std::size_t raw_width() const { return raw.size(); }
    std::size_t width() const { return raw.size() + derived.size(); }
};

// All families, in schema order, with their names filled in.
const std::vector<Family>& families();
const Family* find_family(const std::string& name);

// Encode n rows of family f: raw is n x f.raw_width() row-major; out is n x f.width().
template <class T>
void encode_rows(const Family& f, const double* raw, std::size_t n, T* out);

}  // namespace nnm
