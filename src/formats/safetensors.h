// formats/safetensors.h: memory-mapped, validated safetensors files and a tensor store over one file or the
// shards named by model.safetensors.index.json (a tensor_source: models bind their weights through that). Every
// violation of the format is an autoglm::error naming the file and the tensor; nothing is trusted before it is
// checked. Only regular files are opened (a FIFO named model.safetensors is refused at once, never waited on);
// headers and the index are parsed with bounded depth, value count and (for the index) size.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/tensor_source.h"

namespace autoglm {

struct tensor_ref {
  std::string name;
  std::string file;  // for error messages
  dtype type = dtype::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping; valid while the store lives
  size_t n_bytes = 0;
  int64_t n_elements() const;
};

class mapped_file {
 public:
  explicit mapped_file(const std::string& path);  // throws autoglm::error
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Asks the kernel to read the whole file ahead (weights are touched on every token anyway).
  void advise_willneed() const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class safetensors_file {
 public:
  static constexpr uint64_t max_header_bytes = 100u << 20;
  explicit safetensors_file(const std::string& path);  // maps and validates; throws autoglm::error
  const std::map<std::string, tensor_ref>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const mapped_file& file() const { return *file_; }

 private:
  std::unique_ptr<mapped_file> file_;
  std::map<std::string, tensor_ref> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards listed in model.safetensors.index.json. As a
// tensor_source its entries are core tensors viewing the mapping; each view holds a reference to its file, so
// the weights a model keeps stay mapped after the store is gone.
class tensor_store : public tensor_source {
 public:
  static std::unique_ptr<tensor_store> open_dir(const std::string& dir);

  // tensor_source
  const std::string& location() const override { return dir_; }
  const entry* find(const std::string& name) const override;
  std::vector<std::string> names() const override;

  // The raw records (file byte ranges), for format tests and the legacy model code; they hide
  // tensor_source::get (reach that through a tensor_source&). get(name) throws autoglm::error "missing tensor 'x'
  // in <dir>" when absent; get(name, shape) also when the shape differs.
  const tensor_ref& get(const std::string& name) const;
  const tensor_ref& get(const std::string& name, const std::vector<int64_t>& shape) const;
  size_t total_bytes() const;
  void advise_willneed() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<safetensors_file>> files_;
  std::map<std::string, const tensor_ref*> index_;
  std::map<std::string, entry> entries_;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace autoglm
