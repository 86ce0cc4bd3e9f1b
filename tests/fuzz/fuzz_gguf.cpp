// tests/fuzz/fuzz_gguf.cpp: libFuzzer target for GGUF files (formats/gguf) and the GLM-4.1V GGUF tensor_source
// (formats/gguf_glm4v). The input is a whole file, opened by path (a memfd behind /proc/self/fd/N) so the real
// open + fstat + mmap + validation path runs. It is read three ways: as a GGUF container, as the text model of
// the GLM-4.1V source, and as its mmproj file beside a fixed valid text file (so both the q/k permutation and
// the patch-embedding join see hostile shapes). Beyond "no crash, only autoglm::error": every tensor the reader
// accepts is aligned, lies inside the data section, spans exactly its type x shape bytes and overlaps no other;
// every view the source serves has its declared shape.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_glm4v.h"
#include "formats/safetensors.h"  // mapped_file
#include "fuzz_common.h"

namespace {

// A minimal valid GLM-4.1V text file (1 layer, hidden 8, 2 heads, 1 KV head), written once per process.
const std::string& fixed_text_file() {
  static const std::string path = [] {
    using namespace autoglm;
    std::string p = "/tmp/autoglm_fuzz_gguf_text_" + std::to_string(::getpid()) + ".gguf";
    static float zeros[64] = {};
    gguf_writer w;
    w.set("general.architecture", gguf_value::of_string("glm4"));
    for (auto [k, v] : {std::pair<const char*, uint64_t>{"glm4.embedding_length", 8}, {"glm4.attention.head_count", 2},
                        {"glm4.attention.head_count_kv", 1}, {"glm4.feed_forward_length", 4},
                        {"glm4.block_count", 1}, {"glm4.context_length", 16}, {"glm4.rope.dimension_count", 2}})
      w.set(k, gguf_value::of_uint(gguf_type::U32, v));
    w.set("glm4.attention.layer_norm_rms_epsilon", gguf_value::of_float(gguf_type::F32, 1e-5));
    w.add_tensor("token_embd.weight", ggml_type_id::F32, {4, 8}, zeros);
    w.write(p);
    return p;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static autoglm::fuzz::memory_file file;
  const std::string& path = file.write(data, size);
  try {
    autoglm::gguf_file f(path);
    FUZZ_CHECK(f.file_size() == size);
    FUZZ_CHECK(f.alignment() != 0 && (f.alignment() & (f.alignment() - 1)) == 0);
    uint64_t checksum = 0;
    for (const auto& [key, value] : f.metadata()) checksum += key.size() + value.str().size();
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const autoglm::gguf_tensor_info& t : f.tensors()) {
      FUZZ_CHECK(f.find_tensor(t.name) == &t, t.name);
      FUZZ_CHECK(t.offset % f.alignment() == 0, t.name);
      FUZZ_CHECK(t.n_bytes == autoglm::ggml_tensor_bytes(t.type, t.ne, t.name), t.name);
      FUZZ_CHECK(f.data_offset() <= size && t.offset <= size - f.data_offset() &&
                     t.n_bytes <= size - f.data_offset() - t.offset, t.name);
      FUZZ_CHECK(t.data == f.mapping()->data() + f.data_offset() + t.offset, t.name);
      spans.emplace_back(t.offset, t.offset + t.n_bytes);
      // Touch the first and last byte: a tensor outside the mapping faults here.
      if (t.n_bytes) checksum += t.data[0] + t.data[t.n_bytes - 1];
      autoglm::dtype d;
      if (autoglm::dtype_from_ggml(t.type, d)) {
        const autoglm::tensor v = f.view(t);
        FUZZ_CHECK(uint64_t(v.n_elements()) == uint64_t(std::max<int64_t>(t.n_elements(), 0)), t.name);
        FUZZ_CHECK(v.n_bytes() == t.n_bytes, t.name);
      }
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      FUZZ_CHECK(spans[i - 1].second <= spans[i].first || spans[i - 1].first == spans[i - 1].second, "overlap");
    volatile uint64_t sink = checksum;
    (void)sink;
  } catch (const autoglm::error&) {
  }
  // The GLM-4.1V source, with the input as the text file, then as the mmproj file.
  for (int as_mmproj = 0; as_mmproj < 2; ++as_mmproj) {
    try {
      auto src = as_mmproj ? autoglm::glm4v_gguf::source::open(fixed_text_file(), path)
                           : autoglm::glm4v_gguf::source::open(path);
      for (const std::string& name : src->names()) {
        const autoglm::tensor_source::entry& e = src->at(name);
        int64_t n = 1;
        for (int64_t d : e.shape) n *= d;
        FUZZ_CHECK(e.data.n_elements() == n, name);
      }
      FUZZ_CHECK(src->hf_config().contains("text_config"));
    } catch (const autoglm::error&) {
    }
  }
  return 0;
}
