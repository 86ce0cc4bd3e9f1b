// tests/model/new_model_tool.cpp: TRANSITIONAL: timing of the new model path (model.h over ops) with the method of
// old_model_tool (path_bench.h), for the old-vs-new performance comparison. Delete with old_model_tool.
//   new_model_tool bench THREADS [MODEL_DIR [decode|vision]]
#include <cstdio>
#include <cstring>
#include <string>

#include "fixture_io.h"
#include "model/model.h"
#include "model_driver.h"
#include "path_bench.h"

using namespace autoglm;

int main(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[1], "bench") != 0) {
    std::fprintf(stderr, "usage: new_model_tool bench THREADS [MODEL_DIR [decode|vision]]\n");
    return 2;
  }
  try {
    const std::string mode = argc >= 5 ? argv[4] : "all";
    exec_context ctx(device{}, std::atoi(argv[2]));
    auto m = load_model(argc >= 4 ? argv[3] : test::fixture_model_dir(), ctx);
    test::sequence_driver seq(*m, ctx, 3600);
    test::path_hooks h;
    h.reset = [&] { seq.reset(); };
    h.fake_context = [&](int32_t n) { seq.fake_context(n); };
    h.prefill = [&](const std::vector<int32_t>& p) { seq.prefill(p, {}); };
    h.decode = [&](int32_t t) { seq.decode(t); };
    h.encode = [&](const vision_input& v) { m->encode_image(ctx, v); };
    h.vocab = m->info().vocab_size;
    h.patch_dim = 3 * 2 * 14 * 14;
    // "decode": only decode steps, many of them (the small model's step is tens of microseconds); "vision": only
  // encodes.
    nlohmann::json j = mode == "decode"   ? test::run_path_bench(h, {128, 2048}, 1500, 0, {}, 0)
                       : mode == "vision" ? test::run_path_bench(h, {}, 0, 0, {{48, 64}}, 10)
                                          : test::run_path_bench(h, {128, 2048}, 300, 512, {{24, 24}, {48, 64}}, 5);
    j["path"] = "new";
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "new_model_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
