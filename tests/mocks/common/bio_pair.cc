#include "tests/mocks/common/bio_pair.h"

#include <openssl/err.h>

#include <utility>

namespace palisade::common::test_tls {

bool handshakeOverBioPair(SSL* client, SSL* server) {
  BIO* c = nullptr;
  BIO* s = nullptr;
  BIO_new_bio_pair(&c, 0, &s, 0);
  SSL_set_bio(client, c, c);
  SSL_set_bio(server, s, s);
  bool client_done = false;
  bool server_done = false;
  // A TLS 1.3 handshake takes a few flights; 50 rounds bound a stuck one.
  for (int round = 0; round < 50 && !(client_done && server_done); ++round) {
    for (auto [ssl, done] : {std::pair{client, &client_done}, std::pair{server, &server_done}}) {
      if (*done) {
        continue;
      }
      const int rc = SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
        continue;
      }
      const int err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return false;
      }
    }
  }
  return client_done && server_done;
}

}  // namespace palisade::common::test_tls
