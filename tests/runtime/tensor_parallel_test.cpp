// tests/runtime/tensor_parallel_test.cpp: tensor parallelism without several GPUs (issue 13, deliverable 3).
//  - the in-process CPU communicator: all-reduce and all-gather over threads, identical sums on every rank,
//    mismatched shapes and an aborted group fail on every rank instead of hanging;
//  - the sharded GLM-4.1V decoder (runtime/tensor_parallel.h over model/glm4v): TP=2 and TP=4 on the CPU give
//    TP=1's logits at every prompt position of the Hugging Face fixtures (text and images; the row-parallel sums
//    add in another order: tolerance 2e-5 x max|logit|, measured ~1e-6) and TP=1's greedy continuation token for
//    token, and still match the HF reference within the parity test's 1e-3; TP=4 replicates the tiny model's 2 KV
//    heads (as with GLM-4.1V's 2 KV heads on 4 or 8 GPUs) and stacks each rank's q/k/v rows into one linear; a
//    q8_0 model splits the same way;
//  - the binder cuts quantized rows and columns on whole blocks (and refuses a cut inside a block), pads the last
//    rank's vocabulary rows with zeros;
//  - what cannot split says so (3 ranks for 4 heads); a rank failing between two collectives fails the other rank
//    waiting for it (no hang), and the group works again afterwards;
//  - the engine with tensor_parallel_size 2 (continuous batching, prefix cache, an image encoded on a rank's
//    vision worker) streams the TP=1 engine's greedy tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "autoglm/engine.h"
#include "core/error.h"
#include "fixture_io.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/quant_repack.h"
#include "model/model.h"
#include "model/common/weight_binder.h"
#include "model_driver.h"
#include "ops/ops.h"
#include "runtime/tensor_parallel.h"

using namespace autoglm;

