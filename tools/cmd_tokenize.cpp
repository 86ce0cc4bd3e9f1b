// tools/cmd_tokenize.cpp: `autoglm tokenize` (text -> ids as JSON) and `autoglm detokenize` (ids -> text), over a
// tokenizer.json; --jsonl for one JSON value per line (used by the parity tests against HF tokenizers).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using json = nlohmann::json;

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

int run_tokenize(int argc, char** argv) {
  CLI::App app{"Encode text from stdin to token ids (printed as a JSON array)", argv[0]};
  std::string model;
  bool no_special = false, add_special = false, jsonl = false;
  int bench = 0;
  app.add_option("-m,--model", model, "model directory or tokenizer.json")->required();
  app.add_flag("--no-special", no_special, "treat special tokens in the text as plain text");
  app.add_flag("--add-special-tokens", add_special, "apply the post-processor (e.g. BOS / [gMASK]<sop>)");
  app.add_flag("--jsonl", jsonl, "read one JSON string per line, print one JSON array per line");
  app.add_option("--bench", bench, "encode stdin N times and report throughput instead of printing ids");
  CLI11_PARSE(app, argc, argv);

  auto tok = autoglm::tokenizer::load(model);
  auto encode = [&](std::string_view s) {
    return add_special ? tok->encode_with_post_processor(s, !no_special) : tok->encode(s, !no_special);
  };
  if (bench > 0) {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    size_t n_tokens = 0;
    for (int r = 0; r < bench; ++r) {
      // CPU time of this (single) thread: the per-core rate, independent of other load on the machine.
      std::clock_t c0 = std::clock();
      auto t0 = std::chrono::steady_clock::now();
      n_tokens = encode(text).size();
      double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("pass %d: %zu bytes -> %zu tokens; cpu %.3f s = %.2f MB/s per core (wall %.3f s)%s\n", r + 1,
                  text.size(), n_tokens, cpu, text.size() / cpu / 1e6, wall, r == 0 ? " (cold word cache)" : "");
    }
    return 0;
  }
  if (!jsonl) {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::printf("%s\n", ids_json(encode(text)).c_str());
    return 0;
  }
  std::string line;
  size_t n_line = 0;
  while (std::getline(std::cin, line)) {
    ++n_line;
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception& e) {
      throw autoglm::error("stdin line " + std::to_string(n_line) + ": invalid JSON: " + e.what());
    }
    if (!j.is_string()) throw autoglm::error("stdin line " + std::to_string(n_line) + ": expected a JSON string");
    std::printf("%s\n", ids_json(encode(j.get_ref<const std::string&>())).c_str());
  }
  return 0;
}

std::vector<int32_t> parse_ids(const json& j, const std::string& where) {
  if (!j.is_array()) throw autoglm::error(where + ": expected a JSON array of token ids");
  std::vector<int32_t> ids;
  for (auto& v : j) {
    if (!v.is_number_integer()) throw autoglm::error(where + ": token ids must be integers");
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

int run_detokenize(int argc, char** argv) {
  CLI::App app{"Decode a JSON array of token ids from stdin to text", argv[0]};
  std::string model;
  bool keep_special = false, jsonl = false;
  app.add_option("-m,--model", model, "model directory or tokenizer.json")->required();
  app.add_flag("--keep-special", keep_special, "do not skip special tokens");
  app.add_flag("--jsonl", jsonl, "read one JSON array per line, print one JSON string per line");
  CLI11_PARSE(app, argc, argv);

  auto tok = autoglm::tokenizer::load(model);
  if (!jsonl) {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    json j;
    try {
      j = json::parse(text);
    } catch (const std::exception& e) {
      throw autoglm::error(std::string("stdin: invalid JSON: ") + e.what());
    }
    std::string out = tok->decode(parse_ids(j, "stdin"), !keep_special);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::printf("\n");
    return 0;
  }
  std::string line;
  size_t n_line = 0;
  while (std::getline(std::cin, line)) {
    ++n_line;
    if (line.empty()) continue;
    std::string where = "stdin line " + std::to_string(n_line);
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception& e) {
      throw autoglm::error(where + ": invalid JSON: " + e.what());
    }
    std::string out = tok->decode(parse_ids(j, where), !keep_special);
    std::printf("%s\n", json(out).dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  }
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("tokenize", "encode text to token ids with a tokenizer.json", run_tokenize);
AUTOGLM_COMMAND("detokenize", "decode token ids to text with a tokenizer.json", run_detokenize);
