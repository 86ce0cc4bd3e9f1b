// tests/cuda/cuda_perf.cpp: the CUDA backend's perf pass (run by scripts/cuda_check.sh; a benchmark, not a test):
//  - the device's copy bandwidth, measured in the same run (device-to-device, 1 GiB; reported as bytes read +
//    written per second, the usual "copy bandwidth", and as bytes read per second);
//  - LINEAR at batch 1 (the decode GEMV) on the GLM-4.1V-9B shapes in BF16: GB/s of weights read and % of the copy
//    bandwidth (each run reads a different copy of the weights: operands are not served from L2), and at 8 rows;
//  - LINEAR for prefill / vision sizes (cuBLAS): TFLOP/s;
//  - attention: paged decode over BF16 caches (1 sequence at contexts 512 to 16,384, 4 sequences at 512 and 8 at
//    2,048; the tensor-core decode kernel, the F32 split kernel and the flash kernel; GB/s of K/V read, each call on another copy of the
//    cache so the reads come from HBM; decode also replayed from a CUDA graph, as the engine runs it: GPU time
//    without the host's launch cost), causal prefill and dense vision attention (TFLOP/s, counting 4 * q * k *
//    head_dim per head, causal halved).
// Everything goes through ops (the model's dispatch). Output: a table on stdout and JSON (--out FILE).
//   cuda_perf [--device cuda:0] [--out perf.json] [--min-time 0.2] [--quick] [--decode-attention]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/ops.h"

using namespace autoglm;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
  std::string device = "cuda:0", out;
  double min_time = 0.2;
  bool quick = false;
  bool decode_only = false;  // --decode-attention: the copy bandwidth and the decode attention cases only
};

