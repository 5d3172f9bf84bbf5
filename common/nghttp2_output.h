#pragma once

// Moves what an nghttp2 session has to send into a bufferevent's output, up to `limit`
// buffered bytes (back-pressure: the rest waits in nghttp2 until the output drains).
// `in_nghttp2` is set while nghttp2 runs, so callbacks it makes can tell.
// Thread: the owner of the session.

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace palisade::common {

// False when nghttp2 failed (the connection must close).
bool flushNghttp2(nghttp2_session* session, evbuffer* out, std::size_t limit, bool& in_nghttp2);

}  // namespace palisade::common
