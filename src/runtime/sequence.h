// runtime/sequence.h: one request as the scheduler and block manager see it: its tokens, how many of them have
// KV in the cache, its block table and its stopping rules. No tensors, no callbacks (the engine keeps those).
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <utility>
#include <vector>

#include "autoglm/types.h"

namespace autoglm {

enum class sequence_status { WAITING, RUNNING, FINISHED };

struct sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;       // prompt + generated so far
  std::vector<uint64_t> extra_keys;  // [n_prompt]: per-token prefix-cache key beside the id (image hash; 0 = none)
  int32_t n_prompt = 0;
  int32_t n_computed = 0;            // leading tokens whose K/V are in the cache (the model's n_past)
  int32_t n_cached_prompt = 0;       // prompt tokens served from the prefix cache at the first admission
  bool admitted_once = false;
  std::vector<int32_t> block_table;  // KV block ids covering positions [0, block_table.size() * block_size)
  std::vector<uint64_t> block_hashes;  // chained hash of each full, computed block (prefix of block_table)
  // Prompt ranges [begin, end) of image placeholders whose embeddings are not there (not encoded yet, or not
  // needed because the prefix cache covered them when the request arrived).
  std::vector<std::pair<int32_t, int32_t>> missing_inputs;
  bool reuse_prefix = true;          // look cached prefix blocks up at admission (false: every position computed)
  bool share_kv = true;              // register computed blocks in the prefix cache (false: the KV is not real)
  int32_t n_skip = 0;                // benchmark: leading tokens counted as computed at admission, never run

  // Stopping rules (from sampling_params and the model's eos ids).
  int32_t max_tokens = 256;
  std::vector<int32_t> stop_ids;     // eos ids (unless ignore_eos) + stop_token_ids
  sequence_status status = sequence_status::WAITING;
  finish_reason finish = finish_reason::NONE;

  int32_t n_tokens() const { return int32_t(tokens.size()); }
  int32_t n_generated() const { return n_tokens() - n_prompt; }
  uint64_t extra_key(int32_t i) const { return i < int32_t(extra_keys.size()) ? extra_keys[size_t(i)] : 0; }
  // A prefill may compute tokens up to (not including) this index: the first missing input not already cached.
  int32_t ready_until() const {
    int32_t lim = INT32_MAX;
    for (const auto& [b, e] : missing_inputs)
      if (e > n_computed) lim = std::min(lim, b);
    return lim;
  }
};

}  // namespace autoglm
