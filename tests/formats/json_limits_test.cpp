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

TEST(JsonLimits, OrderedObjectsWithManyKeysParseInLinearTime) {
  // nlohmann's ordered_map searches keys linearly on insert: 100,000 keys (a 1 MB request body) took 113 s, so
  // these 500,000 (6.4 MB) would take most of an hour; the hash-indexed builder takes well under a second.
  std::string doc = "{";
  for (int i = 0; i < 500000; ++i) doc += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  doc += ",\"k7\":-1}";  // a duplicate in a large object
  auto big = parse_ordered_json(doc);
  ASSERT_EQ(big.size(), 500000u);
  EXPECT_EQ(big.begin().key(), "k0");
  EXPECT_EQ(std::prev(big.end()).key(), "k499999");
  EXPECT_EQ(big["k7"], -1);
  EXPECT_EQ(std::next(big.begin(), 7).key(), "k7");  // the last value wins, at the first one's position (as nlohmann)
  // Duplicates in small and in indexed (more than 16 keys) objects, nested: exactly what nlohmann builds.
  std::string dups = R"({"a":1,"b":{"x":[1,{"y":2,"y":3}],"x":null},"a":{"c":[]},"m":{)";
  for (int i = 0; i < 40; ++i) dups += "\"k" + std::to_string(i % 25) + "\":" + std::to_string(i) + ",";
  dups += R"("k3":{"z":1}},"e":[]})";
  EXPECT_EQ(parse_ordered_json(dups).dump(), nlohmann::ordered_json::parse(dups).dump());
}

TEST(JsonLimits, OrderedParserHasTheSameLimitsAndErrors) {
  json_limits lim;
  lim.max_depth = 8;
  lim.max_values = 100;
  EXPECT_NO_THROW(parse_ordered_json(nested('[', ']', 8), lim));
  auto kind = [&](const std::string& doc) -> std::string {
    try {
      parse_ordered_json(doc, lim);
      return "ok";
    } catch (const json_parse_error& e) {
      return e.limit_exceeded() ? "limit" : "syntax";
    }
  };
  EXPECT_EQ(kind(nested('[', ']', 9)), "limit");
  EXPECT_EQ(kind(R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}})"), "limit");
  EXPECT_EQ(kind("{\"a\":" + nested('[', ']', 150000) + ",\"b\":0}"), "limit");
  std::string arr = "[";
  for (int i = 0; i < 99; ++i) arr += (i ? ",\"x\"" : "\"x\"");
  EXPECT_EQ(kind(arr + "]"), "ok");  // 99 strings + the array = 100 values
  EXPECT_EQ(kind(arr + ",{}]"), "limit");
  for (const char* doc : {"1e400", R"({"ignored":-1e400})", "[1,2,1E+999]", "", "{", "{\"a\":}", "[1,]", "nul",
                          "\"\\u12\"", "{} x", "{\"a\" 1}"})
    EXPECT_EQ(kind(doc), "syntax") << doc;
  EXPECT_EQ(parse_ordered_json("7"), 7);
  EXPECT_EQ(parse_ordered_json("\"s\""), "s");
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
