#include "proxy/http/nghttp2_output.h"

#include <sys/types.h>

#include <cstdint>

namespace palisade::proxy::http {

bool flushNghttp2(nghttp2_session* session, evbuffer* out, std::size_t limit, bool& in_nghttp2) {
  while (evbuffer_get_length(out) < limit) {
    const std::uint8_t* data = nullptr;
    in_nghttp2 = true;
    ssize_t n = nghttp2_session_mem_send(session, &data);
    in_nghttp2 = false;
    if (n < 0) {
      return false;
    }
    if (n == 0) {
      break;
    }
    evbuffer_add(out, data, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace palisade::proxy::http
