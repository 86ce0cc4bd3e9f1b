// formats/gguf.cpp: the GGUF reader, metadata values and type tables (see gguf.h; the writer is gguf_writer.cpp).
// The reader never trusts a count, length or offset before checking it against the bytes that remain.
#include "formats/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "formats/gguf_encoding.h"
#include "formats/safetensors.h"  // mapped_file

namespace autoglm {

using namespace gguf_encoding;

namespace {

// Every type id ggml defines, with its block shape (ggml.c's type traits; ids 4, 5, 31-33 and 36-38 were
// removed from ggml and are refused like unknown ids).
struct ggml_type_row {
  uint32_t id;
  ggml_type_traits traits;
};
constexpr ggml_type_row k_ggml_types[] = {
    {0, {"F32", 1, 4}},         {1, {"F16", 1, 2}},         {2, {"Q4_0", 32, 18}},      {3, {"Q4_1", 32, 20}},
    {6, {"Q5_0", 32, 22}},      {7, {"Q5_1", 32, 24}},      {8, {"Q8_0", 32, 34}},      {9, {"Q8_1", 32, 40}},
    {10, {"Q2_K", 256, 84}},    {11, {"Q3_K", 256, 110}},   {12, {"Q4_K", 256, 144}},   {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},   {15, {"Q8_K", 256, 292}},   {16, {"IQ2_XXS", 256, 66}}, {17, {"IQ2_XS", 256, 74}},
    {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},   {20, {"IQ4_NL", 32, 18}},   {21, {"IQ3_S", 256, 110}},
    {22, {"IQ2_S", 256, 82}},   {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},         {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},        {27, {"I64", 1, 8}},        {28, {"F64", 1, 8}},        {29, {"IQ1_M", 256, 56}},
    {30, {"BF16", 1, 2}},       {34, {"TQ1_0", 256, 54}},   {35, {"TQ2_0", 256, 66}},   {39, {"MXFP4", 32, 17}},
    {40, {"NVFP4", 64, 36}},    {41, {"Q1_0", 128, 18}},    {42, {"Q2_0", 64, 18}},
};

// ggml id <-> core dtype, for the types autoglm computes with.
constexpr std::pair<uint32_t, dtype> k_dtype_map[] = {
    {ggml_type_id::F32, dtype::F32},   {ggml_type_id::F16, dtype::F16},   {ggml_type_id::BF16, dtype::BF16},
    {ggml_type_id::Q8_0, dtype::Q8_0}, {ggml_type_id::Q4_0, dtype::Q4_0}, {ggml_type_id::Q4_K, dtype::Q4_K},
    {ggml_type_id::Q5_K, dtype::Q5_K}, {ggml_type_id::Q6_K, dtype::Q6_K}, {ggml_type_id::I8, dtype::I8},
    {ggml_type_id::I32, dtype::I32},   {ggml_type_id::I64, dtype::I64},   {ggml_type_id::Q4_1, dtype::Q4_1},
    {ggml_type_id::Q5_0, dtype::Q5_0}, {ggml_type_id::Q5_1, dtype::Q5_1},
};

constexpr const char* k_type_names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                        "u64", "i64", "f64"};

std::string q(const std::string& s) { return "'" + s + "'"; }

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw error(what + ": size overflows 64 bits");
  return r;
}

// A bounded cursor over the mapped file: every read checks the bytes that remain first.
class cursor {
 public:
  cursor(const std::string& path, const uint8_t* base, uint64_t size) : path_(path), base_(base), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }

  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > remaining())
      throw error(path_ + ": truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                  std::to_string(pos_) + " but the file ends at " + std::to_string(size_));
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32(const std::string& what) { return uint32_t(load_le(take(4, what), 4)); }
  uint64_t u64(const std::string& what) { return load_le(take(8, what), 8); }
  std::string string(const std::string& what, uint64_t max_len) {
    const uint64_t n = u64(what + " length");
    if (n > remaining())
      throw error(path_ + ": " + what + " length " + std::to_string(n) + " runs past the end of the file (" +
                  std::to_string(remaining()) + " bytes left at offset " + std::to_string(pos_) + ")");
    if (n > max_len)
      throw error(path_ + ": " + what + " is " + std::to_string(n) + " bytes, more than the limit of " +
                  std::to_string(max_len));
    const uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), size_t(n));
  }

 private:
  std::string path_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

