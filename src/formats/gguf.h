// formats/gguf.h: the GGUF container (version 2 and 3, as ggml reads and writes it), independent of any model.
//
// Reader: `gguf_file` maps a file and validates every field before anything uses it: magic and version, the
// key/value and tensor counts against the bytes that remain, every string length, array counts and nesting
// depth, value types, tensor names, ranks, dimensions (no product overflows), ggml type ids, row sizes that are
// whole blocks, the data section's alignment (general.alignment), and that every tensor's bytes lie inside the
// data section without overlapping another. Errors are autoglm::error naming the file and the item
// ("m.gguf: tensor 'blk.0.attn_q.weight': offset 4096 + 32768 bytes runs past the end of the data section").
// Nothing is allocated in proportion to a count before the count is checked against the file's size.
//
// Writer: `gguf_writer` collects metadata and tensor descriptions, then streams the file: header, key/values,
// tensor infos, padding, and each tensor's bytes (produced on demand, so a 9B model never sits in memory
// twice), every tensor aligned as ggml requires (offsets in order, each padded to the alignment).
//
// Shapes: GGUF stores dimensions innermost first (ggml's ne[0] is the row length). `gguf_tensor_info::ne` keeps
// that order; `shape()` gives the outermost-first order of core tensors and PyTorch ([out, in] for a linear).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace autoglm {

class mapped_file;

// Metadata value types (the numbering of the GGUF spec).
enum class gguf_type : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64, COUNT };
const char* gguf_type_name(gguf_type t);  // "u32", "string", "array", ...

// ggml's tensor type ids that matter here (the full table, with every id ggml defines, is in gguf.cpp).
namespace ggml_type_id {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11,
                   Q4_K = 12, Q5_K = 13, Q6_K = 14, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30;
}

struct ggml_type_traits {
  const char* name;  // "Q4_K"
  int32_t block_elems;
  int32_t block_bytes;
};
// The traits of a ggml type id, or nullptr when ggml defines no such type (or only a removed one).
const ggml_type_traits* ggml_type_lookup(uint32_t id);
// The core dtype of a ggml type; false when autoglm has none (Q2_K, Q3_K, IQ*, ...).
bool dtype_from_ggml(uint32_t id, dtype& out);
// The ggml type of a core dtype; false when GGUF has none (U8).
bool ggml_from_dtype(dtype t, uint32_t& out);

// One metadata value: a scalar, a string, or an array (of scalars, strings or arrays).
class gguf_value {
 public:
  gguf_value() = default;
  static gguf_value of_uint(gguf_type t, uint64_t v);  // U8 / U16 / U32 / U64 (range-checked: AG_CHECK)
  static gguf_value of_int(gguf_type t, int64_t v);    // I8 / I16 / I32 / I64
  static gguf_value of_float(gguf_type t, double v);   // F32 / F64
  static gguf_value of_bool(bool v);
  static gguf_value of_string(std::string v);
  static gguf_value of_strings(std::vector<std::string> v);
  static gguf_value of_ints(gguf_type elem, const std::vector<int64_t>& v);  // any integer element type
  static gguf_value of_floats(gguf_type elem, const std::vector<double>& v);
  static gguf_value of_arrays(std::vector<gguf_value> v);  // an array of arrays
  // An array of numbers or bools from n packed little-endian elements (n * element size bytes at p).
  static gguf_value of_packed(gguf_type elem, uint64_t n, const uint8_t* p);

  gguf_type type() const { return type_; }
  gguf_type elem_type() const { return elem_; }  // arrays only
  bool is_array() const { return type_ == gguf_type::ARRAY; }
  uint64_t size() const { return n_; }  // array elements

  // Typed reads; `what` names the value in errors ("m.gguf: metadata 'glm4.block_count'"). Integers convert
  // between widths when the value fits; floats accept F32 and F64.
  uint64_t as_uint(const std::string& what) const;
  int64_t as_int(const std::string& what) const;
  double as_float(const std::string& what) const;
  bool as_bool(const std::string& what) const;
  const std::string& as_string(const std::string& what) const;
  std::vector<int64_t> as_int_array(const std::string& what) const;
  std::vector<double> as_float_array(const std::string& what) const;
  const std::vector<std::string>& as_string_array(const std::string& what) const;
  const std::vector<gguf_value>& as_nested_array(const std::string& what) const;

