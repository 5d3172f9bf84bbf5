#pragma once

// Exchange: one request and its response as they cross the session: the decoded heads, the
// storage behind the request's policy::RequestView, and the state both codecs and the
// upstream look at. Owned by the session, recycled for the next request (its buffers keep
// their capacity). Thread: the session's.

#include <event2/buffer.h>
#include <event2/event.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/request_view.h"
#include "proxy/http/message_head.h"

namespace palisade::proxy::http {

class UpstreamRequest;

struct Exchange {
  Exchange() : response_body(evbuffer_new()) {}
  ~Exchange() {
    evbuffer_free(response_body);
    if (timer != nullptr) {
      event_free(timer);
    }
  }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  void reset() {
    stream_id = 0;
    request.clear();
    response.clear();
    upstream = nullptr;
    reject_status = 0;
    header_bytes = 0;
    local_reply = request_complete = response_started = response_complete = false;
    response_paused = response_ended = deferred = false;
    unconsumed = 0;
    attempts = 0;
    bodyless = false;
    failure_reason.clear();
    tried_count = 0;
    if (timer != nullptr) {
      event_del(timer);
    }
    evbuffer_drain(response_body, evbuffer_get_length(response_body));
  }

  std::int32_t stream_id = 0;  // HTTP/2 stream id; a sequence number on HTTP/1.1
  std::size_t slot = 0;        // where the session keeps it among the exchanges in flight
  RequestHead request;
  ResponseHead response;
  // Storage for the request's RequestView: unique header names, repeated ones joined.
  std::vector<policy::HeaderView> views;
  std::string joined;

  // The upstream side, until it reports the end or a failure or the session cancels it.
  UpstreamRequest* upstream = nullptr;
  int reject_status = 0;           // set by a codec: answer locally with this status (431...)
  std::size_t header_bytes = 0;    // bytes of the header block seen so far
  bool local_reply = false;        // answered by the session; the request body is discarded
  bool request_complete = false;   // the downstream sent the whole request
  bool response_started = false;   // the response head went to the downstream codec
  bool response_complete = false;  // the downstream codec has the whole response
  bool response_paused = false;    // upstream reads stopped: the downstream is slow

  // HTTP/2 downstream: response body waiting for the data provider, whether the response
  // has ended (trailers in response.trailers), whether the provider is deferred, and
  // request bytes received but not yet consumed (flow control).
  evbuffer* response_body;
  bool response_ended = false;
  bool deferred = false;
  std::size_t unconsumed = 0;

  // Upstream attempts so far, and whether the request ended with its head (only those are
  // tried again: nothing of them is lost).
  int attempts = 0;
  bool bodyless = false;
  // Why the upstream side refused the request (a pool limit, the retry budget): the body of
  // the 503 the session answers.
  std::string failure_reason;
  // The upstream provider's note of the endpoints this request went to (a retry avoids them).
  std::uint64_t tried[4] = {};
  std::size_t tried_count = 0;
  // The per-request timeout (SessionOptions::request_timeout), made on first use and kept
  // while the exchange is recycled; `session` is what its callback reports to.
  event* timer = nullptr;
  void* session = nullptr;
};

}  // namespace palisade::proxy::http
