// kernels/cpu/inprocess_communicator.cpp: see inprocess_communicator.h.
//
// One shared state per group. A collective: every rank posts its buffer and arrives at a barrier; the last to
// arrive checks that all posted the same element count and sizes the shared sum buffer (nobody reads it then:
// everyone is inside the barrier); after it each rank sums its own slice of the elements over all ranks, in rank
// order (so every rank ends with bit-identical sums), a second barrier, then each rank copies the whole sum into
// its tensor. The next collective's first barrier is what keeps the sum buffer alive until every rank has copied.
#include "kernels/cpu/inprocess_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>

#include "core/error.h"
#include "core/kernel_registry.h"

namespace autoglm::cpu {

namespace {

struct group_state {
  explicit group_state(int32_t n) : n_ranks(n), posted(size_t(n)), counts(size_t(n)) {}
  const int32_t n_ranks;
  std::mutex mu;
  std::condition_variable cv;
  int32_t arrived = 0;
  uint64_t generation = 0;
  bool aborted = false;
  std::string failure;  // why the last barrier's check failed (every rank throws it)
  std::vector<float*> posted;
  std::vector<int64_t> counts;
  std::vector<float> sum;

  // Waits until all ranks arrive; the last one runs `on_all` (under the lock) before releasing the others.
  void barrier(const std::function<void()>& on_all) {
    std::unique_lock<std::mutex> lock(mu);
    if (aborted) throw error("tensor-parallel group aborted: another rank failed");
    const uint64_t gen = generation;
    if (++arrived == n_ranks) {
      arrived = 0;
      failure.clear();
      if (on_all) on_all();
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen || aborted; });
      if (aborted) throw error("tensor-parallel group aborted: another rank failed");
    }
    if (!failure.empty()) throw error(failure);
  }
};

class inprocess_communicator final : public communicator {
 public:
  inprocess_communicator(std::shared_ptr<group_state> g, int32_t rank) : g_(std::move(g)), rank_(rank) {}
  int32_t rank() const override { return rank_; }
  int32_t size() const override { return g_->n_ranks; }

  void all_reduce_sum(const kernel_context&, tensor& x) override {
    check_f32(x, "all_reduce_sum");
    const int64_t n = x.n_elements();
    post(x.ptr<float>(), n);
    g_->barrier([this] { agree("all_reduce_sum", [&](int64_t c) { g_->sum.resize(size_t(c)); }); });
    // Rank r sums elements [r * n / size, (r + 1) * n / size) over every rank, rank 0 first.
    const int32_t R = g_->n_ranks;
    const int64_t begin = n * rank_ / R, end = n * (rank_ + 1) / R;
    float* sum = g_->sum.data();
    std::memcpy(sum + begin, g_->posted[0] + begin, size_t(end - begin) * sizeof(float));
    for (int32_t r = 1; r < R; ++r) {
      const float* src = g_->posted[size_t(r)];
      for (int64_t i = begin; i < end; ++i) sum[i] += src[i];
    }
    g_->barrier(nullptr);
    std::memcpy(x.data(), sum, size_t(n) * sizeof(float));
  }

  void all_gather_rows(const kernel_context&, const tensor& x, tensor& out) override {
    check_f32(x, "all_gather_rows");
    check_f32(out, "all_gather_rows");
    const int64_t n = x.n_elements();
    AG_CHECK(out.n_elements() == n * g_->n_ranks, "all_gather_rows: out must hold size() x the input");
    post(x.ptr<float>(), n);
    g_->barrier([this] { agree("all_gather_rows", nullptr); });
    for (int32_t r = 0; r < g_->n_ranks; ++r)
      std::memcpy(out.ptr<float>() + int64_t(r) * n, g_->posted[size_t(r)], size_t(n) * sizeof(float));
    g_->barrier(nullptr);  // the inputs stay untouched until every rank has read them
  }

  void abort() override {
    std::lock_guard<std::mutex> lock(g_->mu);
    g_->aborted = true;
    g_->cv.notify_all();
  }

 private:
  static void check_f32(const tensor& t, const char* what) {
    AG_CHECK(t.type() == dtype::F32 && t.is_contiguous() && t.dev().kind == device_kind::CPU,
             std::string(what) + ": the in-process communicator takes contiguous F32 host tensors");
  }
  void post(float* p, int64_t n) {
    std::lock_guard<std::mutex> lock(g_->mu);
    g_->posted[size_t(rank_)] = p;
    g_->counts[size_t(rank_)] = n;
  }
  // Run by the last rank in the barrier: every rank must have posted the same count.
  void agree(const char* what, const std::function<void(int64_t)>& size_buffers) {
    const int64_t c = g_->counts[0];
    for (int64_t other : g_->counts)
      if (other != c) {
        g_->failure = std::string(what) + ": ranks passed different element counts (" + std::to_string(c) + " and " +
                      std::to_string(other) + ")";
        return;
      }
    if (size_buffers) size_buffers(c);
  }

  std::shared_ptr<group_state> g_;
  int32_t rank_;
};

}  // namespace

communicator_group create_inprocess_communicators(const std::vector<device>& devs) {
  AG_CHECK(!devs.empty(), "a communicator group needs at least one rank");
  for (const device& d : devs)
    AG_CHECK(d.kind == device_kind::CPU, "the in-process communicator serves CPU ranks, not " + d.str());
  auto g = std::make_shared<group_state>(int32_t(devs.size()));
  communicator_group out;
  for (size_t r = 0; r < devs.size(); ++r) out.push_back(std::make_unique<inprocess_communicator>(g, int32_t(r)));
  return out;
}

}  // namespace autoglm::cpu
