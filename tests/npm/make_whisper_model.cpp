// tests/npm/make_whisper_model.cpp: writes a tiny Whisper checkpoint for the speech tests (speech.test.mjs):
// WhisperForConditionalGeneration in the real Hugging Face layout, vocabulary 51865 with the real special ids, the
// tokenizer / generation / preprocessor configs of tests/fixtures/whisper, and random weights from the
// counter-based rule of tests/model/whisper_fixture.h. Its transcripts are gibberish, but every step of the
// speech path (decode, mel, encoder, decoder, timestamps, detokenizing) runs for real.
// Usage: autoglm_test_make_whisper_model OUT_DIR
#include <cstdio>
#include <exception>

#include "whisper_fixture.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const nlohmann::json cfg = autoglm::test::tiny_whisper_config(32, 2, 4);
    autoglm::test::write_whisper_dir(argv[1], cfg, autoglm::test::whisper_tensor_specs(cfg));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
