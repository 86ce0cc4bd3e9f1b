// server/sse.h: Server-Sent Events framing ("data: <json>\n\n", "data: [DONE]\n\n") and HTTP/1.1 chunk framing
// of the bytes that carry them.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace autoglm::server {

// One SSE event whose data is compact JSON (never contains a newline, so one data: line suffices).
std::string sse_data(const nlohmann::json& payload);
// Any text payload; multi-line text becomes several data: lines as the SSE spec requires.
std::string sse_data_text(std::string_view text);
inline std::string sse_done() { return "data: [DONE]\n\n"; }

// HTTP/1.1 chunked transfer encoding: "<hex size>\r\n<bytes>\r\n"; the empty last chunk is "0\r\n\r\n".
std::string http_chunk(std::string_view bytes);
inline std::string http_last_chunk() { return "0\r\n\r\n"; }

}  // namespace autoglm::server
