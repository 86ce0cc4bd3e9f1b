// server/multipart.h: multipart/form-data request bodies (RFC 7578 over RFC 2046's multipart syntax), as
// /v1/audio/transcriptions takes them: the boundary from the Content-Type header, each part's
// Content-Disposition (name, filename; quoted strings with backslash escapes) and Content-Type, and its bytes.
// Written by hand because no packaged library parses multipart bodies that are already in memory; the parser
// never copies a part's bytes (parts are views into the body) and checks a limit before every step, so a
// hostile body costs at most the bytes the HTTP layer already read.
// Every problem throws api_error 400 in OpenAI's shape (param names the field when there is one).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace autoglm::server {

struct multipart_limits {
  size_t max_parts = 32;
  size_t max_header_bytes = 8192;     // one part's header block
  size_t max_field_bytes = 1u << 20;  // a part without a filename (a text field: a prompt is the longest)
  size_t max_file_bytes = 25u << 20;  // a part with a filename (OpenAI's upload limit is 25 MB)
};

struct multipart_part {
  std::string name;                     // Content-Disposition name="..."
  std::optional<std::string> filename;  // Content-Disposition filename="..." (a file upload when present)
  std::string content_type;             // the part's Content-Type, lower-cased; empty when absent
  std::string_view data;                // the part's bytes: a view into the parsed body
};

// The boundary parameter of a "multipart/form-data; boundary=..." Content-Type (quoted or not). Throws api_error
// 400 when the media type is another one or the boundary is missing or invalid (RFC 2046: 1-70 characters).
std::string multipart_boundary(std::string_view content_type);

// Splits `body` at `boundary` into its parts, in order. Throws api_error 400 on a body that does not start with
// the boundary, a truncated body (no closing "--boundary--"), a part without Content-Disposition: form-data and
// a name, malformed headers, or any limit exceeded.
std::vector<multipart_part> parse_multipart(std::string_view body, std::string_view boundary,
                                            const multipart_limits& limits = {});

// The parts of a form, looked up by name. A name that repeats is an error unless it ends in "[]" (how clients
// send arrays, e.g. timestamp_granularities[]).
class multipart_form {
 public:
  multipart_form(std::string_view content_type, std::string_view body, const multipart_limits& limits = {});
  const multipart_part* find(std::string_view name) const;
  // A text field's value; nullopt when absent. Throws api_error 400 when the part is a file upload.
  std::optional<std::string> text(std::string_view name) const;
  // Every value of an array field ("name[]", or plain "name" as some clients send it).
  std::vector<std::string> texts(std::string_view array_name) const;
  // Names of every part, in order (for rejecting unknown fields if a caller wants to).
  const std::vector<multipart_part>& parts() const { return parts_; }

 private:
  std::vector<multipart_part> parts_;
};

}  // namespace autoglm::server
