// server/sse.cpp: SSE and chunk framing.
#include "server/sse.h"

#include <cstdio>

namespace autoglm::server {

std::string sse_data(const nlohmann::json& payload) {
  // error_handler::replace: generated text may end in the middle of a UTF-8 sequence only if a bug upstream
  // lets it; never throw from the streaming path for that.
  return "data: " + payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

std::string sse_data_text(std::string_view text) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    out += "data: ";
    out.append(text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

std::string http_chunk(std::string_view bytes) {
  char size[24];
  std::snprintf(size, sizeof(size), "%zx\r\n", bytes.size());
  std::string out = size;
  out.append(bytes);
  out += "\r\n";
  return out;
}

}  // namespace autoglm::server
