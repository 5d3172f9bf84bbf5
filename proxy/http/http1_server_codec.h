#pragma once

// Http1ServerCodec: the downstream side of an HTTP/1.x connection. Requests are parsed with
// http-parser one at a time (pipelined ones wait in the input buffer), bodies are streamed,
// responses are framed with content-length, chunked encoding or connection close. A malformed
// request gets 400 and an oversized header block 431, then the connection closes.
// Thread: the session's. Does not own the bufferevent.

#include <event2/bufferevent.h>
#include <http_parser.h>

#include "proxy/http/codec.h"

namespace palisade::proxy::http {

class Http1ServerCodec final : public ServerCodec {
 public:
  Http1ServerCodec(bufferevent* bev, ServerCodecCallbacks& callbacks, const SessionLimits& limits);
  ~Http1ServerCodec() override;

  // ServerCodec:
  void start() override;
  void sendHead(Exchange& ex, const ResponseHead& head, bool end_stream) override;
  void sendData(Exchange& ex, const std::uint8_t* data, std::size_t len) override;
  void sendEnd(Exchange& ex) override;
  void sendContinue(Exchange& ex) override;
  void resetStream(Exchange& ex) override;
  void resumeRequest(Exchange& ex) override;
  std::size_t bufferedResponseBytes(const Exchange& ex) const override;
  std::size_t bufferedBytes() const override;
  void drain() override;
  void close() override;

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static int onMessageBegin(http_parser* p);
  static int onUrl(http_parser* p, const char* at, std::size_t len);
  static int onHeaderField(http_parser* p, const char* at, std::size_t len);
  static int onHeaderValue(http_parser* p, const char* at, std::size_t len);
  static int onHeadersComplete(http_parser* p);
  static int onBody(http_parser* p, const char* at, std::size_t len);
  static int onChunkHeader(http_parser* p);
  static int onMessageComplete(http_parser* p);

  // Parses buffered input while no exchange is waiting for its response.
  void process();
  bool addHeaderBytes(std::size_t n);
  // Ends the current exchange once both its request and response are complete.
  void maybeFinishExchange();
  void updateParserPause();
  // Answers a broken request with `status` and closes.
  void fail(int status);
  void closeAfterFlush();
  void closed();

  bufferevent* bev_;
  ServerCodecCallbacks& callbacks_;
  const SessionLimits& limits_;
  http_parser parser_{};
  http_parser_settings settings_{};
  Exchange* current_ = nullptr;
  std::int32_t sequence_ = 0;
  bool in_value_ = false;     // the last header callback was a value
  bool in_trailers_ = false;  // after the last chunk: fields are trailers
  bool has_body_ = false;
  bool too_large_ = false;         // 431 rather than 400
  bool waiting_response_ = false;  // request complete, response not yet
  bool body_paused_ = false;       // the upstream is full
  bool in_process_ = false;
  bool draining_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool peer_eof_ = false;
  // The response being written.
  bool chunked_ = false;
  bool no_body_ = false;
  bool keep_alive_ = true;
};

}  // namespace palisade::proxy::http
