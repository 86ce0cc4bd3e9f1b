// kernels/cpu/kernel_util.h: small helpers shared by the CPU kernels: typed row access of F32/I32 tensors with
// unit column stride (checked once per call, not per element), and the off values of their environment switches.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace autoglm::cpu {

// An environment switch's value that turns it off: "0", "off", "false" or "no", in any case (AUTOGLM_CPU_BF16_GEMM,
// AUTOGLM_CPU_AMX).
inline bool env_value_is_off(const char* value) {
  std::string v(value ? value : "");
  for (char& c : v) c = char(std::tolower(static_cast<unsigned char>(c)));
  return v == "0" || v == "off" || v == "false" || v == "no";
}

// The mask of the first n of 16 vector lanes, n clamped to 0 .. 16 (an AVX-512 __mmask16 is this integer): masked
// loads and stores of a row's last, partial vector.
inline uint16_t first_lanes16(int64_t n) {
  return n >= 16 ? uint16_t(0xFFFF) : n <= 0 ? uint16_t(0) : uint16_t((1u << n) - 1);
}

// A [rows, cols] matrix of T with unit column stride: base pointer and row stride in elements.
template <class T>
struct rows_of {
  T* base = nullptr;
  int64_t stride = 0;
  T* operator[](int64_t r) const { return base + r * stride; }
};

template <class T>
rows_of<T> rows_f(const tensor& t, dtype expected, const char* what) {
  AG_CHECK(t.type() == expected, std::string(what) + ": expected " + dtype_name(expected) + ", got " +
                                     dtype_name(t.type()));
  AG_CHECK(t.n_dims() == 1 || t.stride(-1) == int64_t(sizeof(T)),
           std::string(what) + ": columns must be contiguous, tensor " + t.shape_str());
  return {t.ptr<T>(), t.row_stride() / int64_t(sizeof(T))};
}

inline rows_of<float> f32_rows(const tensor& t, const char* what) { return rows_f<float>(t, dtype::F32, what); }
inline rows_of<int32_t> i32_rows(const tensor& t, const char* what) { return rows_f<int32_t>(t, dtype::I32, what); }

// A contiguous F32 vector (norm weights, biases).
inline const float* f32_vector(const tensor& t, const char* what) {
  AG_CHECK(t.type() == dtype::F32 && t.is_contiguous(), std::string(what) + " must be a contiguous F32 vector");
  return t.ptr<float>();
}

}  // namespace autoglm::cpu
