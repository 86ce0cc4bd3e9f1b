// tests/model/whisper_parity_test.cpp: the Whisper model over ops against Hugging Face transformers (fp32, eager) on
// the tiny random WhisperConfig of tests/fixtures/make_whisper_fixtures.py (vocab 51865, d_model 64, 2 + 2 layers,
// 4 heads, 80 mel bins). The checkpoint is rebuilt here from weights.json (per-tensor seeds, whisper_fixture.h's
// rule; the per-tensor sums the script recorded are checked first, so a generator mismatch reads as such).
// Tolerances (stated, not tuned): encoder states within 1e-4 x max|ref| per case; decoder logits of the forced
// prefix within 1e-4 x max|ref| per row; greedy tokens identical (language "en", transcribe, with and without
// timestamps, and with a prompt). Skips while the fixture files are absent (the lead runs the script on the GPU
// machine and commits tests/fixtures/whisper/ref.json and its .f32 files).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/whisper/whisper.h"
#if defined(AUTOGLM_HAVE_CUDA)
#include "kernels/cuda/register.h"
#endif
#include "ops/ops.h"
#include "runtime/whisper_decoding.h"
#include "tokenizer/tokenizer.h"
#include "whisper_fixture.h"

using namespace autoglm;
using json = nlohmann::json;

namespace {

std::string ref_path(const std::string& f) { return test::whisper_fixture_dir() + "/" + f; }

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path);
  return json::parse(in);
}

std::vector<float> read_f32(const json& desc) {
  const std::string path = ref_path(desc["file"].get<std::string>());
  int64_t n = 1;
  for (int64_t d : desc["shape"].get<std::vector<int64_t>>()) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  if (in.gcount() != n * 4) throw std::runtime_error("short or missing " + path);
  return v;
}

std::vector<test::fixture_tensor> specs_of(const json& weights) {
  std::vector<test::fixture_tensor> out;
  for (const json& t : weights["tensors"])
    out.push_back({t["name"], t["shape"].get<std::vector<int64_t>>(), t["seed"].get<uint64_t>(), t["offset"].get<double>(),
                   t["scale"].get<double>()});
  return out;
}

// max |a - b| / max |b| over [begin, end).
double rel_err(const float* a, const float* b, size_t n) {
  double mr = 0, md = 0;
  for (size_t i = 0; i < n; ++i) {
    mr = std::max(mr, double(std::fabs(b[i])));
    md = std::max(md, double(std::fabs(a[i] - b[i])));
  }
  return md / std::max(mr, 1e-30);
}

class whisper_parity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(ref_path("ref.json")) || !std::filesystem::exists(ref_path("weights.json")))
      GTEST_SKIP() << "tests/fixtures/whisper/ref.json absent: run tests/fixtures/make_whisper_fixtures.py OUT on a "
                      "machine with torch + transformers and copy OUT/whisper/* there";
    ref_ = read_json(ref_path("ref.json"));
    const json weights = read_json(ref_path("weights.json"));
    specs_ = specs_of(weights);
    dir_ = test::temp_dir("whisper_parity");
    const json cfg = read_json(ref_path("config.json"));
    test::write_whisper_dir(dir_, cfg, specs_);
    // AUTOGLM_TEST_DEVICE=cuda:0 runs the same checks on a GPU (scripts/cuda_check.sh), with split GEMM precision
    // (near F32) so the F32 tolerances below hold there too.
    const char* dev = std::getenv("AUTOGLM_TEST_DEVICE");
    const device d = dev && *dev ? device::parse(dev) : device{};
    ops::init_backends();
    if (const std::string why = ops::device_problem(d); !why.empty()) GTEST_SKIP() << why;
#if defined(AUTOGLM_HAVE_CUDA)
    if (d.kind == device_kind::CUDA) set_cuda_gemm_precision(cuda_gemm_precision::SPLIT);
