// tests/server/framing_test.cpp: SSE and chunk framing, Prometheus text format, API-key comparison, error JSON.
#include <gtest/gtest.h>

#include <sstream>

#include "server/api_error.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/sse.h"

using namespace autoglm::server;
using nlohmann::json;

TEST(sse, data_events_and_done) {
  EXPECT_EQ(sse_data(json{{"a", "x\ny"}}), "data: {\"a\":\"x\\ny\"}\n\n");
  EXPECT_EQ(sse_data_text("one\ntwo"), "data: one\ndata: two\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // Invalid UTF-8 never throws from the streaming path.
  EXPECT_EQ(sse_data(json{{"c", std::string("\xe4")}}), "data: {\"c\":\"\xef\xbf\xbd\"}\n\n");
}

TEST(sse, http_chunks) {
  EXPECT_EQ(http_chunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(http_chunk(std::string(300, 'x')).substr(0, 5), "12c\r\n");
  EXPECT_EQ(http_last_chunk(), "0\r\n\r\n");
}

TEST(auth, constant_time_equal) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secreT", "secret"));
  EXPECT_FALSE(constant_time_equal("secret1", "secret"));
  EXPECT_FALSE(constant_time_equal("secre", "secret"));
  EXPECT_FALSE(constant_time_equal("", "secret"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(auth, bearer_header) {
  EXPECT_TRUE(api_key_matches("Bearer k1", "", "k1"));
  EXPECT_TRUE(api_key_matches("bearer  k1 ", "", "k1"));
  EXPECT_FALSE(api_key_matches("Bearer k2", "", "k1"));
  EXPECT_FALSE(api_key_matches("Basic k1", "", "k1"));
  EXPECT_FALSE(api_key_matches("", "", "k1"));
  EXPECT_FALSE(api_key_matches("Bearer", "", "k1"));
  EXPECT_TRUE(api_key_matches("", "k1", "k1"));
}

TEST(api_error, openai_shape) {
  json j = api_error(400, "bad temperature", "", "temperature").to_json();
  EXPECT_EQ(j["error"]["message"], "bad temperature");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_EQ(j["error"]["code"], 400);
  json k = api_error(401, "no key", "", "", "invalid_api_key").to_json();
  EXPECT_EQ(k["error"]["type"], "authentication_error");
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_EQ(k["error"]["code"], "invalid_api_key");
  EXPECT_EQ(std::string(error_type_for_status(503)), "service_unavailable_error");
  EXPECT_EQ(std::string(error_type_for_status(500)), "internal_server_error");
}

// Checks the exposition line by line: every sample belongs to a family announced by # TYPE, histogram buckets
// are cumulative and end in +Inf equal to _count.
TEST(metrics, prometheus_text_format) {
  server_metrics m;
  m.observe_ttft(0.003);
  m.observe_ttft(0.2);
  m.observe_ttft(100.0);
  m.on_request_finished("stop", 10, 5);
  m.on_request_finished("length", 3, 2);
  m.on_http_response(200);
  m.on_http_response(400);
  engine_gauges g;
  g.ready = true;
  g.n_running = 2;
  g.kv_blocks_total = 10;
  g.kv_blocks_used = 4;
  g.n_prefix_query_tokens = 8;
  g.n_prefix_hit_tokens = 2;
  std::string text = m.render("autoglm \"phone\"", g);

  std::istringstream in(text);
  std::string line, family, type;
  std::map<std::string, std::string> types;
  int64_t last_bucket = -1;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      t >> family >> type;
      ASSERT_TRUE(type == "gauge" || type == "counter" || type == "histogram") << line;
      types[family] = type;
      last_bucket = -1;
      continue;
    }
    std::string name = line.substr(0, line.find('{'));
    ASSERT_EQ(name.rfind(family, 0), 0u) << "sample outside its family: " << line;
    ASSERT_NE(line.find("model_name=\"autoglm \\\"phone\\\"\""), std::string::npos) << line;
    std::string value = line.substr(line.rfind(' ') + 1);
    ASSERT_NO_THROW(std::stod(value)) << line;
    if (types[family] == "histogram" && name == family + "_bucket") {
      int64_t v = std::stoll(value);
      ASSERT_GE(v, last_bucket) << "buckets must be cumulative: " << line;
      last_bucket = v;
    }
    if (types[family] == "histogram" && name == family + "_count") {
      EXPECT_EQ(std::stoll(value), last_bucket);
    }
  }
  EXPECT_NE(text.find("autoglm_time_to_first_token_seconds_bucket{model_name=\"autoglm \\\"phone\\\"\",le=\"0.005\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("autoglm_num_requests_running{model_name=\"autoglm \\\"phone\\\"\"} 2"), std::string::npos);
  EXPECT_NE(text.find("autoglm_kv_cache_usage_perc{model_name=\"autoglm \\\"phone\\\"\"} 0.4"),
            std::string::npos);
  EXPECT_NE(text.find("finished_reason=\"stop\"} 1"), std::string::npos);
  EXPECT_NE(text.find("autoglm_prompt_tokens_total{model_name=\"autoglm \\\"phone\\\"\"} 13"), std::string::npos);
  EXPECT_NE(text.find("status=\"400\"} 1"), std::string::npos);
  EXPECT_EQ(types["autoglm_prefix_cache_hits_total"], "counter");
}