gguf_type read_type(cursor& c, const std::string& what) {
  const uint32_t t = c.u32(what + " type");
  if (t >= uint32_t(gguf_type::COUNT))
    throw error(c.path() + ": " + what + " has unknown value type " + std::to_string(t) + " (GGUF defines 0-12)");
  return gguf_type(t);
}

// Smallest stored size of one element of type t (a string is at least its 8-byte length, an array at least
// its element type and count), so `count <= remaining / min_size` bounds every allocation by the file size.
uint64_t min_stored_size(gguf_type t) {
  if (t == gguf_type::STRING) return 8;
  if (t == gguf_type::ARRAY) return 12;
  return scalar_size(t);
}

gguf_value read_array_body(cursor& c, const std::string& what, int depth);

gguf_value read_value(cursor& c, gguf_type t, const std::string& what, int depth) {
  if (t == gguf_type::ARRAY) return read_array_body(c, what, depth);
  if (t == gguf_type::STRING) return gguf_value::of_string(c.string(what, c.remaining()));
  const uint8_t* p = c.take(scalar_size(t), what);
  if (t == gguf_type::BOOL && *p > 1)
    throw error(c.path() + ": " + what + " is a bool stored as " + std::to_string(*p) + " (must be 0 or 1)");
  if (t == gguf_type::BOOL) return gguf_value::of_bool(*p != 0);
  if (is_unsigned(t)) return gguf_value::of_uint(t, decode_scalar(t, p));
  if (is_signed(t)) return gguf_value::of_int(t, int64_t(decode_scalar(t, p)));
  const uint64_t bits = decode_scalar(t, p);
  double d;
  std::memcpy(&d, &bits, 8);
  return gguf_value::of_float(t, d);
}

gguf_value read_array_body(cursor& c, const std::string& what, int depth) {
  if (depth >= gguf_file::max_array_depth)
    throw error(c.path() + ": " + what + ": arrays nested more than " + std::to_string(gguf_file::max_array_depth) +
                " deep");
  const gguf_type elem = read_type(c, what + " element");
  const uint64_t n = c.u64(what + " element count");
  if (n > c.remaining() / min_stored_size(elem))
    throw error(c.path() + ": " + what + " claims " + std::to_string(n) + " elements of type " +
                gguf_type_name(elem) + " but only " + std::to_string(c.remaining()) + " bytes remain");
  if (elem == gguf_type::STRING) {
    std::vector<std::string> s;
    s.reserve(size_t(n));
    for (uint64_t i = 0; i < n; ++i) s.push_back(c.string(what + "[" + std::to_string(i) + "]", c.remaining()));
    return gguf_value::of_strings(std::move(s));
  }
  if (elem == gguf_type::ARRAY) {
    // The spec does not require the inner arrays to share an element type; each is kept as read.
    std::vector<gguf_value> items;
    items.reserve(size_t(n));
    for (uint64_t i = 0; i < n; ++i) items.push_back(read_array_body(c, what + "[" + std::to_string(i) + "]", depth + 1));
    return gguf_value::of_arrays(std::move(items));
  }
  const size_t esz = scalar_size(elem);
  const uint8_t* p = c.take(n * esz, what);  // n * esz <= remaining: checked above
  if (elem == gguf_type::BOOL)
    for (uint64_t i = 0; i < n; ++i)
      if (p[i] > 1)
        throw error(c.path() + ": " + what + "[" + std::to_string(i) + "] is a bool stored as " +
                    std::to_string(p[i]) + " (must be 0 or 1)");
  return gguf_value::of_packed(elem, n, p);
}

