// formats/safetensors.cpp: see safetensors.h.
#include "formats/safetensors.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_file.h"
#include "formats/json_limits.h"

namespace autoglm {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t tensor_ref::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

mapped_file::mapped_file(const std::string& path) : path_(path) {
  // Regular files only, opened without blocking: a FIFO named model.safetensors is refused at once.
  opened_file f = open_regular_file(path);
  size_ = size_t(f.size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, f.fd.get(), 0);
    if (p == MAP_FAILED) throw error(path + ": cannot mmap: " + std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
    register_file_mapping(data_, size_);
  }
}

mapped_file::~mapped_file() {
  if (!data_) return;
  unregister_file_mapping(data_);
  ::munmap(const_cast<uint8_t*>(data_), size_);
}

void mapped_file::advise_willneed() const {
  if (data_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_WILLNEED);
}

namespace {

// A header is an object of tensor entries, 3 levels deep ({"name": {"shape": [..]}}); ~9 values per tensor, so
// 4M values allow ~400k tensors in one file (the largest public checkpoints have ~100k in all shards together).
// The limits stop a hostile header from recursing or building a multi-gigabyte DOM.
constexpr json_limits k_header_limits{8, 4'000'000};

// a * b without overflow, or throw.
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw error(what + ": size overflows 64 bits");
  return r;
}

// The tensor_source view of a record: the stored shape, and a core tensor over the mapped bytes (a scalar as [1],
// more than 4 dimensions as [shape[0], product of the rest]) that keeps its file mapped.
tensor_source::entry make_entry(const tensor_ref& ref, const std::shared_ptr<void>& file) {
  tensor_source::entry e;
  e.name = ref.name;
  e.file = ref.file;
  e.shape = ref.shape;
  std::vector<int64_t> view_shape = ref.shape;
  if (view_shape.empty()) view_shape = {1};
  if (view_shape.size() > size_t(k_max_dims)) {
    int64_t cols = 1;
    for (size_t i = 1; i < ref.shape.size(); ++i) cols *= ref.shape[i];
    view_shape = {ref.shape[0], cols};
  }
  e.data = tensor::view(ref.data, ref.type, view_shape);
  e.data.set_owner(file);
  return e;
}

}  // namespace

