#include "model/glm4v/rope_index.h"

#include <algorithm>

#include "core/error.h"
#include "model/model.h"

namespace autoglm::glm4v {

prompt_positions compute_rope_positions(const config& cfg, const std::vector<int32_t>& prompt,
                                        const std::vector<vision_input>& images) {
  const int32_t n = int32_t(prompt.size());
  const int32_t merge = cfg.vision.present ? cfg.vision.spatial_merge_size : 2;
  prompt_positions out;
  out.t.resize(size_t(n));
  out.h.resize(size_t(n));
  out.w.resize(size_t(n));
  int32_t next = 0;  // max position so far + 1
  size_t image_index = 0;
  bool in_video = false;
  int32_t i = 0;
  while (i < n) {
    const int32_t id = prompt[size_t(i)];
    if (id == cfg.video_start_token_id) in_video = true;
    if (id == cfg.video_end_token_id) in_video = false;
    if (id == cfg.image_token_id && !in_video && cfg.image_token_id >= 0) {
      if (image_index >= images.size())
        throw invalid_request("the prompt has more image placeholders than images (" + std::to_string(images.size()) + ")");
      const vision_input& img = images[image_index++];
      const int32_t gt = img.grid_t, gh = img.grid_h / merge, gw = img.grid_w / merge;
      const int32_t count = gt * gh * gw;
      if (i + count > n)
        throw invalid_request("image " + std::to_string(image_index - 1) + " needs " + std::to_string(count) +
                              " placeholder tokens but the prompt ends first");
      const int32_t st = next;
      for (int32_t k = 0; k < count; ++k) {
        if (prompt[size_t(i + k)] != cfg.image_token_id)
          throw invalid_request("image " + std::to_string(image_index - 1) + " needs " + std::to_string(count) +
                                " consecutive placeholder tokens");
        const int32_t ft = k / (gh * gw), row = (k / gw) % gh, col = k % gw;
        out.t[size_t(i + k)] = st + ft;
        out.h[size_t(i + k)] = st + row;
        out.w[size_t(i + k)] = st + col;
      }
      next = st + std::max({gt, gh, gw});
      i += count;
      continue;
    }
    out.t[size_t(i)] = out.h[size_t(i)] = out.w[size_t(i)] = next++;
    ++i;
  }
  if (image_index != images.size())
    throw invalid_request(std::to_string(images.size()) + " images were given but the prompt has placeholders for " +
                          std::to_string(image_index));
  out.rope_delta = next - n;
  return out;
}

}  // namespace autoglm::glm4v
