// tests/fuzz/fuzz_safetensors.cpp: libFuzzer target for safetensors files (formats/safetensors).
// The input is a whole file: 8-byte little-endian header length, JSON header, data section. It is opened by
// path (a memfd behind /proc/self/fd/N) so the real open + fstat + mmap + validation path runs. Beyond "no
// crash, only autoglm::error", every tensor the validator accepts must lie inside the data section and span
// exactly shape x dtype bytes: code downstream reads tensor_ref::data without further checks.
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static autoglm::fuzz::memory_file file;
  const std::string& path = file.write(data, size);
  try {
    autoglm::safetensors_file st(path);
    const uint8_t* base = st.file().data();
    FUZZ_CHECK(st.file().size() == size);
    uint64_t header_len = 0;
    std::memcpy(&header_len, data, 8);  // accepted files are at least 8 bytes; x86-64 and ARM are little-endian
    const uint8_t* data_begin = base + 8 + header_len;
    const uint8_t* data_end = base + size;
    uint64_t tiled = 0;
    uint64_t checksum = 0;
    for (const auto& [name, t] : st.tensors()) {
      FUZZ_CHECK(t.name == name);
      FUZZ_CHECK(t.data >= data_begin && t.data <= data_end, name);
      FUZZ_CHECK(t.n_bytes <= uint64_t(data_end - t.data), name);
      unsigned __int128 expect = autoglm::dtype_size(t.type);
      for (int64_t d : t.shape) FUZZ_CHECK(d >= 0, name);
      for (int64_t d : t.shape) {
        if (d == 0) expect = 0;
        else if (expect <= size) expect *= uint64_t(d);  // past `size` it cannot match n_bytes: stop growing
      }
      FUZZ_CHECK(expect == t.n_bytes, name);
      FUZZ_CHECK(t.n_elements() * int64_t(autoglm::dtype_size(t.type)) == int64_t(t.n_bytes), name);
      tiled += t.n_bytes;
      // Touch the first and last byte: a tensor outside the mapping faults here.
      if (t.n_bytes) checksum += t.data[0] + t.data[t.n_bytes - 1];
    }
    FUZZ_CHECK(tiled == uint64_t(data_end - data_begin), "tensors must tile the data section");
    for (const auto& [k, v] : st.metadata()) checksum += k.size() + v.size();
    volatile uint64_t sink = checksum;
    (void)sink;
  } catch (const autoglm::error&) {
  }
  return 0;
}