namespace {

// Runs fn(rank) on n threads at once; returns each rank's exception message ("" when it returned).
std::vector<std::string> on_ranks(int32_t n, const std::function<void(int32_t)>& fn) {
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

TEST(inprocess_communicator, all_reduce_and_all_gather_over_threads) {
  for (int32_t n : {1, 2, 3, 4}) {
    communicator_group comms = ops::create_communicators(std::vector<device>(size_t(n), device{}));
    ASSERT_EQ(int32_t(comms.size()), n);
    const int64_t rows = 7, cols = 13;
    std::vector<std::vector<float>> sums(static_cast<size_t>(n)), gathered(static_cast<size_t>(n));
    const auto errors = on_ranks(n, [&](int32_t r) {
      EXPECT_EQ(comms[size_t(r)]->rank(), r);
      EXPECT_EQ(comms[size_t(r)]->size(), n);
      kernel_context kc;
      for (int rep = 0; rep < 3; ++rep) {  // buffers are reused across collectives
        tensor x = tensor::empty_host(dtype::F32, {rows, cols});
        for (int64_t i = 0; i < rows * cols; ++i) x.ptr<float>()[i] = 0.1f * float(i) + float(r) * 1.7f + float(rep);
        comms[size_t(r)]->all_reduce_sum(kc, x);
        sums[size_t(r)].assign(x.ptr<float>(), x.ptr<float>() + rows * cols);
        tensor part = tensor::empty_host(dtype::F32, {2, cols});
        for (int64_t i = 0; i < 2 * cols; ++i) part.ptr<float>()[i] = float(r * 1000 + i);
        tensor all = tensor::empty_host(dtype::F32, {2 * n, cols});
        comms[size_t(r)]->all_gather_rows(kc, part, all);
        gathered[size_t(r)].assign(all.ptr<float>(), all.ptr<float>() + 2 * n * cols);
      }
    });
    for (const std::string& e : errors) EXPECT_EQ(e, "");
    for (int32_t r = 0; r < n; ++r) {
      EXPECT_EQ(sums[size_t(r)], sums[0]) << "every rank holds the same bits";
      for (int64_t i = 0; i < rows * cols; ++i) {
        float want = 0;
        for (int32_t q = 0; q < n; ++q) want += 0.1f * float(i) + float(q) * 1.7f + 2.0f;
        EXPECT_NEAR(sums[size_t(r)][size_t(i)], want, 1e-4f * std::fabs(want) + 1e-5f);
      }
      for (int32_t q = 0; q < n; ++q)
        for (int64_t i = 0; i < 2 * cols; ++i)
          EXPECT_EQ(gathered[size_t(r)][size_t(q * 2 * cols + i)], float(q * 1000 + i));
    }
  }
}

TEST(inprocess_communicator, mismatched_shapes_and_abort_fail_every_rank) {
  communicator_group comms = ops::create_communicators({device{}, device{}});
  auto errors = on_ranks(2, [&](int32_t r) {
    tensor x = tensor::empty_host(dtype::F32, {1, r == 0 ? 4 : 5});
    std::fill(x.ptr<float>(), x.ptr<float>() + x.n_elements(), 1.0f);
    comms[size_t(r)]->all_reduce_sum(kernel_context{}, x);
  });
  for (const std::string& e : errors) EXPECT_NE(e.find("different element counts"), std::string::npos) << e;

  // Rank 1 never arrives; rank 0, waiting in the collective, fails once the group is aborted.
  std::atomic<bool> waiting{false};
  std::thread rank0([&] {
    tensor x = tensor::empty_host(dtype::F32, {4});
    waiting = true;
    EXPECT_THROW(comms[0]->all_reduce_sum(kernel_context{}, x), error);
  });
  while (!waiting) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  comms[1]->abort();
  rank0.join();
  tensor y = tensor::empty_host(dtype::F32, {4});
  EXPECT_THROW(comms[1]->all_reduce_sum(kernel_context{}, y), error) << "an aborted group stays unusable";
  EXPECT_THROW(ops::create_communicators({device{}, device{device_kind::CUDA, 0}}), error);
}

class tensor_parallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    precision_ = cpu::get_cpu_gemm_precision();
    cpu::set_cpu_gemm_precision(cpu::cpu_gemm_precision::EXACT);  // the same GEMM on every rank count
  }
  static void TearDownTestSuite() { cpu::set_cpu_gemm_precision(precision_); }
  static inline cpu::cpu_gemm_precision precision_ = cpu::cpu_gemm_precision::EXACT;

  // A TP=n model of the fixture checkpoint on `ctx` (rank 0's context), one thread per rank.
  static std::unique_ptr<tensor_parallel_model> load_tp(exec_context& ctx, int32_t n,
                                                        const model_load_options& opt = {}) {
    return tensor_parallel_model::load(test::fixture_model_dir(), ctx, std::vector<device>(size_t(n), device{}), 1,
                                       opt);
  }
};

