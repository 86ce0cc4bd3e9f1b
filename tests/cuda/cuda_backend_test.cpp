// tests/cuda/cuda_backend_test.cpp: the CUDA backend's plumbing. Without a GPU (or without the CUDA backend in
// this build) the device errors are what runs: a context or an engine on cuda:N fails naming why. With one:
// every op the model needs is registered, out-of-memory and bad-index errors name what happened, device memory
// round-trips, and the engine's fit checks (weights, KV budget) name the bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "autoglm/engine.h"
#include "core/error.h"
#include "cuda_test_util.h"
#include "runtime/device_budget.h"
#if defined(AUTOGLM_HAVE_CUDA)
#include <cstdlib>

#include "kernels/cuda/cuda_host.h"
#endif

using namespace autoglm;
using namespace autoglm::cuda_test;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(cuda_device, a_context_on_a_missing_device_says_why) {
  // cuda:99 exists nowhere: with or without the backend, the context must fail with a sentence naming it.
  const std::string msg = error_of([] { exec_context ctx({device_kind::CUDA, 99}, 1); });
  // "cuda:99: this machine has N CUDA devices", "cuda:99: no usable CUDA device (...)" or "cuda:99: this build
  // has no CUDA backend (...)".
  EXPECT_EQ(msg.rfind("cuda:99: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("CUDA"), std::string::npos) << msg;
  EXPECT_EQ(msg, ops::device_problem({device_kind::CUDA, 99}));
}

TEST(cuda_device, engine_options_device_is_parsed) {
  engine_options o;
  EXPECT_EQ(engine_device(o).kind, device_kind::CPU);
  o.device = "cuda:3";
  EXPECT_EQ(engine_device(o).kind, device_kind::CUDA);
  EXPECT_EQ(engine_device(o).index, 3);
  o.device = "gpu0";
  try {
    engine_device(o);
    ADD_FAILURE() << "gpu0 accepted";
  } catch (const invalid_request& e) {
    EXPECT_EQ(e.param(), "device");
    EXPECT_NE(std::string(e.what()).find("gpu0"), std::string::npos) << e.what();
  }
}

TEST(cuda_device, engine_on_a_missing_device_fails_before_loading) {
  engine_options o;
  o.model_dir = std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/tiny_glm4v";
  o.device = "cuda:99";
  const std::string msg = error_of([&] { engine::create(o); });
  EXPECT_EQ(msg, ops::device_problem({device_kind::CUDA, 99}));
}

#if defined(AUTOGLM_HAVE_CUDA)
// The backend's integer settings (AUTOGLM_CUDA_* variables) are read by one parser: needs no device.
TEST(cuda_settings, integer_variables_take_whole_numbers_in_range_or_name_the_problem) {
  const char* name = "AUTOGLM_TEST_CUDA_SETTING";
  unsetenv(name);
  EXPECT_EQ(cuda::env_integer(name, -1, 0, 100), -1);  // unset: the fallback, even outside the range
  setenv(name, "", 1);
  EXPECT_EQ(cuda::env_integer(name, 7, 0, 100), 7);
  for (const char* ok : {"0", "42", "100"}) {
    setenv(name, ok, 1);
    EXPECT_EQ(cuda::env_integer(name, -1, 0, 100), std::atoll(ok)) << ok;
  }
  for (const char* bad : {"101", "-1", "12x", "x", "1.5", "99999999999999999999999"}) {
    setenv(name, bad, 1);
    const std::string msg = error_of([&] { cuda::env_integer(name, -1, 0, 100); });
    EXPECT_NE(msg.find(name), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("from 0 to 100"), std::string::npos) << msg;
  }
  unsetenv(name);
}

TEST(cuda_settings, choice_variables_take_one_of_their_names_or_list_them) {
  const char* name = "AUTOGLM_TEST_CUDA_CHOICE";
  unsetenv(name);
  EXPECT_EQ(cuda::env_choice(name, {"mma", "split", "flash"}), 0);  // unset: the first
  setenv(name, "", 1);
  EXPECT_EQ(cuda::env_choice(name, {"mma", "split", "flash"}), 0);
  setenv(name, "flash", 1);
  EXPECT_EQ(cuda::env_choice(name, {"mma", "split", "flash"}), 2);
  setenv(name, "Split", 1);
  EXPECT_EQ(error_of([&] { cuda::env_choice(name, {"mma", "split", "flash"}); }),
            std::string(name) + " is 'Split': use mma, split or flash");
  unsetenv(name);
}
#endif

class cuda_backend : public cuda_fixture {};

TEST_F(cuda_backend, registers_every_op_the_model_needs) {
  const kernel_registry& r = kernel_registry::instance();
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (op_id op : {op_id::LINEAR, op_id::LINEAR_SWIGLU, op_id::EMBEDDING, op_id::KV_STORE, op_id::ROPE_KV_STORE,
                     op_id::ATTENTION_PAGED})
      EXPECT_TRUE(r.has(op, device_kind::CUDA, t)) << op_name(op) << " " << dtype_name(t);
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32})
    EXPECT_TRUE(r.has(op_id::COPY, device_kind::CUDA, t)) << dtype_name(t);
  for (op_id op : {op_id::RMS_NORM, op_id::LAYER_NORM, op_id::ROPE_MROPE, op_id::ROPE_2D, op_id::SILU_MUL, op_id::GELU,
                   op_id::ADD, op_id::SOFTMAX, op_id::ATTENTION_DENSE, op_id::POS_EMBED_BICUBIC})
    EXPECT_TRUE(r.has(op, device_kind::CUDA, dtype::F32)) << op_name(op);
  // Not implemented on CUDA yet: the registry's error names all three.
  const std::string msg = error_of([&] { r.get(op_id::LINEAR, device_kind::CUDA, dtype::Q4_K); });
  EXPECT_NE(msg.find("no kernel for linear on cuda with Q4_K"), std::string::npos) << msg;
}

