#include "common/tls_context.h"

#include <openssl/err.h>

#include <algorithm>
#include <atomic>

namespace palisade::common {
namespace {

// TLS 1.2's floor: ECDHE key exchange and AEAD ciphers only. TLS 1.3 suites are all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

// Per-connection state on the SSL: what the handshake learned and, for a client, the server
// identities the service allows.
struct ConnState {
  PeerIdentity peer;
  std::vector<std::string> allowed_server_ids;
};

void freeConnState(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ConnState*>(ptr);
}
// What the context's callbacks read, owned by the SSL_CTX so that it lives as long as any SSL
// made from it, even past the TlsContext.
struct CtxData {
  std::shared_ptr<const BundleSet> bundles;
  std::string alpn_wire;  // length-prefixed protocol list
  std::function<std::time_t()> clock;
  std::uint64_t generation = 0;  // unique per context: keys the verified-chain caches
};

std::atomic<std::uint64_t> g_generation{0};

// Chains this thread verified, per context (its bundles): a peer that reconnects with the
// same SVID costs a SHA-256 instead of a chain verification. A handful of contexts live at
// once (server, client, the previous ones during a rotation); older caches are dropped.
VerifiedChainCache& threadCache(std::uint64_t generation) {
  constexpr std::size_t kContexts = 4;
  constexpr std::size_t kEntries = 1024;
  thread_local std::vector<std::pair<std::uint64_t, std::unique_ptr<VerifiedChainCache>>> caches;
  for (auto& [g, cache] : caches) {
    if (g == generation) {
      return *cache;
    }
  }
  if (caches.size() >= kContexts) {
    caches.erase(caches.begin());
  }
  caches.emplace_back(generation, std::make_unique<VerifiedChainCache>(kEntries));
  return *caches.back().second;
}

void freeCtxData(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<CtxData*>(ptr);
}

int connStateIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeConnState);
  return index;
}
int ctxDataIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeCtxData);
  return index;
}

ConnState* connState(SSL* ssl) {
  auto* st = static_cast<ConnState*>(SSL_get_ex_data(ssl, connStateIndex()));
  if (st == nullptr) {
    st = new ConnState();
    SSL_set_ex_data(ssl, connStateIndex(), st);
  }
  return st;
}

HandshakeFailure classify(const std::string& message) {
  auto starts = [&](std::string_view prefix) { return message.starts_with(prefix); };
  if (starts(kSvidNoBundle)) {
    return HandshakeFailure::kUnknownTrustDomain;
  }
  if (starts(kSvidChain)) {
    return HandshakeFailure::kUntrusted;
  }
  if (starts(kSvidWrongTrustDomain)) {
    return HandshakeFailure::kWrongTrustDomain;
  }
  return HandshakeFailure::kInvalidSvid;
}

