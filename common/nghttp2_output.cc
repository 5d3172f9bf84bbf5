#include "common/nghttp2_output.h"

#include <sys/types.h>

#include <cstdint>
#include <cstring>

namespace palisade::common {

namespace {

// nghttp2 hands out one frame per call. Frames are gathered into one contiguous extent of up
// to a TLS record's plaintext, because bufferevent_openssl makes one SSL_write (one record,
// one write(2)) per evbuffer chain: a HEADERS frame and a DATA frame in two chains cost the
// peer two records, two wake-ups and four read(2)s.
constexpr std::size_t kExtent = 16 * 1024;

class Gather {
 public:
  explicit Gather(evbuffer* out) : out_(out) {}
  ~Gather() { commit(); }
  Gather(const Gather&) = delete;
  Gather& operator=(const Gather&) = delete;

  std::size_t pending() const { return used_; }

  void add(const std::uint8_t* data, std::size_t n) {
    if (!reserved_ && n < kExtent && evbuffer_reserve_space(out_, kExtent, &vec_, 1) == 1) {
      reserved_ = true;
    }
    if (reserved_ && vec_.iov_len - used_ >= n) {
      std::memcpy(static_cast<std::uint8_t*>(vec_.iov_base) + used_, data, n);
      used_ += n;
      return;
    }
    commit();
    evbuffer_add(out_, data, n);
  }

  void commit() {
    if (reserved_) {
      vec_.iov_len = used_;
      evbuffer_commit_space(out_, &vec_, 1);
      reserved_ = false;
      used_ = 0;
    }
  }

 private:
  evbuffer* out_;
  evbuffer_iovec vec_{};
  std::size_t used_ = 0;
  bool reserved_ = false;
};

}  // namespace

bool flushNghttp2(nghttp2_session* session, evbuffer* out, std::size_t limit, bool& in_nghttp2) {
  Gather gather(out);
  while (evbuffer_get_length(out) + gather.pending() < limit) {
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
    gather.add(data, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace palisade::common