#endif
    ctx_ = std::make_unique<exec_context>(d, 2);
    model_ = whisper::model::load(dir_, *ctx_);
  }
  void TearDown() override {
    model_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::vector<float> features(const std::string& name) const {
    const json& f = ref_["features"][name];
    if (f.contains("file")) return read_f32(f);
    const test::fixture_tensor t{"features", f["shape"].get<std::vector<int64_t>>(), f["seed"].get<uint64_t>(),
                                 f["offset"].get<double>(), f["scale"].get<double>()};
    return test::fixture_values(t);
  }

  json ref_;
  std::vector<test::fixture_tensor> specs_;
  std::string dir_;
  std::unique_ptr<exec_context> ctx_;
  std::unique_ptr<whisper::model> model_;
};

}  // namespace

TEST_F(whisper_parity, generated_weights_match_the_scripts) {
  const json weights = read_json(ref_path("weights.json"));
  for (size_t i = 0; i < specs_.size(); ++i) {
    const std::vector<float> v = test::fixture_values(specs_[i]);
    double sum = 0;
    for (float x : v) sum += x;
    const double want = weights["tensors"][i]["sum"];
    EXPECT_NEAR(sum, want, 1e-9 * std::max(1.0, std::fabs(want)) + 1e-6) << specs_[i].name;
  }
}

TEST_F(whisper_parity, encoder_states) {
  int n = 0;
  for (const auto& [name, desc] : ref_["encoder"].items()) {
    const std::vector<float> f = features(name);
    const tensor states = model_->encoder().encode(*ctx_, f.data());
    const tensor host = ops::host_f32(*ctx_, states);
    const std::vector<float> want = read_f32(desc);
    ASSERT_EQ(size_t(host.n_elements()), want.size()) << name;
    const double e = rel_err(host.ptr<float>(), want.data(), want.size());
    std::printf("[whisper parity] encoder %-8s max|diff|/max|ref| = %.3g\n", name.c_str(), e);
    EXPECT_LE(e, 1e-4) << name;
    ++n;
  }
  EXPECT_GE(n, 2);
}

TEST_F(whisper_parity, forced_prefix_logits) {
  const int64_t V = model_->cfg().vocab_size;
  for (const json& c : ref_["prefix_logits"]) {
    const std::vector<float> f = features(c["features"]);
    const tensor states = model_->encoder().encode(*ctx_, f.data());
    whisper::decoder_state st = model_->decoder().start(*ctx_, states);
    const std::vector<int32_t> ids = c["ids"], rows = c["rows"];
    const std::vector<float> ours = model_->decoder().forward(*ctx_, st, ids, rows);
    const std::vector<float> want = read_f32(c["logits"]);
    ASSERT_EQ(ours.size(), want.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      const double e = rel_err(ours.data() + r * size_t(V), want.data() + r * size_t(V), size_t(V));
      std::printf("[whisper parity] prefix logits (%s) row %d: %.3g\n", c["features"].get<std::string>().c_str(),
                  rows[r], e);
      EXPECT_LE(e, 1e-4) << "row " << rows[r];
    }
  }
}

TEST_F(whisper_parity, greedy_tokens) {
  const whisper::special_tokens sp =
      whisper::special_tokens::from(model_->gen(), nullptr, model_->cfg().vocab_size);
  int n = 0;
  for (const json& c : ref_["greedy"]) {
    const std::vector<float> f = features(c["features"]);
    const tensor states = model_->encoder().encode(*ctx_, f.data());
    whisper::decoder_state st = model_->decoder().start(*ctx_, states);
    whisper::window_options o;
    o.language_token = model_->gen().language_token(c["language"]);
    o.timestamps = c["timestamps"];
    o.prompt = c.value("prompt", std::vector<int32_t>{});
    const whisper::step_fn step = [&](const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) {
      return model_->decoder().forward(*ctx_, st, ids, rows);
    };
    whisper::generation_config gen = model_->gen();
    if (c.contains("max_new_tokens")) gen.max_length = int32_t(c["max_new_tokens"]) + 1;
    const whisper::window_result r = whisper::decode_window(step, sp, gen, o, model_->cfg().max_target_positions);
    EXPECT_EQ(r.tokens, c["tokens"].get<std::vector<int32_t>>()) << c["name"].get<std::string>();
    ++n;
  }
  EXPECT_GE(n, 3);
}