// Length-prefixed ALPN wire format.
std::string alpnWire(const std::vector<std::string>& protocols) {
  std::string out;
  for (const std::string& p : protocols) {
    out += static_cast<char>(p.size());
    out += p;
  }
  return out;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
               unsigned int in_len, void* arg) {
  const std::string* wire = &static_cast<const CtxData*>(arg)->alpn_wire;
  unsigned char* selected = nullptr;
  // Our preference order wins (the server's list first).
  if (SSL_select_next_proto(
          &selected, out_len, reinterpret_cast<const unsigned char*>(wire->data()),
          static_cast<unsigned int>(wire->size()), in, in_len) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no common protocol: carry on without ALPN (opaque TCP)
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

const char* handshakeFailureName(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kNone:
      return "none";
    case HandshakeFailure::kNoPeerCertificate:
      return "no_peer_certificate";
    case HandshakeFailure::kInvalidSvid:
      return "invalid_svid";
    case HandshakeFailure::kUnknownTrustDomain:
      return "unknown_trust_domain";
    case HandshakeFailure::kUntrusted:
      return "untrusted";
    case HandshakeFailure::kWrongTrustDomain:
      return "wrong_trust_domain";
    case HandshakeFailure::kSecureNaming:
      return "secure_naming";
    case HandshakeFailure::kOther:
      return "other";
  }
  return "?";
}

Result<Svid> loadSvid(const std::string& chain_pem_path, const std::string& key_pem_path) {
  auto certs = readCertificatesFile(chain_pem_path);
  if (!certs.ok()) {
    return certs.error();
  }
  auto key_pem = readFile(key_pem_path);
  if (!key_pem.ok()) {
    return key_pem.error();
  }
  auto key = parsePrivateKeyPem(*key_pem);
  if (!key.ok()) {
    return Error{key.error().code, key_pem_path + ": " + key.error().message};
  }
  if (X509_check_private_key(certs->front().get(), key->get()) != 1) {
    ERR_clear_error();
    return invalidArgument(key_pem_path + ": the key does not match " + chain_pem_path);
  }
  Svid svid;
  svid.leaf = std::move(certs->front());
  for (std::size_t i = 1; i < certs->size(); ++i) {
    svid.intermediates.push_back(std::move((*certs)[i]));
  }
  svid.key = std::move(*key);
  return svid;
}

int TlsContext::verifyCallback(X509_STORE_CTX* store_ctx, void* arg) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  ConnState* st = connState(ssl);
  const auto* data = static_cast<const CtxData*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  std::vector<X509*> intermediates;
  if (STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(store_ctx)) {
    // The peer's chain as sent: its leaf first, then what it offered to sign it.
    for (int i = 0; i < sk_X509_num(untrusted); ++i) {
      X509* c = sk_X509_value(untrusted, i);
      if (X509_cmp(c, leaf) != 0) {
        intermediates.push_back(c);
      }
    }
  }
  VerifyOptions at;
  if (data->clock) {
    at.at = data->clock();
  }
  const std::time_t now = at.at ? *at.at : std::time(nullptr);
  VerifiedChainCache& cache = threadCache(data->generation);
  std::shared_ptr<const policy::SpiffeId> id = cache.find(leaf, now);
  std::time_t expires = 0;
  if (id == nullptr) {
    auto verified = verifySvid(leaf, intermediates, *data->bundles, at);
    if (!verified.ok()) {
      st->peer.failure = classify(verified.error().message);
      st->peer.reason = verified.error().message;
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
    id = cache.insert(leaf, *verified);
    expires = verified->expires;
  } else {
    expires = cache.expiresOf(leaf);
  }
  const auto& allowed = st->allowed_server_ids;
  if (!SSL_is_server(ssl) && !allowed.empty() &&
      std::find(allowed.begin(), allowed.end(), id->uri()) == allowed.end()) {
    st->peer.failure = HandshakeFailure::kSecureNaming;
    std::string want;
    for (const std::string& a : allowed) {
      want += (want.empty() ? "" : ", ") + a;
    }
    st->peer.reason = "secure naming: the server is " + std::string(id->uri()) +
                      ", which the service does not allow (allowed: " + want + ")";
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  st->peer.id = std::move(id);
  st->peer.expires = expires;
  X509_STORE_CTX_set_error(store_ctx, X509_V_OK);
  return 1;
}

Result<std::shared_ptr<TlsContext>> TlsContext::make(const Svid& svid,
                                                     std::shared_ptr<const BundleSet> bundles,
                                                     const TlsOptions& options, bool server) {
  std::shared_ptr<TlsContext> out(new TlsContext());
  out->server_ = server;
  out->bundles_ = std::move(bundles);
  out->ctx_.reset(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  SSL_CTX* ctx = out->ctx_.get();
  if (ctx == nullptr) {
    return opensslError("tls: cannot create a context");
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections give their buffers back: memory per idle connection stays small.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No resumption: every connection runs our verifier, so every connection has a verified
  // peer identity (a resumed session would skip it), and a server sends no session tickets
  // (in OpenSSL 3.0 each one re-encodes the peer's certificate: a large share of a
  // handshake's CPU).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (server) {
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return opensslError("tls: cannot set ciphers");
  }
  // A client without an SVID yet (a workload attesting to the control plane for its first
  // certificate) presents none.
  if (!server && svid.leaf == nullptr) {
    // nothing to present
  } else if (SSL_CTX_use_certificate(ctx, svid.leaf.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, svid.key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return opensslError("tls: cannot use the SVID");
  }
  for (const X509Ptr& c : svid.intermediates) {
    if (SSL_CTX_add1_chain_cert(ctx, c.get()) != 1) {
      return opensslError("tls: cannot add an intermediate");
    }
  }
  // Our verifier replaces OpenSSL's chain building.
  auto* data = new CtxData{out->bundles_, alpnWire(options.alpn), options.clock, ++g_generation};
  SSL_CTX_set_ex_data(ctx, ctxDataIndex(), data);
  SSL_CTX_set_cert_verify_callback(ctx, verifyCallback, data);
  int mode = SSL_VERIFY_PEER;
  if (server && options.require_peer_certificate) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx, mode, nullptr);
  if (!data->alpn_wire.empty()) {
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx, selectAlpn, data);
    } else if (SSL_CTX_set_alpn_protos(
                   ctx, reinterpret_cast<const unsigned char*>(data->alpn_wire.data()),
                   static_cast<unsigned int>(data->alpn_wire.size())) != 0) {
      return opensslError("tls: cannot set ALPN");
    }
  }
  return out;
}

Result<std::shared_ptr<const TlsContext>> TlsContext::server(
    const Svid& svid, std::shared_ptr<const BundleSet> bundles, const TlsOptions& options) {
  auto ctx = make(svid, std::move(bundles), options, true);
  if (!ctx.ok()) {
    return ctx.error();
  }
  return std::shared_ptr<const TlsContext>(std::move(*ctx));
}

Result<std::shared_ptr<const TlsContext>> TlsContext::client(
    const Svid& svid, std::shared_ptr<const BundleSet> bundles, const TlsOptions& options) {
  auto ctx = make(svid, std::move(bundles), options, false);
  if (!ctx.ok()) {
    return ctx.error();
  }
  return std::shared_ptr<const TlsContext>(std::move(*ctx));
}

SslPtr TlsContext::newSsl(std::vector<std::string> allowed_server_ids) const {
  SslPtr ssl(SSL_new(ctx_.get()));
  ConnState* st = connState(ssl.get());
  st->allowed_server_ids = std::move(allowed_server_ids);
  if (server_) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  return ssl;
}

const PeerIdentity* peerIdentity(const SSL* ssl) {
  auto* st = static_cast<ConnState*>(SSL_get_ex_data(ssl, connStateIndex()));
  return st == nullptr ? nullptr : &st->peer;
}

}  // namespace palisade::common
