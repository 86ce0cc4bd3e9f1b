// tests/kernels/kernels_test.cpp: the harness as gtest cases, one per (op, dtype, backend) with every shape of
// that key inside, each run on a 1-thread and a 3-thread context (both checked against the reference, and
// required to produce the same bytes), and the CPU backend's coverage of the kernels issue 9 requires. `test_kernels --perf` runs the
// throughput mode instead (perf.cpp).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "harness.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {
namespace {

// tests/arm runs this binary under qemu: GPU-sized cases would take minutes each there (test_case::gpu_sized).
bool cpu_emulated() {
  const char* e = std::getenv("AUTOGLM_HARNESS_EMULATED");
  return e && std::string(e) == "1";
}

struct group {
  op_id op;
  dtype key;
  backend be;
};

std::vector<group> groups() {
  std::vector<group> out;
  for (const backend& be : backends()) {
    std::set<std::pair<int, int>> seen;
    for (const test_case& c : all_cases())
      if (!c.perf && runs_on(be, c.op, c.key) && seen.insert({int(c.op), int(c.key)}).second)
        out.push_back({c.op, c.key, be});
  }
  return out;
}

class kernel_cases : public testing::TestWithParam<group> {};

TEST_P(kernel_cases, match_reference) {
  const group& g = GetParam();
  if (!kernel_registry::instance().has(g.op, g.be.dev.kind, g.key))
    GTEST_SKIP() << "no " << op_name(g.op) << " kernel for " << dtype_name(g.key) << " on " << g.be.name;
  select(g.be);
  int n_run = 0;
  exec_context serial(g.be.dev, 1), threaded(g.be.dev, 3);
  for (const test_case& c : all_cases()) {
    if (c.perf || c.op != g.op || c.key != g.key) continue;
    if (c.gpu_sized && g.be.dev.kind == device_kind::CPU && cpu_emulated()) continue;
    const std::string what = std::string(op_name(c.op)) + " " + dtype_name(c.key) + " [" + c.name + "] on " + g.be.name;
    instance one = c.make(serial), three = c.make(threaded);
    one.run();
    three.run();
    EXPECT_EQ(one.check(), "") << what << ", 1 thread";
    EXPECT_EQ(three.check(), "") << what << ", 3 threads";
    ASSERT_TRUE(one.output && three.output) << what << ": the case does not expose its output";
    EXPECT_TRUE(one.output() == three.output()) << what << ": 1 and 3 threads give different bytes";
    ++n_run;
  }
  select({});
  EXPECT_GT(n_run, 0);
}

std::string group_name(const testing::TestParamInfo<group>& info) {
  std::string s = std::string(op_name(info.param.op)) + "_" + dtype_name(info.param.key) + "_" + info.param.be.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(registry, kernel_cases, testing::ValuesIn(groups()), group_name);

TEST(cpu_backend, registers_every_required_kernel) {
  ops::init_backends();
  for (const auto& [op, t] : required_cpu_kernels())
    EXPECT_TRUE(kernel_registry::instance().has(op, device_kind::CPU, t)) << op_name(op) << " " << dtype_name(t);
}

TEST(cpu_backend, every_required_kernel_has_harness_cases) {
  for (const auto& [op, t] : required_cpu_kernels()) {
    bool found = false;
    for (const test_case& c : all_cases()) found = found || (!c.perf && c.op == op && c.key == t);
    EXPECT_TRUE(found) << "no harness case for " << op_name(op) << " " << dtype_name(t);
  }
}

TEST(harness, reference_rounding_is_to_nearest_even) {
  // BF16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and goes to the even 1.
  EXPECT_EQ(ref::round_to(dtype::BF16, 1.0 + 0x1p-8), 1.0);
  EXPECT_EQ(ref::round_to(dtype::BF16, 1.0 + 3 * 0x1p-8), 1.0 + 0x1p-6);
  EXPECT_EQ(ref::round_to(dtype::F16, 65519.0), 65504.0);
  EXPECT_EQ(ref::round_to(dtype::F16, 65520.0), INFINITY);
  EXPECT_EQ(ref::round_to(dtype::F16, 0x1p-25), 0.0);                 // half the smallest subnormal: ties to 0
  EXPECT_EQ(ref::round_to(dtype::F16, 0x1.8p-24), 0x1p-23);           // 1.5 subnormal steps: to the even 2
  EXPECT_EQ(ref::round_to(dtype::I32, -2.75), -2.0);
  EXPECT_EQ(ref::round_to(dtype::I32, 3e9), 2147483647.0);
}

}  // namespace
}  // namespace autoglm::harness

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--perf") == 0) return autoglm::harness::run_perf(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