template <class T>
const T* sorted_find(const std::vector<std::pair<std::string, size_t>>& index, const std::vector<T>& items,
                     const std::string& name) {
  auto it = std::lower_bound(index.begin(), index.end(), name,
                             [](const std::pair<std::string, size_t>& e, const std::string& n) { return e.first < n; });
  if (it == index.end() || it->first != name) return nullptr;
  return &items[it->second];
}

}  // namespace

// ------------------------------------------------------------------------------------------------ type tables

const char* gguf_type_name(gguf_type t) {
  return uint32_t(t) < uint32_t(gguf_type::COUNT) ? k_type_names[uint32_t(t)] : "unknown";
}

const ggml_type_traits* ggml_type_lookup(uint32_t id) {
  for (const auto& row : k_ggml_types)
    if (row.id == id) return &row.traits;
  return nullptr;
}

bool dtype_from_ggml(uint32_t id, dtype& out) {
  for (const auto& [g, d] : k_dtype_map)
    if (g == id) {
      out = d;
      return true;
    }
  return false;
}

bool ggml_from_dtype(dtype t, uint32_t& out) {
  for (const auto& [g, d] : k_dtype_map)
    if (d == t) {
      out = g;
      return true;
    }
  return false;
}

uint64_t ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& ne, const std::string& what) {
  const ggml_type_traits* tt = ggml_type_lookup(type);
  if (!tt) throw error(what + ": unknown ggml type id " + std::to_string(type));
  // `span` counts a zero dimension as 1: a tensor [0, 2^62] holds no bytes, but core's byte strides of its
  // dimensions would still overflow, so the product of the non-zero dimensions must fit as well.
  uint64_t n = 1, span = 1;
  for (int64_t d : ne) {
    if (d < 0) throw error(what + ": negative dimension " + std::to_string(d));
    n = checked_mul(n, uint64_t(d), what);
    span = checked_mul(span, uint64_t(std::max<int64_t>(d, 1)), what);
    if (span > uint64_t(INT64_MAX)) throw error(what + ": size overflows 64 bits");
  }
  const int64_t row = ne.empty() ? 1 : ne[0];
  if (row % tt->block_elems != 0)
    throw error(what + ": rows of " + std::to_string(row) + " elements are not whole " + tt->name + " blocks of " +
                std::to_string(tt->block_elems));
  if (checked_mul(span / uint64_t(tt->block_elems) + 1, uint64_t(tt->block_bytes), what) > uint64_t(INT64_MAX))
    throw error(what + ": size overflows 64 bits");
  return n / uint64_t(tt->block_elems) * uint64_t(tt->block_bytes);
}

// ------------------------------------------------------------------------------------------------ gguf_value

gguf_value gguf_value::of_uint(gguf_type t, uint64_t v) {
  AG_CHECK(is_unsigned(t), "gguf_value::of_uint: not an unsigned type");
  AG_CHECK(scalar_size(t) == 8 || v < (uint64_t(1) << (8 * scalar_size(t))), "gguf_value::of_uint: out of range");
  gguf_value r;
  r.type_ = t;
  r.bits_ = v;
  return r;
}

gguf_value gguf_value::of_int(gguf_type t, int64_t v) {
  AG_CHECK(is_signed(t), "gguf_value::of_int: not a signed type");
  const int bits = int(8 * scalar_size(t));
  AG_CHECK(bits == 64 || (v >= -(int64_t(1) << (bits - 1)) && v < (int64_t(1) << (bits - 1))),
           "gguf_value::of_int: out of range");
  gguf_value r;
  r.type_ = t;
  r.bits_ = uint64_t(v);
  return r;
}

gguf_value gguf_value::of_float(gguf_type t, double v) {
  AG_CHECK(is_floating(t), "gguf_value::of_float: not a float type");
  gguf_value r;
  r.type_ = t;
  if (t == gguf_type::F32) v = double(float(v));  // what the file will hold
  std::memcpy(&r.bits_, &v, 8);
  return r;
}

