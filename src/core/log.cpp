#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace autoglm {

void log_init(const char* level_name) {
  static bool done = false;
  if (!done) {
    auto logger = spdlog::stderr_color_mt("autoglm");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
    done = true;
  }
  spdlog::set_level(spdlog::level::from_str(level_name ? level_name : "info"));
}

}  // namespace autoglm
