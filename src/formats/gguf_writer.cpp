// formats/gguf_writer.cpp: the GGUF writer (see gguf.h): metadata and tensor infos built in memory, then the
// tensors streamed after them, laid out exactly as ggml's reader requires (in order, each at the running offset
// padded to the alignment), written to a temporary file renamed into place.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_encoding.h"

namespace autoglm {

using namespace gguf_encoding;

namespace {

void write_array_body(std::string& out, const gguf_value& v);

void write_value(std::string& out, const gguf_value& v) {
  switch (v.type()) {
    case gguf_type::STRING: {
      const std::string& s = v.as_string("value");
      store_le(out, s.size(), 8);
      out += s;
      break;
    }
    case gguf_type::ARRAY: write_array_body(out, v); break;
    case gguf_type::BOOL: out.push_back(v.as_bool("value") ? 1 : 0); break;
    default: {
      // Re-encode from the typed accessors (bits_ is private to the class; this keeps one encoding path).
      if (is_unsigned(v.type())) encode_scalar(out, v.type(), v.as_uint("value"));
      else if (is_signed(v.type())) encode_scalar(out, v.type(), uint64_t(v.as_int("value")));
      else {
        double d = v.as_float("value");
        uint64_t b;
        std::memcpy(&b, &d, 8);
        encode_scalar(out, v.type(), b);
      }
    }
  }
}

void write_array_body(std::string& out, const gguf_value& v) {
  store_le(out, uint32_t(v.elem_type()), 4);
  store_le(out, v.size(), 8);
  if (v.elem_type() == gguf_type::STRING) {
    for (const std::string& s : v.as_string_array("value")) {
      store_le(out, s.size(), 8);
      out += s;
    }
  } else if (v.elem_type() == gguf_type::ARRAY) {
    for (const gguf_value& item : v.as_nested_array("value")) write_array_body(out, item);
  } else if (v.elem_type() == gguf_type::BOOL) {
    for (int64_t b : v.as_int_array("value")) out.push_back(b ? 1 : 0);
  } else if (is_floating(v.elem_type())) {
    for (double d : v.as_float_array("value")) {
      uint64_t b;
      std::memcpy(&b, &d, 8);
      encode_scalar(out, v.elem_type(), b);
    }
  } else {
    for (int64_t i : v.as_int_array("value")) encode_scalar(out, v.elem_type(), uint64_t(i));
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------ writer

gguf_writer::gguf_writer(uint32_t alignment) : alignment_(alignment) {
  AG_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0, "gguf_writer: alignment must be a power of two");
  if (alignment != gguf_file::default_alignment)
    set("general.alignment", gguf_value::of_uint(gguf_type::U32, alignment));
}

void gguf_writer::set(const std::string& key, gguf_value v) {
  if (key.empty() || key.size() > gguf_file::max_key_bytes) throw error("gguf: metadata key '" + key + "' is invalid");
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

const gguf_value* gguf_writer::find(const std::string& key) const {
  for (auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

void gguf_writer::add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape,
                             producer fill) {
  if (name.empty() || name.size() > gguf_file::max_name_bytes)
    throw error("gguf: tensor name '" + name + "' must be 1 to " + std::to_string(gguf_file::max_name_bytes) +
                " bytes");
  if (shape.size() > size_t(gguf_file::max_dims))
    throw error("gguf: tensor '" + name + "' has " + std::to_string(shape.size()) + " dimensions (GGUF allows 4)");
  for (const pending& p : tensors_)
    if (p.info.name == name) throw error("gguf: tensor '" + name + "' added twice");
  pending p;
  p.info.name = name;
  p.info.type = ggml_type;
  p.info.ne.assign(shape.rbegin(), shape.rend());
  p.info.n_bytes = ggml_tensor_bytes(ggml_type, p.info.ne, "gguf: tensor '" + name + "'");
  p.fill = std::move(fill);
  tensors_.push_back(std::move(p));
}

void gguf_writer::add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape,
                             const void* data) {
  add_tensor(name, ggml_type, shape, [data](uint8_t* dst, size_t n) { std::memcpy(dst, data, n); });
}

uint64_t gguf_writer::write(const std::string& path) const {
  // Header, metadata and tensor infos are small: built in memory, then the tensors stream after them.
  std::string head(k_magic, 4);
  store_le(head, 3, 4);
  store_le(head, tensors_.size(), 8);
  store_le(head, kv_.size(), 8);
  for (const auto& [key, v] : kv_) {
    store_le(head, key.size(), 8);
    head += key;
    store_le(head, uint32_t(v.type()), 4);
    write_value(head, v);
  }
  uint64_t offset = 0;
  for (const pending& p : tensors_) {
    store_le(head, p.info.name.size(), 8);
    head += p.info.name;
    store_le(head, p.info.ne.size(), 4);
    for (int64_t d : p.info.ne) store_le(head, uint64_t(d), 8);
    store_le(head, p.info.type, 4);
    store_le(head, offset, 8);
    offset = pad_to(offset + p.info.n_bytes, alignment_);
  }
  head.resize(size_t(pad_to(head.size(), alignment_)), '\0');

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw error(path + ": cannot write: " + std::strerror(errno));
  auto fail = [&](const std::string& why) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw error(path + ": " + why);
  };
  std::vector<char> io_buffer(size_t(1) << 20);
  std::setvbuf(f, io_buffer.data(), _IOFBF, io_buffer.size());
  if (std::fwrite(head.data(), 1, head.size(), f) != head.size()) fail(std::string("write failed: ") + std::strerror(errno));
  std::vector<uint8_t> buf;
  uint64_t written = head.size();
  static const char zeros[64] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const pending& p = tensors_[i];
    buf.assign(size_t(p.info.n_bytes), 0);
    try {
      p.fill(buf.data(), buf.size());
    } catch (const error& e) {
      fail(std::string("tensor '") + p.info.name + "': " + e.what());
    }
    if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size())
      fail(std::string("write failed: ") + std::strerror(errno));
    written += buf.size();
    const uint64_t pad = pad_to(written - head.size(), alignment_) - (written - head.size());
    for (uint64_t left = pad; left > 0;) {
      const size_t n = size_t(std::min<uint64_t>(left, sizeof(zeros)));
      if (std::fwrite(zeros, 1, n, f) != n) fail(std::string("write failed: ") + std::strerror(errno));
      left -= n;
    }
    written += pad;
  }
  if (std::fflush(f) != 0) fail(std::string("write failed: ") + std::strerror(errno));
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw error(path + ": write failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw error(path + ": cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return written;
}

}  // namespace autoglm