// Median seconds per call of fn, timed in batches of `batch` calls up to a synchronize.
double time_op(exec_context& ctx, const std::function<void(int)>& fn, double min_time, int batch = 10) {
  fn(0);
  ops::synchronize(ctx);
  std::vector<double> samples;
  const auto start = clock_type::now();
  int i = 0;
  while (samples.size() < 5 || std::chrono::duration<double>(clock_type::now() - start).count() < min_time) {
    const auto t0 = clock_type::now();
    for (int b = 0; b < batch; ++b) fn(++i);
    ops::synchronize(ctx);
    samples.push_back(std::chrono::duration<double>(clock_type::now() - t0).count() / batch);
    if (samples.size() > 2000) break;
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

const device_memory& mem(exec_context& ctx) { return kernel_registry::instance().memory(ctx.dev().kind); }

// A device tensor of `type` filled with small normal values (a 16 MiB random block repeated).
tensor random_tensor(exec_context& ctx, dtype type, const std::vector<int64_t>& shape, uint64_t seed) {
  tensor t = ops::alloc_persistent(ctx, type, shape);
  const size_t bytes = t.n_bytes();
  const size_t block = std::min(bytes, size_t(16) << 20);
  std::vector<uint8_t> host(block);
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  const size_t es = dtype_size(type);
  for (size_t i = 0; i + es <= block; i += es) {
    const float v = d(g);
    if (type == dtype::F32) std::memcpy(host.data() + i, &v, 4);
    else if (type == dtype::BF16) { const uint16_t h = f32_to_bf16(v); std::memcpy(host.data() + i, &h, 2); }
    else if (type == dtype::F16) { const uint16_t h = f32_to_f16(v); std::memcpy(host.data() + i, &h, 2); }
    else { const int32_t z = 0; std::memcpy(host.data() + i, &z, 4); }
  }
  auto* p = static_cast<uint8_t*>(t.data());
  mem(ctx).copy(ctx.kernels(), p, host.data(), block, false, true);
  for (size_t off = block; off < bytes; off += block)
    mem(ctx).copy(ctx.kernels(), p + off, p, std::min(block, bytes - off), false, false);
  ops::synchronize(ctx);
  return t;
}

tensor upload_i32(exec_context& ctx, const std::vector<int64_t>& shape, const std::vector<int32_t>& v) {
  tensor t = ops::alloc_persistent(ctx, dtype::I32, shape);
  mem(ctx).copy(ctx.kernels(), t.data(), v.data(), v.size() * 4, false, true);
  ops::synchronize(ctx);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--device") o.device = next();
    else if (a == "--out") o.out = next();
    else if (a == "--min-time") o.min_time = std::atof(next().c_str());
    else if (a == "--quick") o.quick = true;
    else if (a == "--decode-attention") o.decode_only = true;
    else {
      std::fprintf(stderr, "usage: cuda_perf [--device cuda:N] [--out FILE.json] [--min-time S] [--quick] "
                           "[--decode-attention]\n");
      return 2;
    }
  }
  try {
    const device dev = device::parse(o.device);
    if (const std::string why = ops::device_problem(dev); !why.empty()) {
      std::fprintf(stderr, "cuda_perf: %s\n", why.c_str());
      return 2;
    }
    exec_context ctx(dev, 1);
    nlohmann::json out;
    out["device"] = dev.str();
    size_t free_b = 0, total_b = 0;
    ops::memory_info(ctx, free_b, total_b);
    out["device_memory_bytes"] = total_b;

    // ---- copy bandwidth ----------------------------------------------------------------------------------------
    const size_t copy_bytes = size_t(1) << 30;
    tensor a = ops::alloc_persistent(ctx, dtype::U8, {int64_t(copy_bytes)});
    tensor b = ops::alloc_persistent(ctx, dtype::U8, {int64_t(copy_bytes)});
    const double t_copy = time_op(ctx, [&](int) { mem(ctx).copy(ctx.kernels(), b.data(), a.data(), copy_bytes, false, false); },
                                  o.min_time, 5);
    const double copy_gbs = 2.0 * double(copy_bytes) / t_copy / 1e9;  // read + write
    out["copy"] = {{"bytes", copy_bytes}, {"ms", t_copy * 1e3}, {"gbs_read_plus_write", copy_gbs},
                   {"gbs_read", double(copy_bytes) / t_copy / 1e9}};
    std::printf("device-to-device copy, 1 GiB: %.3f ms, %.0f GB/s read+written (%.0f GB/s read)\n", t_copy * 1e3,
                copy_gbs, double(copy_bytes) / t_copy / 1e9);
    a = tensor();
    b = tensor();

    // ---- GEMV (decode) -------------------------------------------------------------------------------------------
    struct lin { const char* name; int64_t n, k; };
    const std::vector<lin> decode_shapes = {{"q_proj", 4096, 4096},      {"k_proj", 256, 4096},
                                            {"o_proj", 4096, 4096},      {"gate_up_proj", 27392, 4096},
                                            {"down_proj", 4096, 13696},  {"lm_head", 151552, 4096}};
    std::printf("\n%-14s %4s %8s %8s %10s %10s %10s\n", "linear (bf16)", "m", "n", "k", "us", "GB/s", "% copy");
    for (int64_t m : {int64_t(1), int64_t(8)}) {
      if (o.decode_only) break;
      for (const lin& s : decode_shapes) {
        const size_t wbytes = size_t(s.n * s.k * 2);
        // Copies so that their total exceeds L2 many times over: each call reads its weights from memory.
        const int n_copies = int(std::clamp<size_t>((size_t(512) << 20) / wbytes + 1, 1, 64));
        std::vector<linear_weight> ws(static_cast<size_t>(n_copies));
        for (int c = 0; c < n_copies; ++c) {
          ws[size_t(c)].weight = random_tensor(ctx, dtype::BF16, {s.n, s.k}, uint64_t(c + 1));
          ws[size_t(c)].name = s.name;
        }
        tensor x = random_tensor(ctx, dtype::F32, {m, s.k}, 7), y = ops::alloc_persistent(ctx, dtype::F32, {m, s.n});
        const double t = time_op(ctx, [&](int i) { ops::linear(ctx, x, ws[size_t(i % n_copies)], y); }, o.min_time);
        const double gbs = double(wbytes) / t / 1e9;
        std::printf("%-14s %4lld %8lld %8lld %10.1f %10.0f %9.1f%%\n", s.name, (long long)m, (long long)s.n,
                    (long long)s.k, t * 1e6, gbs, 100 * gbs / copy_gbs);
        out["gemv"].push_back({{"name", s.name}, {"m", m}, {"n", s.n}, {"k", s.k}, {"us", t * 1e6}, {"gbs", gbs},
                               {"pct_of_copy", 100 * gbs / copy_gbs}});
      }
      if (o.quick) break;
    }

    // ---- GEMM (prefill, vision) -----------------------------------------------------------------------------------
    struct gemm { const char* name; int64_t m, n, k; };
    std::vector<gemm> gemms = {{"prefill512 q_proj", 512, 4096, 4096},     {"prefill2048 q_proj", 2048, 4096, 4096},
                               {"prefill2048 gate_up", 2048, 27392, 4096}, {"prefill2048 down", 2048, 4096, 13696},
                               {"vision qkv 13416", 13416, 4608, 1536},     {"vision down 13416", 13416, 1536, 4096}};
    if (o.quick) gemms.resize(2);
    if (o.decode_only) gemms.clear();
    std::printf("\n%-22s %6s %6s %6s %10s %10s\n", "linear (bf16 gemm)", "m", "n", "k", "ms", "TFLOP/s");
    for (const gemm& g : gemms) {
      linear_weight w;
      w.weight = random_tensor(ctx, dtype::BF16, {g.n, g.k}, 3);
      w.name = g.name;
      tensor x = random_tensor(ctx, dtype::F32, {g.m, g.k}, 4), y = ops::alloc_persistent(ctx, dtype::F32, {g.m, g.n});
      const double t = time_op(ctx, [&](int) { ops::linear(ctx, x, w, y); }, o.min_time, 3);
      const double tf = 2.0 * double(g.m) * double(g.n) * double(g.k) / t / 1e12;
      std::printf("%-22s %6lld %6lld %6lld %10.3f %10.1f\n", g.name, (long long)g.m, (long long)g.n, (long long)g.k,
                  t * 1e3, tf);
      out["gemm"].push_back({{"name", g.name}, {"m", g.m}, {"n", g.n}, {"k", g.k}, {"ms", t * 1e3}, {"tflops", tf}});
    }

    // ---- attention -----------------------------------------------------------------------------------------------
    const int32_t heads = 32, kv_heads = 2, hd = 128, bs = 16;
    // Decode batches through the one-launch decode kernel (the default) and, for comparison, the flash kernel
    // (AUTOGLM_CUDA_DECODE_ATTENTION=flash); prefill chunks through cuBLAS (the default) and through the flash
    // kernel (AUTOGLM_CUDA_PREFILL_ATTENTION).
    struct paged {
      std::string name;
      std::vector<std::pair<int32_t, int32_t>> seqs;  // (n_past, n_new)
      const char* prefill;                            // AUTOGLM_CUDA_PREFILL_ATTENTION
      const char* decode;                             // AUTOGLM_CUDA_DECODE_ATTENTION
    };
    const auto decodes = [](int n, int32_t ctx) {
      return std::vector<std::pair<int32_t, int32_t>>(size_t(n), {ctx - 1, 1});
    };
    // Decode: the tensor-core kernel (mma: the default for BF16 caches from 2,048 positions, timed here at every
    // length) beside the F32 split kernel ("(split)"); 4,900
    // positions is the phone-agent step's context (a 1,500-token prompt, a screenshot's 3,354 image tokens, text).
    std::vector<paged> pcases;
    for (const auto& [n, c] : std::vector<std::pair<int, int32_t>>{
             {1, 512}, {1, 1024}, {4, 512}, {1, 2048}, {1, 4096}, {1, 4900}, {1, 8192}, {1, 16384}, {8, 2048}}) {
      const std::string base = "decode " + std::to_string(n) + (n == 1 ? " seq" : " seqs") + " ctx " + std::to_string(c);
      pcases.push_back({base + " (mma)", decodes(n, c), "gemm", "mma"});
      pcases.push_back({base + " (split)", decodes(n, c), "gemm", "split"});
    }
    pcases.push_back({"decode 1 seq ctx 4096 (flash)", decodes(1, 4096), "gemm", "flash"});
    pcases.push_back({"decode 8 seqs ctx 2048 (flash)", decodes(8, 2048), "gemm", "flash"});
    for (paged p : std::vector<paged>{
             {"prefill 512 after 1500 (wgmma)", {{1500, 512}}, "wgmma", "split"},
             {"prefill 2048 (wgmma)", {{0, 2048}}, "wgmma", "split"},
             {"prefill 4096 (wgmma)", {{0, 4096}}, "wgmma", "split"},
             {"prefill 2048 (wgmma_ws)", {{0, 2048}}, "wgmma_ws", "split"},
             {"prefill 4096 (wgmma_ws)", {{0, 4096}}, "wgmma_ws", "split"},
             {"prefill 2048 (wgmma_tma)", {{0, 2048}}, "wgmma_tma", "split"},
             {"prefill 4096 (wgmma_tma)", {{0, 4096}}, "wgmma_tma", "split"},
             {"prefill 512 after 1500 (mma)", {{1500, 512}}, "mma", "split"},
             {"prefill 2048 (mma)", {{0, 2048}}, "mma", "split"},
             {"prefill 2048 (mma64)", {{0, 2048}}, "mma64", "split"},
             {"prefill 4096 (mma)", {{0, 4096}}, "mma", "split"},
             {"prefill 4096 (mma64)", {{0, 4096}}, "mma64", "split"},
             {"prefill 512 after 1500 (gemm)", {{1500, 512}}, "gemm", "split"},
             {"prefill 2048 (gemm)", {{0, 2048}}, "gemm", "split"},
             {"prefill 512 after 1500 (flash)", {{1500, 512}}, "flash", "split"},
             {"prefill 2048 (flash)", {{0, 2048}}, "flash", "split"}})
      pcases.push_back(p);
    if (o.quick)  // the default kernels only
      pcases.erase(std::remove_if(pcases.begin(), pcases.end(),
                                  [](const paged& p) {
                                    const std::string& n = p.name;
                                    return n.find("flash") != std::string::npos || n.find("gemm") != std::string::npos;
                                  }),
                   pcases.end());
    if (o.decode_only)
      pcases.erase(std::remove_if(pcases.begin(), pcases.end(), [](const paged& p) { return p.name.rfind("decode", 0) != 0; }),
                   pcases.end());
    // Eager: ms per call as the host launches it; graph: microseconds per call replayed in a CUDA graph.
    std::printf("\n%-32s %10s %10s %10s %10s %10s %8s\n", "attention_paged (bf16 KV)", "ms", "GB/s KV", "TFLOP/s",
                "graph us", "graph GB/s", "replay");
    for (const paged& pc : pcases) {
      int32_t n_rows = 0, n_blocks = 0, width = 0, max_ctx = 0;
      for (const auto& [past, fresh] : pc.seqs) {
        n_rows += fresh;
        const int32_t nb = (past + fresh + bs - 1) / bs;
        n_blocks += nb;
        width = std::max(width, nb);
        max_ctx = std::max(max_ctx, past + fresh);
      }
      double flops = 0, kv_bytes = 0;
      std::vector<int32_t> info;
      int32_t row = 0;
      for (const auto& [past, fresh] : pc.seqs) {
        info.insert(info.end(), {row, fresh, past});
        row += fresh;
        for (int32_t i = 0; i < fresh; ++i) flops += 4.0 * double(past + i + 1) * hd * heads;
        kv_bytes += 2.0 * double(past + fresh) * kv_heads * hd * 2;
      }
      // Successive calls read different copies of the cache (its blocks, through their own block tables), 256 MiB
      // in all, so the K/V reads come from HBM as in a real decode step rather than from the 50 MB L2.
      const int32_t copies = int32_t(std::clamp<double>(std::ceil(double(256 << 20) / kv_bytes), 1.0, 512.0));
      std::vector<int32_t> tables(size_t(copies) * pc.seqs.size() * size_t(width), 0);
      int32_t next = 0;
      for (int32_t c = 0; c < copies; ++c)
        for (size_t s = 0; s < pc.seqs.size(); ++s) {
          const auto [past, fresh] = pc.seqs[s];
          for (int32_t blk = 0; blk < (past + fresh + bs - 1) / bs; ++blk)
            tables[(size_t(c) * pc.seqs.size() + s) * size_t(width) + size_t(blk)] = next++;
        }
      paged_kv_layer kv;
      kv.k = random_tensor(ctx, dtype::BF16, {int64_t(n_blocks) * copies, bs, kv_heads, hd}, 5);
      kv.v = random_tensor(ctx, dtype::BF16, {int64_t(n_blocks) * copies, bs, kv_heads, hd}, 6);
      const int32_t n_seqs = int32_t(pc.seqs.size());
      const tensor all_tables = upload_i32(ctx, {int64_t(copies) * n_seqs, width}, tables);
      std::vector<paged_batch> batches(static_cast<size_t>(copies));
      for (int32_t c = 0; c < copies; ++c) {
        paged_batch& batch = batches[size_t(c)];
        batch.n_seqs = n_seqs;
        batch.max_context = max_ctx;
        batch.seq_info = c == 0 ? upload_i32(ctx, {n_seqs, 3}, info) : batches[0].seq_info;
        batch.block_tables = all_tables.rows_view(int64_t(c) * n_seqs, n_seqs);
      }
      tensor q = random_tensor(ctx, dtype::F32, {n_rows, heads * hd}, 8);
      tensor outp = ops::alloc_persistent(ctx, dtype::F32, {n_rows, heads * hd});
      setenv("AUTOGLM_CUDA_PREFILL_ATTENTION", pc.prefill, 1);
      setenv("AUTOGLM_CUDA_DECODE_ATTENTION", pc.decode, 1);
      setenv("AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT", "0", 1);
      const double t = time_op(
          ctx,
          [&](int i) {
            ops::attention_paged(ctx, q, kv, batches[size_t(i % copies)], heads, kv_heads, hd,
                                 1.0f / std::sqrt(float(hd)), outp);
          },
          o.min_time, 5);
      // Decode steps run as recorded CUDA graphs (runtime/step_graphs): the same calls, one per cache copy, recorded
      // once and replayed give the GPU's time per call without the host's launch cost; the last call's output must
      // be the eager call's bytes (the decode kernel's counters are back at zero after every launch).
      double t_graph = 0;
      std::string replay = "-";
      const bool decode = std::all_of(pc.seqs.begin(), pc.seqs.end(), [](const auto& sq) { return sq.second == 1; });
      if (decode && ops::graphs_supported(ctx)) {
        auto call = [&](int i, tensor& dst) {
          const float scale = 1.0f / std::sqrt(float(hd));
          ops::attention_paged(ctx, q, kv, batches[size_t(i % copies)], heads, kv_heads, hd, scale, dst);
        };
        ops::graph_begin(ctx);
        for (int32_t i = 0; i < copies; ++i) call(i, outp);
        const std::shared_ptr<void> graph = ops::graph_end(ctx);
        if (graph) {
          t_graph = time_op(ctx, [&](int) { ops::graph_launch(ctx, graph); }, o.min_time, 2) / copies;
          tensor eager = ops::alloc_persistent(ctx, dtype::F32, {n_rows, heads * hd});
          call(copies - 1, eager);
          std::vector<uint8_t> a_host(outp.n_bytes()), b_host(eager.n_bytes());
          mem(ctx).copy(ctx.kernels(), a_host.data(), outp.data(), a_host.size(), true, false);
          mem(ctx).copy(ctx.kernels(), b_host.data(), eager.data(), b_host.size(), true, false);
          ops::synchronize(ctx);
          replay = a_host == b_host ? "same" : "DIFFERENT";
        }
      }
      unsetenv("AUTOGLM_CUDA_PREFILL_ATTENTION");
      unsetenv("AUTOGLM_CUDA_DECODE_ATTENTION");
      unsetenv("AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT");
      if (t_graph > 0)
        std::printf("%-32s %10.3f %10.0f %10.1f %10.2f %10.0f %8s\n", pc.name.c_str(), t * 1e3, kv_bytes / t / 1e9,
                    flops / t / 1e12, t_graph * 1e6, kv_bytes / t_graph / 1e9, replay.c_str());
      else
        std::printf("%-32s %10.3f %10.0f %10.1f\n", pc.name.c_str(), t * 1e3, kv_bytes / t / 1e9, flops / t / 1e12);
      nlohmann::json entry = {{"name", pc.name},
                              {"ms", t * 1e3},
                              {"kv_gbs", kv_bytes / t / 1e9},
                              {"tflops", flops / t / 1e12},
                              {"cache_copies", copies}};
      if (t_graph > 0) {
        entry["graph_us"] = t_graph * 1e6;
        entry["graph_kv_gbs"] = kv_bytes / t_graph / 1e9;
        entry["graph_replay"] = replay;
      }
      out["attention_paged"].push_back(entry);
    }
    // The vision tower (12 heads of 128): a 336x336 image (576 patches: the F32 kernel) and a 1080x2400 screenshot
    // (13416 patches, bf16 products): the wgmma flash kernel (128- and 64-key tiles), the mma.sync kernel
    // (64- and 128-row blocks) beside cuBLAS (S = Q K^T in memory) and the fused WMMA kernel.
    struct dense_run {
      int64_t n;
      const char* path;  // AUTOGLM_CUDA_DENSE_ATTENTION
    };
    std::vector<dense_run> dense_runs = {{576, "mma"},     {13416, "wgmma_ws"}, {13416, "wgmma_tma"}, {13416, "wgmma"},
                                         {13416, "wgmma64"}, {13416, "mma64"},   {13416, "mma"},       {13416, "gemm"},
                                         {13416, "fused"}};
    if (o.quick) dense_runs.resize(6);
    if (o.decode_only) dense_runs.clear();
    std::printf("\n%-40s %10s %10s\n", "attention_dense", "ms", "TFLOP/s");
    for (const dense_run& r : dense_runs) {
      const int64_t n = r.n;
      const int32_t vh = 12;
      setenv("AUTOGLM_CUDA_DENSE_ATTENTION", r.path, 1);
      tensor qkv = random_tensor(ctx, dtype::F32, {n, 3 * vh * hd}, 9);
      tensor outd = ops::alloc_persistent(ctx, dtype::F32, {n, vh * hd});
      tensor seg = upload_i32(ctx, {2}, {0, int32_t(n)});
      const tensor q = qkv.cols_view(0, vh * hd), k = qkv.cols_view(vh * hd, vh * hd), v = qkv.cols_view(2 * vh * hd, vh * hd);
      const double t = time_op(
          ctx, [&](int) { ops::attention_dense(ctx, q, k, v, vh, hd, seg, 1.0f / std::sqrt(float(hd)), outd); },
          o.min_time, 2);
      unsetenv("AUTOGLM_CUDA_DENSE_ATTENTION");
      const double flops = 4.0 * double(n) * double(n) * hd * vh;
      const std::string name = "vision " + std::to_string(n) + " patches" + (n >= 1024 ? std::string(" (") + r.path + ")" : "");
      std::printf("%-40s %10.3f %10.1f\n", name.c_str(), t * 1e3, flops / t / 1e12);
      out["attention_dense"].push_back({{"name", name}, {"ms", t * 1e3}, {"tflops", flops / t / 1e12}});
    }

    if (!o.out.empty()) {
      std::ofstream f(o.out);
      f << out.dump(2) << "\n";
      if (!f) throw error("cannot write " + o.out);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_perf: %s\n", e.what());
    return 1;
  }
}
