// tests/runtime/event_collector.h: collects engine events per request; wait() blocks until a request's final
// event. Shared by the engine tests on the toy model and on the demo model.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include "autoglm/engine.h"

namespace autoglm::test {

struct collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::vector<generation_event>> events;
  std::chrono::seconds timeout{120};  // how long wait() allows a request to finish

  event_callback callback() {
    return [this](const generation_event& ev) {
      std::lock_guard<std::mutex> lk(mu);
      events[ev.request_id].push_back(ev);
      cv.notify_all();
    };
  }
  std::vector<generation_event> wait(uint64_t id) {
    std::unique_lock<std::mutex> lk(mu);
    const bool done = cv.wait_for(lk, timeout, [&] {
      auto it = events.find(id);
      return it != events.end() && !it->second.empty() && it->second.back().finish != finish_reason::NONE;
    });
    EXPECT_TRUE(done) << "request " << id << " never finished";
    return events[id];
  }
  // The generated tokens; with expect_no_error, a request that ended in ERROR fails the test.
  std::vector<int32_t> tokens(uint64_t id, bool expect_no_error = false) {
    std::vector<int32_t> out;
    const std::vector<generation_event> evs = wait(id);
    for (const auto& ev : evs)
      if (ev.has_token) out.push_back(ev.token);
    if (expect_no_error) {
      EXPECT_NE(evs.back().finish, finish_reason::ERROR) << evs.back().error;
    }
    return out;
  }
};

}  // namespace autoglm::test