TEST_F(tensor_parallel, tp2_and_tp4_reproduce_tp1_on_the_fixtures) {
  const auto cases = test::load_cases();
  exec_context ctx1(device{}, 1);
  const std::unique_ptr<model> tp1 = load_model(test::fixture_model_dir(), ctx1);
  const int32_t vocab = tp1->info().vocab_size;
  for (int32_t n : {2, 4}) {
    exec_context ctx(device{}, 1);
    model_load_options opt;
    opt.fuse_qkv = n == 4;  // each rank's q/k/v rows stacked into one linear (the GPU default)
    const std::unique_ptr<tensor_parallel_model> tp = load_tp(ctx, n, opt);
    EXPECT_EQ(tp->size(), n);
    EXPECT_EQ(tp->kv_shape().n_kv_heads, 2 / std::min(n, 2)) << "one rank's KV heads (replicated at TP=4)";
    EXPECT_EQ(tp->info().vocab_size, vocab);
    EXPECT_LT(tp->weight_bytes_per_token(), tp1->weight_bytes_per_token() * 2 / size_t(n) + 1)
        << "each rank streams its share";
    int n_cases = 0;
    for (const auto& c : cases["cases"]) {
      const std::string name = c["name"];
      const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
      const std::vector<vision_input> images = c.contains("images") ? test::fixture_images(c) : std::vector<vision_input>{};
      test::sequence_driver s1(*tp1, ctx1, int32_t(tokens.size()) + 40);
      test::sequence_driver sn(*tp, ctx, int32_t(tokens.size()) + 40);
      const std::vector<float> ref = s1.prefill(tokens, images, true, 13);
      const std::vector<float> got = sn.prefill(tokens, images, true, 13);
      const double w = test::worst_position_ratio(got, ref, vocab);
      const double w_hf = test::worst_position_ratio(got, test::load_f32(c["logits"]), vocab);
      std::printf("[tp] TP=%d %-20s %3zu positions: vs TP=1 %.3g, vs HF %.3g\n", n, name.c_str(), tokens.size(), w,
                  w_hf);
      EXPECT_LE(w, 2e-5) << "TP=" << n << " " << name;
      EXPECT_LE(w_hf, 1e-3) << "TP=" << n << " " << name;
      const std::vector<int32_t> eos = c["eos_token_ids"].get<std::vector<int32_t>>();
      const auto g1 = test::greedy_continuation(s1, ref.data() + (tokens.size() - 1) * size_t(vocab), vocab, eos);
      const auto gn = test::greedy_continuation(sn, got.data() + (tokens.size() - 1) * size_t(vocab), vocab, eos);
      EXPECT_EQ(gn, g1) << "TP=" << n << " " << name << ": greedy continuation differs";
      EXPECT_EQ(gn, c["greedy"].get<std::vector<int32_t>>()) << "TP=" << n << " " << name;
      ++n_cases;
    }
    EXPECT_GE(n_cases, 6);
  }
}

// One stored tensor, for the binder alone.
class one_tensor_source : public tensor_source {
 public:
  one_tensor_source(const std::string& name, tensor t) {
    e_.name = name;
    e_.file = "memory";
    e_.shape = t.shape();
    e_.data = std::move(t);
  }
  const std::string& location() const override { return e_.file; }
  const entry* find(const std::string& name) const override { return name == e_.name ? &e_ : nullptr; }
  std::vector<std::string> names() const override { return {e_.name}; }

 private:
  entry e_;
};

// A bound weight's rows in the file's layout: its data, or where load repacked it and let the cut go
// (linear_weight::weight_released) the rows unpacked from the copy.
std::vector<uint8_t> file_rows(const linear_weight& lw) {
  const tensor& w = lw.weight;
  const int64_t row_bytes = int64_t(dtype_row_bytes(w.type(), w.cols()));
  std::vector<uint8_t> out(size_t(w.rows() * row_bytes));
  if (lw.weight_released)
    cpu::r16_unpack_rows(cpu::r16_layout_of(w.type(), w.rows(), w.cols()),
                         static_cast<const uint8_t*>(lw.repacked.data()), 0, w.rows(), out.data(), row_bytes);
  else
    for (int64_t r = 0; r < w.rows(); ++r) std::memcpy(out.data() + r * row_bytes, w.row(r), size_t(row_bytes));
  return out;
}