gguf_value gguf_value::of_bool(bool v) {
  gguf_value r;
  r.type_ = gguf_type::BOOL;
  r.bits_ = v ? 1 : 0;
  return r;
}

gguf_value gguf_value::of_string(std::string v) {
  gguf_value r;
  r.type_ = gguf_type::STRING;
  r.str_ = std::move(v);
  return r;
}

gguf_value gguf_value::of_strings(std::vector<std::string> v) {
  gguf_value r;
  r.type_ = gguf_type::ARRAY;
  r.elem_ = gguf_type::STRING;
  r.n_ = v.size();
  r.strs_ = std::move(v);
  return r;
}

gguf_value gguf_value::of_ints(gguf_type elem, const std::vector<int64_t>& v) {
  AG_CHECK(is_signed(elem) || is_unsigned(elem) || elem == gguf_type::BOOL, "gguf_value::of_ints: not an integer type");
  gguf_value r;
  r.type_ = gguf_type::ARRAY;
  r.elem_ = elem;
  r.n_ = v.size();
  std::string bytes;
  for (int64_t x : v) {
    if (is_unsigned(elem)) of_uint(elem, uint64_t(x));  // range check
    else if (is_signed(elem)) of_int(elem, x);
    encode_scalar(bytes, elem, uint64_t(elem == gguf_type::BOOL ? (x != 0) : x));
  }
  r.raw_.assign(bytes.begin(), bytes.end());
  return r;
}

gguf_value gguf_value::of_floats(gguf_type elem, const std::vector<double>& v) {
  AG_CHECK(is_floating(elem), "gguf_value::of_floats: not a float type");
  gguf_value r;
  r.type_ = gguf_type::ARRAY;
  r.elem_ = elem;
  r.n_ = v.size();
  std::string bytes;
  for (double d : v) {
    uint64_t b;
    std::memcpy(&b, &d, 8);
    encode_scalar(bytes, elem, b);
  }
  r.raw_.assign(bytes.begin(), bytes.end());
  return r;
}

gguf_value gguf_value::of_packed(gguf_type elem, uint64_t n, const uint8_t* p) {
  AG_CHECK(scalar_size(elem) > 0, "gguf_value::of_packed: not a fixed-size element type");
  gguf_value r;
  r.type_ = gguf_type::ARRAY;
  r.elem_ = elem;
  r.n_ = n;
  r.raw_.assign(p, p + n * scalar_size(elem));
  return r;
}

gguf_value gguf_value::of_arrays(std::vector<gguf_value> v) {
  for (const gguf_value& item : v) AG_CHECK(item.is_array(), "gguf_value::of_arrays: items must be arrays");
  gguf_value r;
  r.type_ = gguf_type::ARRAY;
  r.elem_ = gguf_type::ARRAY;
  r.n_ = v.size();
  r.items_ = std::move(v);
  return r;
}

uint64_t gguf_value::as_uint(const std::string& what) const {
  if (is_unsigned(type_)) return bits_;
  if (is_signed(type_) && int64_t(bits_) >= 0) return bits_;
  if (is_signed(type_)) throw error(what + " is negative (" + std::to_string(int64_t(bits_)) + "), expected >= 0");
  throw error(what + " is of type " + gguf_type_name(type_) + ", expected an integer");
}

int64_t gguf_value::as_int(const std::string& what) const {
  if (is_signed(type_)) return int64_t(bits_);
  if (is_unsigned(type_) && bits_ <= uint64_t(INT64_MAX)) return int64_t(bits_);
  if (is_unsigned(type_)) throw error(what + " is " + std::to_string(bits_) + ", past the int64 range");
  throw error(what + " is of type " + gguf_type_name(type_) + ", expected an integer");
}

double gguf_value::as_float(const std::string& what) const {
  if (!is_floating(type_)) throw error(what + " is of type " + gguf_type_name(type_) + ", expected a float");
  double d;
  std::memcpy(&d, &bits_, 8);
  return d;
}

