#pragma once

// The outbound path: the app's connection to a service, accepted on an explicit outbound
// listener (which names the service) or on the transparent listener (the original
// destination before the iptables REDIRECT names it). The service's endpoints are tried in
// turn; the connection to the endpoint's sidecar is mutual TLS with our SVID, and the server
// must present one of the SPIFFE IDs the service allows (secure naming), else the connection
// fails and says why. Unless the port is declared opaque, the app's first bytes choose the
// ALPN protocol offered (h2 for the HTTP/2 preface, http/1.1 for an HTTP/1 request line) so
// the peer sidecar can authorize each request. A captured destination that is no known
// service passes through in plaintext, as Istio's ALLOW_ANY does.
// Thread: the worker that accepted the connection.

#include "proxy/socket_util.h"
#include "proxy/worker.h"

namespace palisade::proxy {

// Takes ownership of `fd`.
void startOutbound(Worker& worker, int fd, const Sockaddr& peer, const ListenerSpec& listener);

}  // namespace palisade::proxy