TEST_F(cuda_backend, memory_round_trips_and_reports_free_bytes) {
  const tensor h = host_tensor(dtype::F32, {3, 5}, normal(15, 1));
  const tensor d = on(gpu(), h);
  EXPECT_EQ(d.dev(), cuda0());
  EXPECT_EQ(values(gpu(), d), std::vector<float>(h.ptr<float>(), h.ptr<float>() + 15));
  size_t free_b = 0, total_b = 0;
  ASSERT_TRUE(ops::memory_info(gpu(), free_b, total_b));
  EXPECT_GT(total_b, size_t(0));
  EXPECT_LE(free_b, total_b);
  size_t f2, t2;
  EXPECT_FALSE(ops::memory_info(cpu(), f2, t2));
}

TEST_F(cuda_backend, out_of_memory_names_the_bytes_and_the_device) {
  const int64_t huge = int64_t(1) << 50;  // 1 PiB
  const std::string msg = error_of([&] { ops::alloc_persistent(gpu(), dtype::U8, {huge}); });
  EXPECT_NE(msg.find("out of device memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(huge)), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  // The failure is not sticky: the device still works.
  const tensor d = on(gpu(), host_tensor(dtype::F32, {4}, {1, 2, 3, 4}));
  EXPECT_EQ(values(gpu(), d), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(cuda_backend, a_bad_token_id_is_reported_at_the_next_synchronize) {
  const tensor table = on(gpu(), host_tensor(dtype::BF16, {10, 8}, normal(80, 2)));
  const tensor ids = on(gpu(), host_i32({2}, {3, 10}));  // 10 is one past the table
  tensor out = ops::scratch(gpu(), dtype::F32, {2, 8});
  ops::embedding(gpu(), table, ids, out);
  const std::string msg = error_of([&] { ops::synchronize(gpu()); });
  EXPECT_NE(msg.find("embedding"), std::string::npos) << msg;
  EXPECT_NE(msg.find("value 10"), std::string::npos) << msg;
  EXPECT_EQ(error_of([&] { ops::synchronize(gpu()); }), "");  // reported once
  gpu().arena().reset();
}

TEST_F(cuda_backend, a_kv_slot_outside_the_cache_is_reported) {
  paged_kv_layer kv;
  kv.k = ops::alloc_persistent(gpu(), dtype::BF16, {2, 4, 1, 8});
  kv.v = ops::alloc_persistent(gpu(), dtype::BF16, {2, 4, 1, 8});
  const tensor k = on(gpu(), host_tensor(dtype::F32, {2, 8}, normal(16, 3)));
  const tensor slots = on(gpu(), host_i32({2}, {-1, 8}));  // padding, then one past the 8 slots
  ops::kv_store(gpu(), kv, k, k, slots);
  const std::string msg = error_of([&] { ops::synchronize(gpu()); });
  EXPECT_NE(msg.find("kv_store"), std::string::npos) << msg;
}

TEST_F(cuda_backend, weights_that_do_not_fit_fail_before_the_upload_naming_the_bytes) {
  size_t free_b = 0, total_b = 0;
  ASSERT_TRUE(ops::memory_info(gpu(), free_b, total_b));
  // A sparse file larger than the device: no disk is used, only its size is read.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "autoglm_cuda_fit_test";
  std::filesystem::create_directories(dir);
  const size_t size = total_b + (size_t(1) << 30);
  { std::ofstream(dir / "model.safetensors"); }
  std::filesystem::resize_file(dir / "model.safetensors", size);
  engine_options o;
  o.model_dir = dir.string();
  o.device = "cuda:0";
  const std::string msg = error_of([&] { check_model_fits(o, gpu()); });
  std::filesystem::remove_all(dir);
  EXPECT_NE(msg.find("does not fit on cuda:0"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(size)), std::string::npos) << msg;
}

TEST_F(cuda_backend, kv_budget_is_capped_by_free_memory_or_refused_when_explicit) {
  size_t free_b = 0, total_b = 0;
  ASSERT_TRUE(ops::memory_info(gpu(), free_b, total_b));
  const size_t too_much = total_b * 2;
  EXPECT_LE(fit_kv_budget(gpu(), too_much, false), free_b);
  const std::string msg = error_of([&] { fit_kv_budget(gpu(), too_much, true); });
  EXPECT_NE(msg.find("kv_cache_bytes " + std::to_string(too_much)), std::string::npos) << msg;
  EXPECT_EQ(fit_kv_budget(cpu(), too_much, true), too_much);  // the CPU has no device budget
}

}  // namespace