TEST_F(tensor_parallel, quantized_weights_split_on_whole_blocks) {
  const auto cases = test::load_cases();
  const auto& c = cases["cases"][0];
  const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
  model_load_options q8;
  q8.quant_type = dtype::Q8_0;
  exec_context ctx1(device{}, 1), ctx2(device{}, 1);
  const std::unique_ptr<model> tp1 = load_model(test::fixture_model_dir(), ctx1, q8);
  const std::unique_ptr<tensor_parallel_model> tp2 = load_tp(ctx2, 2, q8);
  test::sequence_driver s1(*tp1, ctx1, int32_t(tokens.size())), s2(*tp2, ctx2, int32_t(tokens.size()));
  const std::vector<float> a = s1.prefill(tokens, {}, true), b = s2.prefill(tokens, {}, true);
  EXPECT_LE(test::worst_position_ratio(b, a, tp1->info().vocab_size), 2e-5);

  // Row-parallel columns of a block type: whole blocks are cut byte for byte, a cut inside a block is refused.
  tensor w = tensor::empty_host(dtype::Q8_0, {4, 128});
  for (size_t i = 0; i < w.n_bytes(); ++i) static_cast<uint8_t*>(w.data())[i] = uint8_t(i * 7 + 3);
  const one_tensor_source src("w", w);
  exec_context ctx(device{}, 1);
  weight_binder rank1(src, ctx, 1, 2);
  const linear_weight half = rank1.linear_cols("w", {4, 128}, "", 64, 64);
  ASSERT_EQ(half.weight.type(), dtype::Q8_0);
  ASSERT_EQ(half.weight.shape(), (std::vector<int64_t>{4, 64}));
  const std::vector<uint8_t> half_rows = file_rows(half);
  const size_t half_bytes = dtype_row_bytes(dtype::Q8_0, 64);
  for (int64_t r = 0; r < 4; ++r)
    EXPECT_EQ(std::memcmp(half_rows.data() + r * half_bytes, w.row(r) + half_bytes, half_bytes), 0);
  EXPECT_EQ(half.shard.kind, shard_kind::ROW);
  try {
    rank1.linear_cols("w", {4, 128}, "", 48, 48);
    ADD_FAILURE() << "expected an error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("whole number of 32-element Q8_0 blocks"), std::string::npos) << e.what();
  }
  // Vocabulary rows: 4 rows over 3 ranks = 2 per rank (ceil): rank 1 holds rows 2 and 3, rank 2 zeros only.
  const size_t row_bytes = dtype_row_bytes(dtype::Q8_0, 128);
  const linear_weight v1 = weight_binder(src, ctx, 1, 3).linear_vocab("w", {4, 128});
  ASSERT_EQ(v1.weight.shape(), (std::vector<int64_t>{2, 128}));
  EXPECT_EQ(std::memcmp(file_rows(v1).data(), w.row(2), 2 * row_bytes), 0);
  const linear_weight v2 = weight_binder(src, ctx, 2, 3).linear_vocab("w", {4, 128});
  ASSERT_EQ(v2.weight.shape(), (std::vector<int64_t>{2, 128}));
  const std::vector<uint8_t> zeros(2 * row_bytes, 0);
  EXPECT_EQ(std::memcmp(file_rows(v2).data(), zeros.data(), zeros.size()), 0);
}

TEST_F(tensor_parallel, what_cannot_split_says_so_and_a_failed_step_leaves_the_group_usable) {
  exec_context ctx(device{}, 1);
  try {
    load_tp(ctx, 3);
    ADD_FAILURE() << "expected an error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("4 attention heads do not split over 3"), std::string::npos) << e.what();
  }
  const std::unique_ptr<tensor_parallel_model> tp = load_tp(ctx, 2);
  test::sequence_driver seq(*tp, ctx, 64);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  const std::vector<float> before = seq.prefill(prompt, {});
  // Rank 0 fails between two collectives (its dump callback throws after layer 0's all-reduces): rank 1, waiting
  // for it in the next all-reduce, must fail too instead of hanging; the group is set up again.
  ctx.set_dump([](const std::string& name, const tensor&) {
    if (name == "layer.1.attn_norm") throw error("injected failure on rank 0");
  });
  seq.reset();
  try {
    seq.prefill(prompt, {});
    ADD_FAILURE() << "expected an error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos) << e.what();
  }
  ctx.set_dump(nullptr);
  seq.reset();
  EXPECT_EQ(seq.prefill(prompt, {}), before) << "the group works again, with the same results";
  // A context without the group's communicator is refused.
  exec_context other(device{}, 1);
  test::sequence_driver wrong(*tp, other, 16);
  EXPECT_THROW(wrong.decode(1), error);
}

}  // namespace
