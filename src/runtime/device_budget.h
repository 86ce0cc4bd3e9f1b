// runtime/device_budget.h: the engine's device and what fits on it. On a GPU the weights, the KV cache and the
// contexts' activations share one device memory: a model that does not fit fails before a long upload with the
// bytes it needs, and the automatic KV budget takes what is left after the weights and a reserve for activations.
#pragma once

#include <cstddef>
#include <string>

#include "autoglm/engine.h"
#include "core/tensor.h"
#include "ops/context.h"

namespace autoglm {

// engine_options.device parsed ("cpu", "cuda", "cuda:N"); throws invalid_request (param "device") otherwise.
device engine_device(const engine_options& options);

// Bytes of the weight files of a model directory (*.safetensors, *.gguf; 0 when none): what holding its weights
// in their stored types takes.
size_t model_weight_file_bytes(const std::string& model_dir);

// Device memory kept free for activations, workspaces and the cuBLAS handles of the contexts (2 GiB, or 4% of
// larger devices).
size_t activation_reserve_bytes(size_t total_bytes);

// Before loading onto a GPU: throws autoglm::error naming the bytes the weights need (their files' size: the GPU
// holds weights as stored), the reserve and what the device has free, when they do not fit. Nothing on the CPU.
void check_model_fits(const engine_options& options, exec_context& ctx);

// The KV cache's byte budget on the context's device: `bytes` itself on the CPU; on a GPU, an explicit request
// (explicit_request) that exceeds the free memory minus the reserve throws naming both, an automatic one is
// capped to it (and throws when nothing is left).
size_t fit_kv_budget(exec_context& ctx, size_t bytes, bool explicit_request);

}  // namespace autoglm
