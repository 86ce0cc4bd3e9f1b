// tests/model/old_model_tool.cpp: TRANSITIONAL: the old model path (model_runner + sequence_runner) as a separate
// program, so tests of the new model can compare against it without linking both contracts into one binary
// (model_runner.h and model.h define different forward_batch types under one name). Delete with model_runner.h.
//   old_model_tool dump OUT_DIR   every fixture case: <case>.prefill.f32 (all prompt logits, chunked as the
//                                 parity tests chunk), <case>.decode.f32 (the logits of each greedy step),
//                                 <case>.greedy.i32, plus weight_bytes.txt
//   old_model_tool bench THREADS [MODEL_DIR [decode|vision]]  timing JSON (path_bench.h); decode / vision: only those
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fixture_io.h"
#include "model/glm4v/glm4v_model.h"
#include "model/model_loader.h"
#include "model/sequence_runner.h"
#include "path_bench.h"

using namespace autoglm;

namespace {

template <class T>
void write_file(const std::string& path, const std::vector<T>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

int dump(const std::string& out_dir) {
  auto model = load_model_runner(test::fixture_model_dir(), 2);
  const int32_t vocab = model->info().vocab_size;
  const nlohmann::json cases = test::load_cases();
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    const std::vector<vision_input> images = test::fixture_images(c);
    sequence_runner seq(*model, int32_t(tokens.size()) + 40);
    const std::vector<float> prefill = seq.prefill(tokens, images, true, images.empty() ? 17 : 13);
    std::vector<float> decode_logits;
    struct recorder {
      sequence_runner& seq;
      std::vector<float>& all;
      std::vector<float> decode(int32_t t) {
        std::vector<float> l = seq.decode(t);
        all.insert(all.end(), l.begin(), l.end());
        return l;
      }
    } rec{seq, decode_logits};
    const std::vector<int32_t> greedy = test::greedy_continuation(
        rec, prefill.data() + (tokens.size() - 1) * size_t(vocab), vocab,
        c["eos_token_ids"].get<std::vector<int32_t>>());
    write_file(out_dir + "/" + name + ".prefill.f32", prefill);
    write_file(out_dir + "/" + name + ".decode.f32", decode_logits);
    write_file(out_dir + "/" + name + ".greedy.i32", greedy);
  }
  auto* glm = dynamic_cast<glm4v::glm4v_model*>(model.get());
  std::ofstream(out_dir + "/weight_bytes.txt") << glm->text().weight_bytes_per_token() << "\n";
  return 0;
}

int bench(int32_t threads, const std::string& model_dir, const std::string& mode) {
  auto model = load_model_runner(model_dir, threads);
  sequence_runner seq(*model, 3600);
  test::path_hooks h;
  h.reset = [&] { seq.reset(); };
  h.fake_context = [&](int32_t n) { seq.fake_context(n); };
  h.prefill = [&](const std::vector<int32_t>& p) { seq.prefill(p, {}); };
  h.decode = [&](int32_t t) { seq.decode(t); };
  h.encode = [&](const vision_input& v) { model->encode_image(v); };
  h.vocab = model->info().vocab_size;
  h.patch_dim = 3 * 2 * 14 * 14;
  // "decode": only decode steps, many of them (the small model's step is tens of microseconds); "vision": only
  // encodes.
    nlohmann::json j = mode == "decode"   ? test::run_path_bench(h, {128, 2048}, 1500, 0, {}, 0)
                       : mode == "vision" ? test::run_path_bench(h, {}, 0, 0, {{48, 64}}, 10)
                                          : test::run_path_bench(h, {128, 2048}, 300, 512, {{24, 24}, {48, 64}}, 5);
  j["path"] = "old";
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 3 && std::strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    if (argc >= 3 && std::strcmp(argv[1], "bench") == 0)
      return bench(std::atoi(argv[2]), argc >= 4 ? argv[3] : test::fixture_model_dir(),
                   argc >= 5 ? argv[4] : "all");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "old_model_tool: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: old_model_tool dump OUT_DIR | bench THREADS [MODEL_DIR [decode|vision]]\n");
  return 2;
}
