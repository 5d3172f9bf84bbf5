#pragma once

// TLS contexts for mutual TLS between sidecars. Both sides present an X509-SVID and verify
// the peer's as the SPIFFE X509-SVID standard says (common/x509_svid.h) against the bundle of
// the peer's own trust domain, instead of OpenSSL's default chain building: a peer whose
// certificate is not a valid SVID fails the handshake with the reason kept for logs and
// metrics. TLS 1.3 preferred, TLS 1.2 with ECDHE and AEAD ciphers the floor. A client may
// also require the server to be one of a set of SPIFFE IDs (secure naming).
//
// Contexts are immutable once built and shared by every worker; a new certificate or bundle
// means a new context, which new handshakes use while open connections keep theirs.
// Thread: any.

#include <openssl/ssl.h>

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/openssl.h"
#include "common/trust_bundle.h"
#include "common/x509_svid.h"

namespace palisade::common {

using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

// Our own identity: the leaf, the intermediates to send with it, and its key.
struct Svid {
  X509Ptr leaf;
  std::vector<X509Ptr> intermediates;
  EvpPkeyPtr key;
};

// Reads a certificate chain (leaf first) and a key from PEM files; the key must match.
Result<Svid> loadSvid(const std::string& chain_pem_path, const std::string& key_pem_path);

struct TlsOptions {
  std::vector<std::string> alpn;         // in preference order, e.g. {"h2", "http/1.1"}
  bool require_peer_certificate = true;  // server: false for PERMISSIVE plaintext-or-mTLS
  std::function<std::time_t()> clock;    // the time certificates are checked at; default now
};

// Handshake failure reasons, one per class a dashboard tells apart.
enum class HandshakeFailure {
  kNone,
  kNoPeerCertificate,
  kInvalidSvid,         // not an X509-SVID per the standard
  kUnknownTrustDomain,  // no bundle for the peer's trust domain
  kUntrusted,           // chain does not verify to the bundle (unknown CA, expired, ...)
  kWrongTrustDomain,
  kSecureNaming,  // a valid server SVID, but not one the service allows
  kOther,
};
const char* handshakeFailureName(HandshakeFailure f);

class TlsContext {
 public:
  static Result<std::shared_ptr<const TlsContext>> server(const Svid& svid,
                                                          std::shared_ptr<const BundleSet> bundles,
                                                          const TlsOptions& options);
  // A client `svid` without a leaf presents no certificate (bootstrap before the first SVID).
  static Result<std::shared_ptr<const TlsContext>> client(const Svid& svid,
                                                          std::shared_ptr<const BundleSet> bundles,
                                                          const TlsOptions& options);

  SSL_CTX* get() const { return ctx_.get(); }
  const BundleSet& bundles() const { return *bundles_; }

  // A new SSL for one connection. For a client, `allowed_server_ids` (SPIFFE ID URIs) are
  // the only server identities accepted; empty means any valid SVID of a trusted domain.
  SslPtr newSsl(std::vector<std::string> allowed_server_ids = {}) const;

 private:
  TlsContext() = default;
  static Result<std::shared_ptr<TlsContext>> make(const Svid& svid,
                                                  std::shared_ptr<const BundleSet> bundles,
                                                  const TlsOptions& options, bool server);
  static int verifyCallback(X509_STORE_CTX* store_ctx, void* arg);

  SslCtxPtr ctx_;
  std::shared_ptr<const BundleSet> bundles_;
  bool server_ = false;
};

// What the handshake established about the peer, kept on the SSL.
struct PeerIdentity {
  std::shared_ptr<const policy::SpiffeId> id;  // null for a peer without a certificate
  std::time_t expires = 0;                     // earliest notAfter of its chain
  HandshakeFailure failure = HandshakeFailure::kNone;
  std::string reason;  // the verifier's message when it failed
};

// The peer identity of `ssl`, or nullptr before verification ran.
const PeerIdentity* peerIdentity(const SSL* ssl);

}  // namespace palisade::common
