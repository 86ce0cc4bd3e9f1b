// kernels/cuda/nccl_communicator.cpp: the CUDA backend's communicator (core/communicator.h) over NCCL.
//
// The library is opened at run time (dlopen of libnccl.so.2, or AUTOGLM_NCCL_LIBRARY): a build with the CUDA
// toolkit needs only nccl.h, and a machine without NCCL still runs everything but tensor parallelism, which then
// fails with a message naming the library. Process model: one process, one thread per GPU (runtime/
// tensor_parallel.h); the group's ranks are set up with ncclCommInitRank from one ncclGetUniqueId, all inside one
// ncclGroupStart/End (initializing several ranks from one thread needs the group call). NVLink multicast (NVLS)
// is turned off before the first communicator unless the environment already says otherwise: the lent machines
// require NCCL_NVLS_ENABLE=0, and tensor parallelism of one stream gains nothing from it.
//
// Collectives are enqueued on the rank's context stream, so they order with the kernels around them and are
// captured into CUDA graphs like any kernel.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "kernels/cuda/cuda_host.h"
#include "kernels/cuda/register.h"

namespace autoglm::cuda {

namespace {

// The NCCL entry points the communicator uses, resolved once.
struct nccl_api {
  ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*group_start)() = nullptr;
  ncclResult_t (*group_end)() = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                             cudaStream_t) = nullptr;
  ncclResult_t (*all_gather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*comm_destroy)(ncclComm_t) = nullptr;
  ncclResult_t (*comm_abort)(ncclComm_t) = nullptr;
  const char* (*error_string)(ncclResult_t) = nullptr;
  ncclResult_t (*get_version)(int*) = nullptr;
  std::string problem;  // why the library could not be used (empty: usable)
};

const nccl_api& api() {
  static nccl_api a;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("AUTOGLM_NCCL_LIBRARY");
    const std::string names[] = {env ? env : "", "libnccl.so.2", "libnccl.so"};
    void* h = nullptr;
    std::string tried;
    for (const std::string& n : names) {
      if (n.empty()) continue;
      h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) break;
      tried += (tried.empty() ? "" : ", ") + n;
    }
    if (!h) {
      a.problem = "NCCL could not be loaded (tried " + tried +
                  "): install NCCL (Debian/Ubuntu: libnccl2) or point AUTOGLM_NCCL_LIBRARY at libnccl.so.2";
      return;
    }
    auto sym = [&](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (!fn && a.problem.empty()) a.problem = std::string("the NCCL library has no ") + name;
    };
    sym("ncclGetUniqueId", a.get_unique_id);
    sym("ncclCommInitRank", a.comm_init_rank);
    sym("ncclGroupStart", a.group_start);
    sym("ncclGroupEnd", a.group_end);
    sym("ncclAllReduce", a.all_reduce);
    sym("ncclAllGather", a.all_gather);
    sym("ncclCommDestroy", a.comm_destroy);
    sym("ncclCommAbort", a.comm_abort);
    sym("ncclGetErrorString", a.error_string);
    sym("ncclGetVersion", a.get_version);
  });
  if (!a.problem.empty()) throw error("tensor parallelism on CUDA: " + a.problem);
  return a;
}

void check_nccl(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess) throw error("NCCL " + what + ": " + api().error_string(r));
}

class nccl_communicator final : public communicator {
 public:
  nccl_communicator(ncclComm_t comm, int32_t rank, int32_t size, device dev)
      : comm_(comm), rank_(rank), size_(size), dev_(dev) {}
  ~nccl_communicator() override {
    if (comm_ && !aborted_) api().comm_destroy(comm_);
  }
  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }

  void all_reduce_sum(const kernel_context& kc, tensor& x) override {
    const float* p = checked(kc, x, "all_reduce_sum");
    check_nccl(api().all_reduce(p, x.data(), size_t(x.n_elements()), ncclFloat32, ncclSum, comm_,
                                stream_of(state_of(kc))),
               "all_reduce of " + x.shape_str() + " on rank " + std::to_string(rank_));
  }

  void all_gather_rows(const kernel_context& kc, const tensor& x, tensor& out) override {
    const float* p = checked(kc, x, "all_gather_rows");
    checked(kc, out, "all_gather_rows");
    AG_CHECK(out.n_elements() == x.n_elements() * size_, "all_gather_rows: out must hold size() x the input");
    check_nccl(api().all_gather(p, out.data(), size_t(x.n_elements()), ncclFloat32, comm_, stream_of(state_of(kc))),
               "all_gather of " + x.shape_str() + " on rank " + std::to_string(rank_));
  }

  void abort() override {
    if (comm_ && !aborted_) api().comm_abort(comm_);
    aborted_ = true;
  }

 private:
  const float* checked(const kernel_context& kc, const tensor& t, const char* what) const {
    AG_CHECK(t.type() == dtype::F32 && t.is_contiguous() && t.dev() == dev_ && kc.dev == dev_,
             std::string(what) + ": NCCL takes contiguous F32 tensors on the rank's device " + dev_.str());
    AG_CHECK(!aborted_, std::string(what) + ": the tensor-parallel group was aborted after a rank failed");
    return t.ptr<float>();
  }

  ncclComm_t comm_ = nullptr;
  int32_t rank_, size_;
  device dev_;
  bool aborted_ = false;
};

}  // namespace

communicator_group create_nccl_communicators(const std::vector<device>& devs) {
  AG_CHECK(!devs.empty(), "a communicator group needs at least one rank");
  const nccl_api& a = api();
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  int version = 0;
  a.get_version(&version);
  ncclUniqueId id;
  check_nccl(a.get_unique_id(&id), "ncclGetUniqueId");
  const int n = int(devs.size());
  std::vector<ncclComm_t> comms(size_t(n), nullptr);
  check_nccl(a.group_start(), "ncclGroupStart");
  for (int r = 0; r < n; ++r) {
    AG_CHECK(devs[size_t(r)].kind == device_kind::CUDA, "NCCL ranks must be CUDA devices, not " + devs[size_t(r)].str());
    check(cudaSetDevice(devs[size_t(r)].index), "selecting a tensor-parallel rank's device");
    const ncclResult_t res = a.comm_init_rank(&comms[size_t(r)], n, id, r);
    if (res != ncclSuccess) {
      a.group_end();
      check_nccl(res, "ncclCommInitRank of rank " + std::to_string(r) + " on " + devs[size_t(r)].str());
    }
  }
  check_nccl(a.group_end(), "setting up " + std::to_string(n) + " ranks (ncclGroupEnd)");
  AG_LOG_INFO("NCCL {}: {} rank(s) on {}{}", version, n, devs[0].str(), n > 1 ? " ..." : "");
  communicator_group out;
  for (int r = 0; r < n; ++r)
    out.push_back(std::make_unique<nccl_communicator>(comms[size_t(r)], r, n, devs[size_t(r)]));
  return out;
}

}  // namespace autoglm::cuda
