// core/log.h: leveled logging to stderr (spdlog underneath), so library code never prints to stdout.
#pragma once

#include <spdlog/spdlog.h>

namespace autoglm {
void log_init(const char* level_name);  // "debug", "info", "warn", "error", "off"
}  // namespace autoglm

#define AG_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define AG_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define AG_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define AG_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
