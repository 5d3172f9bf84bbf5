#pragma once

// Drives a client and a server SSL through their handshake over an in-memory BIO pair, both on
// the calling thread. Used by the TLS tests and the handshake benchmark. Thread: one.

#include <openssl/ssl.h>

namespace palisade::common::test_tls {

// True when both sides completed the handshake; false as soon as either fails (its error is
// left in the SSL, the OpenSSL error queue is cleared).
bool handshakeOverBioPair(SSL* client, SSL* server);

}  // namespace palisade::common::test_tls
