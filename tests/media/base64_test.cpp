// tests/media/base64_test.cpp: strict base64 and data-URI parsing.
#include <gtest/gtest.h>

#include "core/error.h"
#include "encode_util.h"
#include "media/image.h"

namespace autoglm {
namespace {

std::string to_str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Straightforward encoder for round trips.
std::string encode(const std::vector<uint8_t>& in, bool url, bool pad) {
  const char* a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                      : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = in[i] << 16;
    out += a[v >> 18], out += a[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = in[i] << 16 | in[i + 1] << 8;
    out += a[v >> 18], out += a[(v >> 12) & 63], out += a[(v >> 6) & 63];
    if (pad) out += "=";
  }
  return out;
}

TEST(base64, rfc4648_vectors) {
  EXPECT_EQ(to_str(base64_decode("")), "");
  EXPECT_EQ(to_str(base64_decode("Zg==")), "f");
  EXPECT_EQ(to_str(base64_decode("Zm8=")), "fo");
  EXPECT_EQ(to_str(base64_decode("Zm9v")), "foo");
  EXPECT_EQ(to_str(base64_decode("Zm9vYg==")), "foob");
  EXPECT_EQ(to_str(base64_decode("Zm9vYmE=")), "fooba");
  EXPECT_EQ(to_str(base64_decode("Zm9vYmFy")), "foobar");
}

TEST(base64, padding_optional_whitespace_tolerated) {
  EXPECT_EQ(to_str(base64_decode("Zg")), "f");
  EXPECT_EQ(to_str(base64_decode("Zm8")), "fo");
  EXPECT_EQ(to_str(base64_decode(" Zm9v\r\nYmE=\n")), "fooba");
  EXPECT_EQ(to_str(base64_decode("Z m 9 v\tY g = =")), "foob");
}

TEST(base64, url_safe_and_round_trip) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto data = test::random_bytes(seed * 7 + 1, seed);
    for (bool url : {false, true})
      for (bool pad : {false, true}) EXPECT_EQ(base64_decode(encode(data, url, pad)), data);
  }
  EXPECT_EQ(base64_decode("-_8="), (std::vector<uint8_t>{0xfb, 0xff}));
  EXPECT_EQ(base64_decode("+/8="), (std::vector<uint8_t>{0xfb, 0xff}));
}

TEST(base64, invalid_input_throws) {
  EXPECT_THROW(base64_decode("Zm9v!"), error);        // bad character
  EXPECT_THROW(base64_decode("Zm9v\x80"), error);     // non-ASCII
  EXPECT_THROW(base64_decode("Z"), error);            // impossible length
  EXPECT_THROW(base64_decode("Zm9vY"), error);        // impossible length
  EXPECT_THROW(base64_decode("Zg=a"), error);         // data after padding
  EXPECT_THROW(base64_decode("Zg="), error);          // wrong padding count
  EXPECT_THROW(base64_decode("Zm9v="), error);        // padding where none belongs
  EXPECT_THROW(base64_decode("Zg==="), error);        // too much padding
  EXPECT_THROW(base64_decode("=Zg"), error);
  EXPECT_THROW(base64_decode(std::string("Zm\0v", 4)), error);
}

TEST(data_uri, parses_base64_image_uris) {
  EXPECT_EQ(to_str(decode_image_reference("data:image/png;base64,Zm9vYmFy")), "foobar");
  EXPECT_EQ(to_str(decode_image_reference("  DATA:Image/JPEG;BASE64,Zm9v\n")), "foo");
  EXPECT_EQ(to_str(decode_image_reference("data:image/webp;name=x.webp;base64,Zm9v")), "foo");
  EXPECT_EQ(to_str(decode_image_reference("Zm9vYmFy")), "foobar");  // bare base64
}

TEST(data_uri, rejects_bad_uris) {
  EXPECT_THROW(decode_image_reference(""), error);
  EXPECT_THROW(decode_image_reference("data:image/png;base64"), error);          // no comma
  EXPECT_THROW(decode_image_reference("data:image/png,Zm9v"), error);            // not base64
  EXPECT_THROW(decode_image_reference("data:text/plain;base64,Zm9v"), error);    // not an image
  EXPECT_THROW(decode_image_reference("data:;base64,Zm9v"), error);              // no media type
  EXPECT_THROW(decode_image_reference("data:image/png;base64;x=y,Zm9v"), error); // base64 not last
  EXPECT_THROW(decode_image_reference("data:image/png;base64,Zm9v!!"), error);   // bad payload
  EXPECT_THROW(decode_image_reference("data:image/png;base64,"), error);         // empty payload
  EXPECT_THROW(decode_image_reference("https://example.com/a.png"), error);
}

TEST(data_uri, decodes_to_an_image) {
  auto img = test::random_image(5, 3, 1);
  auto png = test::encode_png(5, 3, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  auto bytes = decode_image_reference("data:image/png;base64," + encode(png, false, true));
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.rgb, img.rgb);
}

}  // namespace
}  // namespace autoglm

TEST(base64, encode_rfc4648_vectors_and_round_trip) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors)
    EXPECT_EQ(autoglm::base64_encode(reinterpret_cast<const uint8_t*>(plain.data()), plain.size()), encoded);
  std::vector<uint8_t> bytes(1000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 37 + 11);
  EXPECT_EQ(autoglm::base64_decode(autoglm::base64_encode(bytes.data(), bytes.size())), bytes);
}
