// runtime/tensor_parallel.h: one model split over N tensor-parallel ranks, seen by the engine as one `model`.
//
// Process model: one process, one thread per rank (per GPU). Rank 0 runs on the caller's thread with the
// caller's context (the engine's decode context, whose device is rank 0's); ranks 1..N-1 each have a thread and an
// exec_context of their own on their device. Each rank holds its part of the decoder (model/glm4v/text_decoder.h:
// column-parallel q/k/v and gate_up, row-parallel o_proj and down_proj with an all-reduce each, vocabulary-parallel
// lm_head gathered on every rank) and the whole vision tower; the ranks' communicators come from the backend
// (NCCL on CUDA, an in-process one on the CPU: ops::create_communicators).
//
// A forward runs the same batch on every rank at once; each rank writes its KV heads into its own cache: rank 0
// into the cache the caller passes (sized from kv_shape(): one rank's heads), ranks 1..N-1 into caches of the same
// geometry this class keeps on their devices (same block ids, so the runtime's block tables serve all ranks).
// Every rank ends with the full logits; rank 0's are returned. A rank that fails aborts the group (the others,
// waiting in a collective, fail too), the group is set up again and the first failure is rethrown.
//
// Images are encoded data-parallel: encode_image on a context of rank r's device runs rank r's tower (the engine
// keeps one vision worker per rank); image rows handed to forward are copied to each rank's device when needed.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "ops/context.h"

namespace autoglm {

class tensor_parallel_model final : public model {
 public:
  // Loads rank r of devs.size() on devs[r]: rank 0 on ctx0 (devs[0] must be ctx0's device; ctx0 gets rank 0's
  // communicator), the others on contexts of n_threads host threads. Throws autoglm::error when the model does
  // not split that many ways or the backend has no communicator.
  static std::unique_ptr<tensor_parallel_model> load(const std::string& model_dir, exec_context& ctx0,
                                                     const std::vector<device>& devs, int32_t n_threads,
                                                     const model_load_options& opt);
  ~tensor_parallel_model() override;

  int32_t size() const { return int32_t(ranks_.size()); }
  const std::vector<device>& devices() const { return devs_; }

  const model_info& info() const override { return ranks_[0].m->info(); }
  kv_layout kv_shape() const override { return ranks_[0].m->kv_shape(); }
  // ctx must be the ctx0 this model was loaded with.
  tensor forward_logits(exec_context& ctx, const forward_batch& batch,
                        const std::vector<paged_kv_layer>& kv) const override;
  tensor encode_image(exec_context& ctx, const vision_input& image) const override;
  prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                     const std::vector<vision_input>& images) const override {
    return ranks_[0].m->compute_positions(prompt, images);
  }
  // One rank's share (each GPU streams this much per token, all ranks at once).
  size_t weight_bytes_per_token() const override { return ranks_[0].m->weight_bytes_per_token(); }

 private:
  // A rank > 0's thread: runs one posted job at a time.
  class rank_thread {
   public:
    rank_thread();
    ~rank_thread();
    void post(std::function<void()> job);
    void wait();  // until the posted job has run

   private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::function<void()> job_;
    bool busy_ = false, stop_ = false;
    std::thread thread_;
  };
  struct rank {
    std::unique_ptr<exec_context> own_ctx;   // ranks > 0 (declared first: destroyed after the weights on it)
    exec_context* ctx = nullptr;             // rank 0: the caller's; others: own_ctx
    std::unique_ptr<model> m;
    std::unique_ptr<rank_thread> thread;     // ranks > 0
    mutable std::vector<paged_kv_layer> kv;  // ranks > 0: rank 0's cache geometry on this rank's device
  };

  tensor_parallel_model() = default;
  void connect() const;  // (re)creates the group's communicators and puts them on the ranks' contexts
  const std::vector<paged_kv_layer>& rank_cache(int32_t r, const std::vector<paged_kv_layer>& kv0) const;
  // The batch with its image rows on rank r's device (copies kept in `held`); the batch itself when they are.
  const forward_batch& rank_batch(int32_t r, const forward_batch& batch, forward_batch& held) const;

  std::vector<device> devs_;
  std::vector<rank> ranks_;
  mutable communicator_group comms_;
  mutable std::mutex forward_mu_;  // one forward at a time (the ranks' contexts are not shareable)
};

}  // namespace autoglm
