// tests/server/multipart_test.cpp: the multipart/form-data parser (server/multipart.h) on bodies as clients write
// them (the openai npm client's undici FormData, curl -F) and on malformed ones: every problem is an api_error 400,
// never a crash or a silently wrong part.
#include "server/multipart.h"

#include <gtest/gtest.h>

#include <string>

#include "server/api_error.h"

using namespace autoglm::server;

namespace {

const std::string ct = "multipart/form-data; boundary=XyZ";

std::string field(const std::string& name, const std::string& value) {
  return "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n";
}
std::string file_part(const std::string& name, const std::string& filename, const std::string& data,
                      const std::string& type = "audio/wav") {
  return "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + filename +
         "\"\r\nContent-Type: " + type + "\r\n\r\n" + data + "\r\n";
}
const std::string closing = "--XyZ--\r\n";

void parse(const std::string& body, const multipart_limits& limits = {}) { multipart_form f(ct, body, limits); }

// The api_error's message (status checked to be 400), or "<no error>".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const api_error& e) {
    EXPECT_EQ(e.status(), 400) << e.message();
    EXPECT_EQ(e.type(), "invalid_request_error");
    return e.message();
  }
  return "<no error>";
}

std::string param_of_error(const std::string& body, const multipart_limits& limits = {}) {
  try {
    multipart_form f(ct, body, limits);
  } catch (const api_error& e) {
    return e.param();
  }
  return "<no error>";
}

}  // namespace

TEST(multipart, boundary_from_content_type) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data;boundary=\"a b;c\""), "a b;c");
  EXPECT_EQ(multipart_boundary("multipart/form-data; charset=utf-8; BOUNDARY=----formdata-undici-0.123"),
            "----formdata-undici-0.123");
  EXPECT_NE(error_of([] { multipart_boundary("application/json"); }).find("multipart/form-data"), std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary(""); }).find("no Content-Type"), std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data"); }).find("no boundary"), std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data; boundary="); }).find("no boundary"),
            std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data; boundary=\"abc"); }).find("unterminated"),
            std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'a')); }).find("70"),
            std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data; boundary=\"ab \""); }).find("space"),
            std::string::npos);
  EXPECT_NE(error_of([] { multipart_boundary("multipart/form-data; boundary=a\x01z"); }).find("control"),
            std::string::npos);
}

TEST(multipart, fields_and_files_as_clients_send_them) {
  const std::string wav = std::string("RIFF\0\0\0\0WAVE\r\n--Xy\r\n", 22);  // CRLF and a near-boundary inside data
  const std::string body = field("model", "whisper-1") + file_part("file", "speech.wav", wav) +
                           field("response_format", "verbose_json") + field("timestamp_granularities[]", "segment") +
                           field("timestamp_granularities[]", "word") + closing;
  multipart_form f(ct, body);
  ASSERT_EQ(f.parts().size(), 5u);
  EXPECT_EQ(f.text("model"), "whisper-1");
  EXPECT_EQ(f.text("response_format"), "verbose_json");
  EXPECT_EQ(f.text("language"), std::nullopt);
  const multipart_part* file = f.find("file");
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->filename, "speech.wav");
  EXPECT_EQ(file->content_type, "audio/wav");
  EXPECT_EQ(std::string(file->data), wav);
  EXPECT_EQ(f.texts("timestamp_granularities[]"), (std::vector<std::string>{"segment", "word"}));
  // A file part is not a text field.
  EXPECT_NE(error_of([&] { f.text("file"); }).find("not a file upload"), std::string::npos);
}

TEST(multipart, preamble_epilogue_padding_quoting_and_folding) {
  const std::string body =
      "This is a preamble.\r\n"
      "--XyZ  \t\r\n"  // transport padding after the boundary
      "content-disposition: form-data;\r\n name=\"a\\\"q\\\\\"; filename=\"x;y=z.mp3\"\r\n"  // folded, escaped
      "CONTENT-TYPE: Audio/MPEG; foo=bar\r\n"
      "Content-Transfer-Encoding: binary\r\n\r\n"
      "DATA\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=empty\r\n\r\n\r\n"  // empty value, unquoted name
      "--XyZ--epilogue that is ignored\r\n--XyZ\r\nnot a part";
  multipart_form f(ct, body);
  ASSERT_EQ(f.parts().size(), 2u);
  EXPECT_EQ(f.parts()[0].name, "a\"q\\");
  EXPECT_EQ(f.parts()[0].filename, "x;y=z.mp3");
  EXPECT_EQ(f.parts()[0].content_type, "audio/mpeg");
  EXPECT_EQ(f.parts()[0].data, "DATA");
  EXPECT_EQ(f.text("empty"), "");
}

