// model/glm4v/rope_index.h: 3-D M-RoPE positions of a prompt (HF get_rope_index, spec section 3).
#pragma once

#include <vector>

#include "autoglm/types.h"
#include "model/glm4v/config.h"
#include "model/model.h"

namespace autoglm::glm4v {

// prompt: token ids with each image's placeholders expanded (grid_t * (grid_h/m) * (grid_w/m) ids per image).
// Text tokens get t = h = w = running position; image tokens get (st + frame, st + row, st + col) in row-major order.
// Throws autoglm::error when the placeholders do not match the images.
prompt_positions compute_rope_positions(const config& cfg, const std::vector<int32_t>& prompt,
                                        const std::vector<vision_input>& images);

}  // namespace autoglm::glm4v
