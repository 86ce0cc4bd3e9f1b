// runtime/kv_cache: per-layer K/V tensors of the chosen element type and geometry, sized per token as the
// engine's budget assumes; a type the backend has no kernels for is refused at creation, naming it.
#include <gtest/gtest.h>

#include "core/error.h"
#include "runtime/kv_cache.h"

using namespace autoglm;

TEST(kv_cache, layers_have_the_chosen_type_and_geometry) {
  exec_context ctx(device{}, 1);
  const kv_layout layout{3, 2, 32};
  for (const dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0}) {
    kv_cache kv(ctx, layout, 5, 16, t);
    ASSERT_EQ(kv.layers().size(), 3u);
    for (const paged_kv_layer& l : kv.layers()) {
      EXPECT_EQ(l.k.shape(), (std::vector<int64_t>{5, 16, 2, 32}));
      EXPECT_EQ(l.v.shape(), l.k.shape());
      EXPECT_EQ(l.k.type(), t);
      EXPECT_EQ(l.block_size(), 16);
      EXPECT_NE(l.k.data(), l.v.data());
    }
    EXPECT_EQ(kv.n_bytes(), kv_cache::bytes_per_token(layout, t) * 5 * 16);
  }
  EXPECT_EQ(kv_cache::bytes_per_token(layout, dtype::F32), 2u * 3 * 2 * 32 * 4);
  EXPECT_EQ(kv_cache::bytes_per_token(layout, dtype::BF16), 2u * 3 * 2 * 32 * 2);
  EXPECT_EQ(kv_cache::bytes_per_token(layout, dtype::Q8_0), 2u * 3 * 2 * 34);  // one 34-byte block per head
}

TEST(kv_cache, a_type_without_kernels_is_refused) {
  exec_context ctx(device{}, 1);
  try {
    kv_cache kv(ctx, {1, 1, 8}, 2, 4, dtype::I32);
    ADD_FAILURE() << "an I32 KV cache was accepted";
  } catch (const error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("I32"), std::string::npos) << msg;
  }
}
