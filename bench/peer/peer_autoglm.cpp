// bench/peer/peer_autoglm.cpp: autoglm's side of the llama.cpp peer benchmark (bench/peer/peer.mjs runs it and
// peer_llama.mjs alternately, one process per repetition). Loads a model directory (config + tokenizer + the
// GGUF file llama.cpp also runs), prefills a given prompt once, decodes a given number of tokens greedily at
// batch 1, and prints one JSON object: wall-clock time when ready (the caller subtracts its spawn time: process
// start to ready), the engine's own create time, prefill and per-token decode times (taken on the engine thread
// as events leave it, as `autoglm bench` does), and the process's memory from /proc/self/status.
//
//   autoglm_peer_autoglm MODEL_DIR --tokens-file F --decode N [--threads T] [--ctx C] [--kv-type f16]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autoglm/engine.h"

using namespace autoglm;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double unix_ms_now() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// kB values of /proc/self/status (VmHWM: peak resident set; RssAnon / RssFile: heap vs mapped file pages).
nlohmann::json memory_status() {
  std::ifstream f("/proc/self/status");
  nlohmann::json out = nlohmann::json::object();
  std::string line;
  while (std::getline(f, line))
    for (const char* key : {"VmHWM", "VmRSS", "RssAnon", "RssFile"})
      if (line.rfind(std::string(key) + ":", 0) == 0) out[std::string(key) + "_kB"] = std::atoll(line.c_str() + std::strlen(key) + 1);
  return out;
}

std::vector<int32_t> read_tokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open the prompt token file");
  std::vector<int32_t> out;
  std::string item;
  while (std::getline(f, item, ','))
    if (item.find_first_not_of(" \n\r\t") != std::string::npos) out.push_back(int32_t(std::stol(item)));
  if (out.empty()) throw std::runtime_error(path + ": no token ids (expected comma-separated integers)");
  return out;
}

// The process's page faults and CPU time so far (getrusage counts every thread of the process). CPU time leaves out
// what this VM's host takes away (steal): A/B runs on a noisy machine compare it beside the wall-clock prefill.
struct faults {
  int64_t minor = 0, major = 0;
  double cpu_ms = 0;  // user + system time of every thread
};
faults faults_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto ms = [](const timeval& t) { return double(t.tv_sec) * 1e3 + double(t.tv_usec) / 1e3; };
  return {int64_t(u.ru_minflt), int64_t(u.ru_majflt), ms(u.ru_utime) + ms(u.ru_stime)};
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR --tokens-file F --decode N [--threads T] [--ctx C] [--kv-type f16]\n", argv[0]);
    return 2;
  }
  std::string model_dir = argv[1], tokens_file, kv_type = "f16";
  int threads = 0, decode = 32, ctx = 4096;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--tokens-file") tokens_file = v;
    else if (a == "--decode") decode = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--ctx") ctx = std::stoi(v);
    else if (a == "--kv-type") kv_type = v;
    else throw std::runtime_error("unknown option " + a);
  }
  const std::vector<int32_t> prompt = read_tokens(tokens_file);
  if (decode < 2 || int64_t(prompt.size()) + decode + 1 > ctx) throw std::runtime_error("--decode must be >= 2 and prompt + decode fit --ctx");

  // One sequence, a KV cache of --ctx positions (llama.cpp's context size), every prompt token computed.
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.max_num_seqs = 1;
  eo.max_model_len = ctx;
  eo.max_batch_tokens = 512;  // llama.cpp's default batch: a 512-token prompt is one forward in both
  eo.enable_prefix_caching = false;
  eo.kv_cache_dtype = parse_kv_cache_type(kv_type);
  const auto t_create = clock_type::now();
  auto eng = engine::create(eo);
  const double create_ms = ms_between(t_create, clock_type::now());
  const double ready_unix_ms = unix_ms_now();
  const nlohmann::json mem_ready = memory_status();
  const faults faults_ready = faults_now();

  generation_request req;
  req.prompt = prompt;
  req.sampling.temperature = 0.0f;
  req.sampling.ignore_eos = true;
  req.sampling.max_tokens = decode + 1;  // the prefill's token, then `decode` decode steps
  std::mutex mu;
  std::condition_variable cv;
  std::vector<clock_type::time_point> times;
  generation_event last;
  bool done = false;
  faults faults_first{};
  const auto t0 = clock_type::now();
  const uint64_t id = eng->submit(std::move(req), [&](const generation_event& ev) {
    std::lock_guard<std::mutex> lk(mu);
    if (ev.has_token) {
      times.push_back(clock_type::now());
      if (times.size() == 1) faults_first = faults_now();
    }
    if (ev.finish == finish_reason::NONE) return;
    last = ev;
    done = true;
    cv.notify_all();
  });
  if (id == 0) throw std::runtime_error("the engine refused the request");
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
  }
  if (last.finish == finish_reason::ERROR) throw std::runtime_error("generation failed: " + last.error);
  if (times.size() != size_t(decode) + 1) throw std::runtime_error("the engine stopped early");
  std::vector<double> steps;
  for (size_t i = 1; i < times.size(); ++i) steps.push_back(ms_between(times[i - 1], times[i]));
  const double decode_total_ms = ms_between(times.front(), times.back());
  std::vector<double> sorted = steps;
  std::sort(sorted.begin(), sorted.end());
  const double prefill_ms = ms_between(t0, times.front());

  nlohmann::json out = {{"engine", "autoglm"},
                        {"model_dir", model_dir},
                        {"threads", eng->n_threads()},
                        {"ctx", eng->max_model_len()},
                        {"kv_type", kv_type},
                        {"ready_unix_ms", ready_unix_ms},
                        {"model_load_ms", create_ms},
                        {"prompt_tokens", prompt.size()},
                        {"prefill_ms", prefill_ms},
                        {"prefill_tokens_per_s", double(prompt.size()) * 1000.0 / prefill_ms},
                        {"decode_tokens", steps.size()},
                        {"decode_ms_median", sorted[sorted.size() / 2]},
                        {"decode_ms_min", sorted.front()},
                        {"decode_ms_max", sorted.back()},
                        {"decode_tokens_per_s", double(steps.size()) * 1000.0 / decode_total_ms},
                        {"decode_steps_ms", steps},
                        {"weight_bytes_per_token", eng->weight_bytes_per_token()},
                        {"memory_at_ready", mem_ready},
                        {"memory_at_end", memory_status()},
                        // Page faults of the whole process (every thread) during the prefill (submit -> first
                        // token): first touches of mapped weights and of fresh activation memory.
                        {"prefill_minor_faults", faults_first.minor - faults_ready.minor},
                        {"prefill_major_faults", faults_first.major - faults_ready.major},
                        {"prefill_cpu_ms", faults_first.cpu_ms - faults_ready.cpu_ms}};
  eng->shutdown();
  std::puts(out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "autoglm_peer_autoglm: %s\n", e.what());
    return 1;
  }
}