TEST(multipart, part_without_headers_block_data) {
  // A part whose header block is empty has no name: refused, not read as data.
  EXPECT_NE(error_of([] { parse("--XyZ\r\n\r\nvalue\r\n--XyZ--"); }).find("Content-Disposition"), std::string::npos);
  // No parts at all is a valid, empty form.
  EXPECT_TRUE(multipart_form(ct, "--XyZ--\r\n").parts().empty());
}

TEST(multipart, malformed_bodies_are_400) {
  const std::string ok = field("model", "m");
  EXPECT_NE(error_of([] { parse(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse("{\"model\": \"m\"}"); }).find("does not contain its boundary"), std::string::npos);
  // Truncated at every point of a valid body: always a clean 400.
  const std::string body = ok + file_part("file", "a.wav", "0123456789") + closing;
  for (size_t n = 0; n + 1 < body.size(); ++n) {
    const std::string cut = body.substr(0, n);
    try {
      multipart_form f(ct, cut);
      // Only a cut that still holds the whole closing delimiter can parse.
      EXPECT_GE(n, body.size() - 2) << "parsed a body cut at " << n;
    } catch (const api_error& e) {
      EXPECT_EQ(e.status(), 400);
    }
  }
  EXPECT_NE(error_of([&] { parse(ok); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([&] { parse(ok + "--XyZ"); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([] {
              parse("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc");
            }).find("truncated inside part 'a'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n");
            }).find("truncated inside the headers"),
            std::string::npos);
  // Bare LF line endings are not delimiters.
  EXPECT_NE(error_of([] { parse("--XyZ\nContent-Disposition: form-data; name=a\n\nv\n--XyZ--"); }), "<no error>");
  EXPECT_NE(error_of([] { parse("--XyZjunk\r\n\r\n--XyZ--"); }).find("malformed multipart boundary"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse("--XyZ\r\nno colon here\r\n\r\nv\r\n--XyZ--"); }).find("malformed header"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse("--XyZ\r\n folded first\r\n\r\nv\r\n--XyZ--"); }).find("continuation"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse("--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--XyZ--"); }).find("form-data"),
      std::string::npos);
  EXPECT_NE(error_of([] { parse("--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--"); }).find("no name"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse(
                  "--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; "
                  "name=b\r\n\r\nv\r\n--XyZ--");
            }).find("more than one"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse("--XyZ\r\nContent-Disposition: form-data; name\r\n\r\nv\r\n--XyZ--"); }).find("without '='"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              parse("--XyZ\r\nContent-Disposition: form-data; name=\"a\"x\r\n\r\nv\r\n--XyZ--");
            }).find("after a quoted string"),
            std::string::npos);
}

TEST(multipart, duplicate_fields) {
  EXPECT_EQ(param_of_error(field("model", "a") + field("model", "b") + closing), "model");
  EXPECT_EQ(param_of_error(file_part("file", "a.wav", "x") + file_part("file", "b.wav", "y") + closing), "file");
  // Array fields may repeat.
  EXPECT_EQ(param_of_error(field("include[]", "a") + field("include[]", "b") + closing), "<no error>");
}

TEST(multipart, limits) {
  multipart_limits l;
  l.max_parts = 2;
  l.max_field_bytes = 8;
  l.max_file_bytes = 16;
  l.max_header_bytes = 100;
  EXPECT_EQ(param_of_error(field("a", "1") + field("b", "2") + closing, l), "<no error>");
  EXPECT_NE(error_of([&] {
              parse(field("a", "1") + field("b", "2") + field("c", "3") + closing, l);
            }).find("more than 2 parts"),
            std::string::npos);
  EXPECT_EQ(param_of_error(field("prompt", "123456789") + closing, l), "prompt");
  EXPECT_EQ(param_of_error(file_part("file", "a.wav", std::string(16, 'x')) + closing, l), "<no error>");
  EXPECT_EQ(param_of_error(file_part("file", "a.wav", std::string(17, 'x')) + closing, l), "file");
  const std::string long_header =
      "--XyZ\r\nContent-Disposition: form-data; name=\"" + std::string(200, 'n') + "\"\r\n\r\nv\r\n" + closing;
  EXPECT_NE(error_of([&] { parse(long_header, l); }).find("exceed 100 bytes"), std::string::npos);
}