  // Readable form for logs and tests ("[1, 2, 3]", "\"glm4\"", "[... 151552 strings]").
  std::string str() const;
  bool operator==(const gguf_value& o) const;

 private:
  gguf_type type_ = gguf_type::U8;
  gguf_type elem_ = gguf_type::U8;
  uint64_t bits_ = 0;  // scalars: the value (signed in two's complement; floats as double bits)
  uint64_t n_ = 0;     // arrays: element count
  std::string str_;
  std::vector<uint8_t> raw_;          // arrays of numbers / bools: the elements, little-endian, packed
  std::vector<std::string> strs_;     // arrays of strings
  std::vector<gguf_value> items_;     // arrays of arrays
};

struct gguf_tensor_info {
  std::string name;
  uint32_t type = 0;         // ggml type id
  std::vector<int64_t> ne;   // dimensions, innermost first (ggml order); n_dims entries
  uint64_t offset = 0;       // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the mapping; valid while the gguf_file (or a view's owner) lives
  // Outermost first (PyTorch / core order): ne reversed.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  int64_t n_elements() const;
};

class gguf_file {
 public:
  static constexpr uint32_t default_alignment = 32;
  static constexpr int max_dims = 4;             // ggml's GGML_MAX_DIMS
  static constexpr size_t max_name_bytes = 63;   // ggml's GGML_MAX_NAME - 1
  static constexpr size_t max_key_bytes = 65535;
  static constexpr int max_array_depth = 4;

  explicit gguf_file(const std::string& path);  // maps and validates; throws autoglm::error
  ~gguf_file();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // byte where the data section starts
  uint64_t file_size() const;

  const std::vector<std::pair<std::string, gguf_value>>& metadata() const { return kv_; }
  const gguf_value* find(const std::string& key) const;  // nullptr when absent
  const gguf_value& at(const std::string& key) const;    // throws "<file>: missing metadata 'key'"
  // Typed getters naming the file and the key in errors.
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;

  const std::vector<gguf_tensor_info>& tensors() const { return tensors_; }
  const gguf_tensor_info* find_tensor(const std::string& name) const;
  // A core tensor over the mapped bytes, outermost-first shape, holding a reference to the mapping. Throws when
  // the ggml type has no core dtype ("... has type Q5_0, which autoglm cannot compute with").
  tensor view(const gguf_tensor_info& t) const;
  const std::shared_ptr<mapped_file>& mapping() const { return file_; }

 private:
  std::string path_;
  std::shared_ptr<mapped_file> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = default_alignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, gguf_value>> kv_;
  std::vector<gguf_tensor_info> tensors_;
  std::vector<std::pair<std::string, size_t>> kv_index_, tensor_index_;  // sorted by name, for lookups

  void parse();
};

// Writes a GGUF (version 3) file. Metadata keeps insertion order (setting a key twice replaces the value);
// tensors are written in the order added. The file is written to "<path>.tmp" and renamed at the end, so a
// failed or interrupted write never leaves a truncated file under the final name.
class gguf_writer {
 public:
  // Fills `dst` (exactly n_bytes) with the tensor's bytes in ggml layout.
  using producer = std::function<void(uint8_t* dst, size_t n_bytes)>;

  explicit gguf_writer(uint32_t alignment = gguf_file::default_alignment);

  void set(const std::string& key, gguf_value v);
  const gguf_value* find(const std::string& key) const;
  // `shape` outermost first (as core tensors); stored as ggml's ne (reversed). n_bytes follows from type + shape.
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape, producer fill);
  // A tensor copied from memory (`data` must stay valid until write()).
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape, const void* data);
  size_t n_tensors() const { return tensors_.size(); }

  // Writes the file; throws autoglm::error naming `path` on any failure. Returns the bytes written.
  uint64_t write(const std::string& path) const;

 private:
  struct pending {
    gguf_tensor_info info;
    producer fill;
  };
  uint32_t alignment_;
  std::vector<std::pair<std::string, gguf_value>> kv_;
  std::vector<pending> tensors_;
};

// Bytes of a tensor of ggml type `type` with dimensions `ne` (innermost first); throws autoglm::error `what`
// when the row is not whole blocks or the size overflows.
uint64_t ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& ne, const std::string& what);

}  // namespace autoglm