bool gguf_value::as_bool(const std::string& what) const {
  if (type_ != gguf_type::BOOL) throw error(what + " is of type " + gguf_type_name(type_) + ", expected a bool");
  return bits_ != 0;
}

const std::string& gguf_value::as_string(const std::string& what) const {
  if (type_ != gguf_type::STRING) throw error(what + " is of type " + gguf_type_name(type_) + ", expected a string");
  return str_;
}

std::vector<int64_t> gguf_value::as_int_array(const std::string& what) const {
  if (!is_array() || !(is_signed(elem_) || is_unsigned(elem_) || elem_ == gguf_type::BOOL))
    throw error(what + " is not an array of integers");
  const size_t esz = scalar_size(elem_);
  std::vector<int64_t> out(static_cast<size_t>(n_));
  for (uint64_t i = 0; i < n_; ++i) {
    const uint64_t b = decode_scalar(elem_, raw_.data() + i * esz);
    if (elem_ == gguf_type::U64 && b > uint64_t(INT64_MAX))
      throw error(what + "[" + std::to_string(i) + "] is " + std::to_string(b) + ", past the int64 range");
    out[size_t(i)] = int64_t(b);
  }
  return out;
}

std::vector<double> gguf_value::as_float_array(const std::string& what) const {
  if (!is_array() || !is_floating(elem_)) throw error(what + " is not an array of floats");
  const size_t esz = scalar_size(elem_);
  std::vector<double> out(static_cast<size_t>(n_));
  for (uint64_t i = 0; i < n_; ++i) {
    const uint64_t b = decode_scalar(elem_, raw_.data() + i * esz);
    std::memcpy(&out[size_t(i)], &b, 8);
  }
  return out;
}

const std::vector<std::string>& gguf_value::as_string_array(const std::string& what) const {
  if (!is_array() || elem_ != gguf_type::STRING) throw error(what + " is not an array of strings");
  return strs_;
}

const std::vector<gguf_value>& gguf_value::as_nested_array(const std::string& what) const {
  if (!is_array() || elem_ != gguf_type::ARRAY) throw error(what + " is not an array of arrays");
  return items_;
}

std::string gguf_value::str() const {
  switch (type_) {
    case gguf_type::STRING: return "\"" + str_ + "\"";
    case gguf_type::BOOL: return bits_ ? "true" : "false";
    case gguf_type::ARRAY: {
      if (n_ > 16) return "[... " + std::to_string(n_) + " " + gguf_type_name(elem_) + "]";
      std::string s = "[";
      for (uint64_t i = 0; i < n_; ++i) {
        if (i) s += ", ";
        if (elem_ == gguf_type::STRING) s += "\"" + strs_[size_t(i)] + "\"";
        else if (elem_ == gguf_type::ARRAY) s += items_[size_t(i)].str();
        else if (is_floating(elem_)) s += std::to_string(as_float_array("")[size_t(i)]);
        else s += std::to_string(as_int_array("")[size_t(i)]);
      }
      return s + "]";
    }
    default:
      if (is_unsigned(type_)) return std::to_string(bits_);
      if (is_signed(type_)) return std::to_string(int64_t(bits_));
      return std::to_string(as_float(""));
  }
}

bool gguf_value::operator==(const gguf_value& o) const {
  return type_ == o.type_ && elem_ == o.elem_ && bits_ == o.bits_ && n_ == o.n_ && str_ == o.str_ && raw_ == o.raw_ &&
         strs_ == o.strs_ && items_ == o.items_;
}

int64_t gguf_tensor_info::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // validated not to overflow
  return n;
}

// ------------------------------------------------------------------------------------------------ reader

gguf_file::gguf_file(const std::string& path) : path_(path), file_(std::make_shared<mapped_file>(path)) { parse(); }
gguf_file::~gguf_file() = default;

uint64_t gguf_file::file_size() const { return file_->size(); }