safetensors_file::safetensors_file(const std::string& path) : file_(std::make_unique<mapped_file>(path)) {
  const uint8_t* base = file_->data();
  const size_t size = file_->size();
  if (size < 8) throw error(path + ": not a safetensors file (only " + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];  // little-endian u64
  if (header_len > max_header_bytes)
    throw error(path + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                std::to_string(max_header_bytes) + " bytes");
  if (header_len > size - 8)
    throw error(path + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                std::to_string(size) + " bytes)");
  const uint8_t* data_start = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  json header;
  try {
    header = parse_json(std::string_view(reinterpret_cast<const char*>(base + 8), size_t(header_len)), k_header_limits);
  } catch (const json_parse_error& e) {
    throw error(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw error(path + ": header is not a JSON object");

  struct span_info {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<span_info> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) throw error(path + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw error(path + ": __metadata__ value '" + m.key() + "' is not a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    const json& e = *it;
    if (!e.is_object()) throw error(where + ": entry is not an object");
    if (!e.contains("dtype") || !e["dtype"].is_string()) throw error(where + ": missing string 'dtype'");
    if (!e.contains("shape") || !e["shape"].is_array()) throw error(where + ": missing array 'shape'");
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw error(where + ": 'data_offsets' must be an array of two integers");
    tensor_ref t;
    t.name = name;
    t.file = path;
    std::string dt = e["dtype"].get<std::string>();
    if (!dtype_from_safetensors(dt, t.type)) throw error(where + ": unsupported dtype '" + dt + "'");
    uint64_t n_elem = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw error(where + ": shape entries must be non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t(1) << 48)) throw error(where + ": dimension " + std::to_string(v) + " is implausibly large");
      n_elem = checked_mul(n_elem, v, where);
      // tensor_ref::n_elements() multiplies in int64 in this order: a later 0 ([2^32, 2^31, 0]) must not hide
      // a partial product past int64.
      if (n_elem > uint64_t(INT64_MAX)) throw error(where + ": the product of the shape's dimensions overflows 64 bits");
      t.shape.push_back(int64_t(v));
    }
    for (const json& o : e["data_offsets"])
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw error(where + ": data_offsets must be non-negative integers");
    uint64_t begin = e["data_offsets"][0].get<uint64_t>();
    uint64_t end = e["data_offsets"][1].get<uint64_t>();
    if (begin > end) throw error(where + ": data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
    if (end > data_size)
      throw error(where + ": ends at byte " + std::to_string(end) + " past the end of the data section (" +
                  std::to_string(data_size) + " bytes)");
    uint64_t expect = checked_mul(n_elem, dtype_size(t.type), where);
    if (expect != end - begin)
      throw error(where + ": shape " + shape_to_string(t.shape) + " x " + dt + " is " + std::to_string(expect) +
                  " bytes but data_offsets span " + std::to_string(end - begin) + " bytes");
    t.data = data_start + begin;
    t.n_bytes = size_t(end - begin);
    spans.push_back({begin, end, name});
    tensors_.emplace(name, std::move(t));
  }
  // The data section must be exactly tiled by the tensors, in some order: no gaps, no overlap.
  std::sort(spans.begin(), spans.end(), [](auto& a, auto& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t cursor = 0;
  for (auto& s : spans) {
    if (s.begin != cursor)
      throw error(path + ": tensor '" + s.name + "' starts at byte " + std::to_string(s.begin) + " but the previous tensor ends at " +
                  std::to_string(cursor) + " (tensors must be contiguous and not overlap)");
    cursor = s.end;
  }
  if (cursor != data_size)
    throw error(path + ": " + std::to_string(data_size - cursor) + " trailing bytes after the last tensor");
}

std::unique_ptr<tensor_store> tensor_store::open_dir(const std::string& dir) {
  auto store = std::unique_ptr<tensor_store>(new tensor_store());
  store->dir_ = dir;
  fs::path d(dir);
  if (!fs::is_directory(d)) throw error(dir + ": not a directory");
  fs::path index = d / "model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  // symlink_status: a dangling link or a FIFO counts as present and is refused by the reader with a clear error.
  if (fs::exists(fs::symlink_status(index))) {
    const json j = read_json_file(index.string(), k_max_shard_index_bytes);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw error(index.string() + ": missing object 'weight_map'");
    std::set<std::string> seen;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw error(index.string() + ": weight_map['" + it.key() + "'] is not a string");
      std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
        throw error(index.string() + ": shard name '" + shard + "' must be a plain file name");
      weight_map[it.key()] = shard;
      if (seen.insert(shard).second) shard_names.push_back(shard);
    }
  } else if (fs::exists(fs::symlink_status(d / "model.safetensors"))) {
    shard_names.push_back("model.safetensors");
  } else {
    throw error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (auto& shard : shard_names) {
    store->files_.push_back(std::make_shared<safetensors_file>((d / shard).string()));
    const std::shared_ptr<void> keep_mapped = store->files_.back();
    for (auto& [name, ref] : store->files_.back()->tensors()) {
      if (store->index_.count(name)) throw error((d / shard).string() + ": tensor '" + name + "' also appears in another shard");
      store->index_[name] = &ref;
      store->entries_.emplace(name, make_entry(ref, keep_mapped));
    }
  }
  for (auto& [name, shard] : weight_map) {
    auto it = store->index_.find(name);
    if (it == store->index_.end()) throw error(index.string() + ": tensor '" + name + "' is listed for " + shard + " but not found there");
    if (fs::path(it->second->file).filename() != shard)
      throw error(index.string() + ": tensor '" + name + "' is listed for " + shard + " but stored in " + it->second->file);
  }
  return store;
}

const tensor_ref& tensor_store::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw error("missing tensor '" + name + "' in " + dir_);
  return *it->second;
}

const tensor_ref& tensor_store::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const tensor_ref& t = get(name);
  if (t.shape != shape)
    throw error(t.file + ": tensor '" + name + "' has shape " + shape_to_string(t.shape) + ", expected " + shape_to_string(shape));
  return t;
}

const tensor_source::entry* tensor_store::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> tensor_store::names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : index_) out.push_back(n);
  return out;
}

size_t tensor_store::total_bytes() const {
  size_t n = 0;
  for (auto& [_, t] : index_) n += t->n_bytes;
  return n;
}

void tensor_store::advise_willneed() const {
  for (auto& f : files_) f->file().advise_willneed();
}

}  // namespace autoglm
