#pragma once

// The inbound path (DESIGN.md "Flow of one connection"): a peer's connection accepted on the
// inbound listener. PeerAuthentication decides whether it must be mutual TLS (STRICT), may
// be plaintext (PERMISSIVE: the first byte tells a TLS ClientHello from plaintext, waiting
// at most sniffTimeout) or is plaintext (DISABLE). After the handshake the peer's SPIFFE ID
// comes from its verified X509-SVID. The protocol comes from ALPN (h2, http/1.1, else opaque
// TCP) or the port's declared protocol; opaque TCP is authorized once (L4) and pumped to the
// app, HTTP is authorized per request by proxy/http. Denials are logged with the deciding
// policy and rule and counted.
// Thread: the worker that accepted the connection.

#include "proxy/socket_util.h"
#include "proxy/worker.h"

namespace palisade::proxy {

// Takes ownership of `fd`.
void startInbound(Worker& worker, int fd, const Sockaddr& peer);

}  // namespace palisade::proxy