void gguf_file::parse() {
  cursor c(path_, file_->data(), file_->size());
  if (file_->size() < 4 || std::memcmp(file_->data(), k_magic, 4) != 0)
    throw error(path_ + ": not a GGUF file (it does not start with the bytes 'GGUF')");
  c.take(4, "magic");
  version_ = c.u32("version");
  if ((version_ & 0xffffu) == 0 && version_ != 0)
    throw error(path_ + ": GGUF version " + std::to_string(version_) +
                " looks byte-swapped (a big-endian file?); only little-endian GGUF is supported");
  if (version_ < 2 || version_ > 3)
    throw error(path_ + ": GGUF version " + std::to_string(version_) + " is not supported (only versions 2 and 3)");
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info 8 + 4 + 4 + 8.
  if (n_kv > c.remaining() / 13)
    throw error(path_ + ": header claims " + std::to_string(n_kv) + " metadata entries but only " +
                std::to_string(c.remaining()) + " bytes follow");
  if (n_tensors > c.remaining() / 24)
    throw error(path_ + ": header claims " + std::to_string(n_tensors) + " tensors but only " +
                std::to_string(c.remaining()) + " bytes follow");

  kv_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string item = "metadata entry " + std::to_string(i);
    std::string key = c.string(item + " key", max_key_bytes);
    if (key.empty()) throw error(path_ + ": " + item + " has an empty key");
    const gguf_type t = read_type(c, "metadata " + q(key));
    gguf_value v = read_value(c, t, "metadata " + q(key), 0);
    kv_.emplace_back(std::move(key), std::move(v));
  }
  kv_index_.reserve(kv_.size());
  for (size_t i = 0; i < kv_.size(); ++i) kv_index_.emplace_back(kv_[i].first, i);
  std::sort(kv_index_.begin(), kv_index_.end());
  for (size_t i = 1; i < kv_index_.size(); ++i)
    if (kv_index_[i].first == kv_index_[i - 1].first)
      throw error(path_ + ": metadata key " + q(kv_index_[i].first) + " appears twice");

  if (const gguf_value* a = find("general.alignment")) {
    if (a->type() != gguf_type::U32)
      throw error(path_ + ": metadata 'general.alignment' is of type " + gguf_type_name(a->type()) +
                  ", must be u32");
    const uint64_t al = a->as_uint("");
    if (al == 0 || (al & (al - 1)) != 0)
      throw error(path_ + ": general.alignment " + std::to_string(al) + " is not a power of two");
    alignment_ = uint32_t(al);
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    gguf_tensor_info t;
    t.name = c.string("tensor " + std::to_string(i) + " name", c.remaining());
    if (t.name.empty()) throw error(path_ + ": tensor " + std::to_string(i) + " has an empty name");
    if (t.name.size() > max_name_bytes)
      throw error(path_ + ": tensor " + std::to_string(i) + " name is " + std::to_string(t.name.size()) +
                  " bytes, more than ggml's limit of " + std::to_string(max_name_bytes));
    const std::string where = path_ + ": tensor " + q(t.name);
    const uint32_t n_dims = c.u32("tensor " + q(t.name) + " rank");
    if (n_dims > uint32_t(max_dims))
      throw error(where + ": " + std::to_string(n_dims) + " dimensions, more than " + std::to_string(max_dims));
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = c.u64("tensor " + q(t.name) + " dimension");
      if (v > uint64_t(INT64_MAX)) throw error(where + ": dimension " + std::to_string(d) + " is negative");
      t.ne.push_back(int64_t(v));
    }
    t.type = c.u32("tensor " + q(t.name) + " type");
    const ggml_type_traits* tt = ggml_type_lookup(t.type);
    if (!tt) throw error(where + ": unknown ggml type id " + std::to_string(t.type));
    t.n_bytes = ggml_tensor_bytes(t.type, t.ne, where);  // overflow, block multiples
    t.offset = c.u64("tensor " + q(t.name) + " offset");
    if (t.offset % alignment_ != 0)
      throw error(where + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(alignment_));
    tensors_.push_back(std::move(t));
  }
  tensor_index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_.emplace_back(tensors_[i].name, i);
  std::sort(tensor_index_.begin(), tensor_index_.end());
  for (size_t i = 1; i < tensor_index_.size(); ++i)
    if (tensor_index_[i].first == tensor_index_[i - 1].first)
      throw error(path_ + ": tensor " + q(tensor_index_[i].first) + " appears twice");

  // The data section starts at the next multiple of the alignment after the tensor infos.
  const uint64_t size = file_->size();
  data_offset_ = pad_to(c.pos(), alignment_);
  if (tensors_.empty()) return;
  if (data_offset_ > size)
    throw error(path_ + ": the data section would start at byte " + std::to_string(data_offset_) +
                ", past the end of the file (" + std::to_string(size) + " bytes)");
  const uint64_t data_size = size - data_offset_;
  std::vector<const gguf_tensor_info*> by_offset;
  for (gguf_tensor_info& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      throw error(path_ + ": tensor " + q(t.name) + ": offset " + std::to_string(t.offset) + " + " +
                  std::to_string(t.n_bytes) + " bytes runs past the end of the data section (" +
                  std::to_string(data_size) + " bytes)");
    t.data = file_->data() + data_offset_ + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->n_bytes > by_offset[i]->offset)
      throw error(path_ + ": tensors " + q(by_offset[i - 1]->name) + " and " + q(by_offset[i]->name) +
                  " overlap in the data section");
}

