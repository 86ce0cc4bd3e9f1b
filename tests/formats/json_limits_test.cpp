// Bounded JSON parsing: the nesting and value limits stop a hostile document early, numbers that overflow a
// double are parse errors, and valid documents parse exactly as nlohmann does (key order kept in the ordered form).
#include <gtest/gtest.h>

#include <string>

#include "formats/json_limits.h"

namespace autoglm {
namespace {

std::string nested(char open, char close, int depth) { return std::string(size_t(depth), open) + std::string(size_t(depth), close); }

TEST(JsonLimits, ParsesNormalDocumentsLikeNlohmann) {
  const std::string doc = R"({"z":1,"a":[1,2.5,"x",null,true,{"k":[]}],"m":{"b":2,"a":1}})";
  EXPECT_EQ(parse_json(doc), nlohmann::json::parse(doc));
  auto ordered = parse_ordered_json(doc);
  EXPECT_EQ(ordered.begin().key(), "z");  // document order, not sorted
  EXPECT_EQ(ordered.dump(), nlohmann::ordered_json::parse(doc).dump());
}

TEST(JsonLimits, DepthAtTheLimitPassesOneMoreFails) {
  json_limits lim;
  lim.max_depth = 8;
  EXPECT_NO_THROW(parse_json(nested('[', ']', 8), lim));
  try {
    parse_json(nested('[', ']', 9), lim);
    FAIL() << "depth 9 accepted";
  } catch (const json_parse_error& e) {
    EXPECT_TRUE(e.limit_exceeded());
    EXPECT_NE(std::string(e.what()).find("nesting deeper than 8"), std::string::npos) << e.what();
  }
  // Objects count the same way.
  EXPECT_THROW(parse_json(R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}})", lim), json_parse_error);
}

TEST(JsonLimits, HundredsOfThousandsOfLevelsFailFastWithoutCrashing) {
  // The request that overflowed the stack: {"a": 150,000 x "[" ... "]", "b": 0}.
  std::string bomb = "{\"a\":" + nested('[', ']', 150000) + ",\"b\":0}";
  EXPECT_THROW(parse_ordered_json(bomb), json_parse_error);
  // Unterminated: still a clean error.
  EXPECT_THROW(parse_json(std::string(200000, '[')), json_parse_error);
}

TEST(JsonLimits, ValueCountIsBounded) {
  json_limits lim;
  lim.max_values = 100;
  std::string arr = "[";
  for (int i = 0; i < 99; ++i) arr += (i ? ",0" : "0");
  arr += "]";  // 99 numbers + the array = 100 values
  EXPECT_NO_THROW(parse_json(arr, lim));
  std::string more = arr.substr(0, arr.size() - 1) + ",0]";
  try {
    parse_json(more, lim);
    FAIL() << "101 values accepted";
  } catch (const json_parse_error& e) {
    EXPECT_TRUE(e.limit_exceeded());
  }
}

TEST(JsonLimits, NumberOverflowIsAParseErrorNotALimit) {
  for (const char* doc : {"1e400", R"({"ignored":-1e400})", "[1,2,1E+999]"}) {
    try {
      parse_json(doc);
      FAIL() << doc << " accepted";
    } catch (const json_parse_error& e) {
      EXPECT_FALSE(e.limit_exceeded()) << doc;
    }
  }
  // Huge integers that still fit a double are numbers, as in nlohmann.
  EXPECT_TRUE(parse_json("123456789012345678901234567890").is_number_float());
}

TEST(JsonLimits, SyntaxErrorsAreParseErrors) {
  for (const char* doc : {"", "{", "{\"a\":}", "[1,]", "nul", "\"\\u12\"", "{} x"}) {
    EXPECT_THROW(parse_json(doc), json_parse_error) << doc;
  }
}

}  // namespace
}  // namespace autoglm
