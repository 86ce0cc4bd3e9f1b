// server/multipart.cpp: the multipart/form-data parser (see multipart.h).
//
// Body layout (RFC 2046 section 5.1.1): [preamble CRLF] "--" boundary [padding] CRLF headers CRLF CRLF data
// (CRLF "--" boundary [padding] CRLF headers CRLF CRLF data)* CRLF "--" boundary "--" [epilogue]. A part's data
// ends at the next CRLF "--" boundary, so a boundary never needs escaping inside data (clients pick one that does
// not occur). Line breaks must be CRLF, as every client sends them; a bare LF is not a delimiter.
#include "server/multipart.h"

#include <algorithm>
#include <cctype>

#include "server/api_error.h"

namespace autoglm::server {

namespace {

constexpr std::string_view crlf = "\r\n";

api_error form_error(std::string message, std::string param = {}) {
  return api_error(400, std::move(message), "invalid_request_error", std::move(param), "invalid_multipart");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A header value of the form `type; key=value; key="quoted \"value\""` (Content-Type, Content-Disposition).
struct header_value {
  std::string type;                                         // lower-cased
  std::vector<std::pair<std::string, std::string>> params;  // keys lower-cased, values unquoted
  const std::string* get(std::string_view key) const {
    for (const auto& [k, v] : params)
      if (k == key) return &v;
    return nullptr;
  }
};

header_value parse_header_value(std::string_view s, const std::string& what) {
  header_value out;
  size_t i = s.find(';');
  out.type = lower(trim(s.substr(0, i)));
  while (i != std::string_view::npos && i < s.size()) {
    ++i;  // past ';'
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i == s.size()) break;  // a trailing ';'
    const size_t eq = s.find_first_of("=;", i);
    if (eq == std::string_view::npos || s[eq] == ';')
      throw form_error(what + ": parameter without '=' in '" + std::string(s) + "'");
    std::string key = lower(trim(s.substr(i, eq - i)));
    if (key.empty()) throw form_error(what + ": parameter without a name in '" + std::string(s) + "'");
    i = eq + 1;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      // quoted-string: ends at the next unescaped quote; a backslash takes the next character literally.
      bool closed = false;
      for (++i; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          value += s[++i];
        } else if (s[i] == '"') {
          closed = true;
          ++i;
          break;
        } else {
          value += s[i];
        }
      }
      if (!closed) throw form_error(what + ": unterminated quoted string in '" + std::string(s) + "'");
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
      if (i < s.size() && s[i] != ';')
        throw form_error(what + ": unexpected text after a quoted string in '" + std::string(s) + "'");
    } else {
      const size_t end = s.find(';', i);
      value = std::string(trim(s.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
      i = end;
    }
    out.params.emplace_back(std::move(key), std::move(value));
    if (i != std::string_view::npos && i < s.size() && s[i] != ';') i = s.find(';', i);
  }
  return out;
}

// The header block of one part (between the boundary line and the empty line) -> name, filename, content type.
multipart_part parse_part_headers(std::string_view block, size_t index) {
  const std::string where = "multipart part " + std::to_string(index + 1);
  std::vector<std::pair<std::string, std::string>> headers;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t end = block.find(crlf, pos);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(pos, end - pos);
    pos = end + 2;
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      // Obsolete line folding (RFC 5322): a continuation of the previous header's value.
      if (headers.empty()) throw form_error(where + ": header block starts with a continuation line");
      headers.back().second += ' ';
      headers.back().second += trim(line);
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      throw form_error(where + ": malformed header line '" + std::string(line.substr(0, 100)) + "'");
    headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }

  multipart_part part;
  bool has_disposition = false;
  for (const auto& [key, value] : headers) {
    if (key == "content-disposition") {
      if (has_disposition) throw form_error(where + ": more than one Content-Disposition header");
      has_disposition = true;
      header_value d = parse_header_value(value, where + " Content-Disposition");
      if (d.type != "form-data")
        throw form_error(where + ": Content-Disposition must be form-data, got '" + d.type + "'");
      if (const std::string* n = d.get("name")) part.name = *n;
      if (const std::string* f = d.get("filename"))
        part.filename = *f;
      else if (const std::string* f5987 = d.get("filename*"))
        part.filename = *f5987;  // charset'lang'%XX form
    } else if (key == "content-type") {
      part.content_type = parse_header_value(value, where + " Content-Type").type;
    }
  }
  if (!has_disposition)
    throw form_error(where + " has no Content-Disposition header (each part needs 'form-data; name=\"...\"')");
  if (part.name.empty()) throw form_error(where + ": Content-Disposition has no name");
  return part;
}

}  // namespace