const gguf_value* gguf_file::find(const std::string& key) const {
  auto it = std::lower_bound(kv_index_.begin(), kv_index_.end(), key,
                             [](const std::pair<std::string, size_t>& e, const std::string& k) { return e.first < k; });
  if (it == kv_index_.end() || it->first != key) return nullptr;
  return &kv_[it->second].second;
}

const gguf_value& gguf_file::at(const std::string& key) const {
  const gguf_value* v = find(key);
  if (!v) throw error(path_ + ": missing metadata " + q(key));
  return *v;
}

uint64_t gguf_file::get_uint(const std::string& key) const { return at(key).as_uint(path_ + ": metadata " + q(key)); }
int64_t gguf_file::get_int(const std::string& key) const { return at(key).as_int(path_ + ": metadata " + q(key)); }
double gguf_file::get_float(const std::string& key) const { return at(key).as_float(path_ + ": metadata " + q(key)); }
bool gguf_file::get_bool(const std::string& key) const { return at(key).as_bool(path_ + ": metadata " + q(key)); }
std::string gguf_file::get_string(const std::string& key) const {
  return at(key).as_string(path_ + ": metadata " + q(key));
}
std::vector<int64_t> gguf_file::get_int_array(const std::string& key) const {
  return at(key).as_int_array(path_ + ": metadata " + q(key));
}
std::vector<double> gguf_file::get_float_array(const std::string& key) const {
  return at(key).as_float_array(path_ + ": metadata " + q(key));
}
std::vector<std::string> gguf_file::get_string_array(const std::string& key) const {
  return at(key).as_string_array(path_ + ": metadata " + q(key));
}

const gguf_tensor_info* gguf_file::find_tensor(const std::string& name) const {
  return sorted_find(tensor_index_, tensors_, name);
}

tensor gguf_file::view(const gguf_tensor_info& t) const {
  dtype d;
  if (!dtype_from_ggml(t.type, d)) {
    const ggml_type_traits* tt = ggml_type_lookup(t.type);
    throw error(path_ + ": tensor " + q(t.name) + " has type " + (tt ? tt->name : "?") +
                ", which autoglm cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, "
                "Q5_K, Q6_K)");
  }
  std::vector<int64_t> shape = t.shape();
  if (shape.empty()) shape = {1};
  tensor v = tensor::view(t.data, d, shape);
  v.set_owner(file_);
  return v;
}

}  // namespace autoglm