std::string multipart_boundary(std::string_view content_type) {
  if (content_type.empty())
    throw form_error("this endpoint takes a multipart/form-data body, and the request has no Content-Type header");
  header_value v = parse_header_value(content_type, "Content-Type");
  if (v.type != "multipart/form-data")
    throw form_error("this endpoint takes a multipart/form-data body, not '" + v.type +
                     "' (send the audio as the 'file' part of a form)");
  const std::string* b = v.get("boundary");
  if (!b || b->empty()) throw form_error("Content-Type multipart/form-data has no boundary parameter");
  if (b->size() > 70) throw form_error("the multipart boundary is longer than 70 characters (RFC 2046)");
  if (b->back() == ' ') throw form_error("the multipart boundary ends with a space (RFC 2046)");
  for (char c : *b)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      throw form_error("the multipart boundary has a control or non-ASCII character");
  return *b;
}

std::vector<multipart_part> parse_multipart(std::string_view body, std::string_view boundary,
                                            const multipart_limits& limits) {
  const std::string delim = "--" + std::string(boundary);
  const std::string inner = "\r\n" + delim;  // what ends a part's data
  size_t pos;
  if (body.substr(0, delim.size()) == delim) {
    pos = delim.size();
  } else {
    // A preamble (ignored) ends with the CRLF before the first delimiter.
    const size_t first = body.find(inner);
    if (first == std::string_view::npos)
      throw form_error(body.empty() ? "the multipart body is empty"
                                    : "the multipart body does not contain its boundary '" + std::string(boundary) +
                                          "' (is the Content-Type boundary the one the body uses?)");
    pos = first + inner.size();
  }

  std::vector<multipart_part> parts;
  while (true) {
    // Just past a delimiter: "--" closes the body, else optional padding and CRLF open the next part.
    if (pos + 2 <= body.size() && body.substr(pos, 2) == "--") return parts;  // the epilogue is ignored
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.size() - pos < 2)
      throw form_error("the multipart body is truncated: it ends before the closing boundary '" + delim + "--'");
    if (body.substr(pos, 2) != crlf)
      throw form_error("malformed multipart boundary line (a boundary must be followed by CRLF or '--')");
    pos += 2;
    if (parts.size() >= limits.max_parts)
      throw form_error("the multipart body has more than " + std::to_string(limits.max_parts) + " parts");

    // Headers: up to the empty line (an empty block is the data's leading CRLF).
    size_t data_begin;
    std::string_view header_block;
    if (body.substr(pos, 2) == crlf) {
      data_begin = pos + 2;
    } else {
      const size_t window = std::min(body.size() - pos, limits.max_header_bytes + 4);
      const size_t end = body.substr(pos, window).find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (window < limits.max_header_bytes + 4)
          throw form_error("the multipart body is truncated inside the headers of part " +
                           std::to_string(parts.size() + 1));
        throw form_error("the headers of multipart part " + std::to_string(parts.size() + 1) + " exceed " +
                         std::to_string(limits.max_header_bytes) + " bytes");
      }
      header_block = body.substr(pos, end);
      data_begin = pos + end + 4;
    }
    multipart_part part = parse_part_headers(header_block, parts.size());

    const size_t limit = part.filename ? limits.max_file_bytes : limits.max_field_bytes;
    const size_t data_end = body.find(inner, data_begin);
    if (data_end == std::string_view::npos)
      throw form_error("the multipart body is truncated inside part '" + part.name + "' (no boundary after it)",
                       part.name);
    if (data_end - data_begin > limit)
      throw form_error("multipart part '" + part.name + "' is " + std::to_string(data_end - data_begin) +
                           " bytes; the limit is " + std::to_string(limit) + " bytes" +
                           (part.filename ? " for a file" : " for a form field"),
                       part.name);
    part.data = body.substr(data_begin, data_end - data_begin);
    parts.push_back(std::move(part));
    pos = data_end + inner.size();
  }
}

multipart_form::multipart_form(std::string_view content_type, std::string_view body, const multipart_limits& limits)
    : parts_(parse_multipart(body, multipart_boundary(content_type), limits)) {
  for (size_t i = 0; i < parts_.size(); ++i) {
    const std::string& n = parts_[i].name;
    if (n.size() >= 2 && n.compare(n.size() - 2, 2, "[]") == 0) continue;
    for (size_t j = 0; j < i; ++j)
      if (parts_[j].name == n) throw form_error("form field '" + n + "' is given more than once", n);
  }
}

const multipart_part* multipart_form::find(std::string_view name) const {
  for (const multipart_part& p : parts_)
    if (p.name == name) return &p;
  return nullptr;
}

std::optional<std::string> multipart_form::text(std::string_view name) const {
  const multipart_part* p = find(name);
  if (!p) return std::nullopt;
  if (p->filename)
    throw form_error("form field '" + std::string(name) + "' must be a text field, not a file upload",
                     std::string(name));
  return std::string(p->data);
}

std::vector<std::string> multipart_form::texts(std::string_view array_name) const {
  std::string_view plain = array_name;
  if (plain.size() >= 2 && plain.substr(plain.size() - 2) == "[]") plain.remove_suffix(2);
  std::vector<std::string> out;
  for (const multipart_part& p : parts_) {
    if (p.name != array_name && p.name != plain) continue;
    if (p.filename) throw form_error("form field '" + p.name + "' must be a text field, not a file upload", p.name);
    out.emplace_back(p.data);
  }
  return out;
}

}  // namespace autoglm::server
