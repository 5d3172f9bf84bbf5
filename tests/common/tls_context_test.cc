#include "common/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <memory>
#include <string>

#include "tests/mocks/common/bio_pair.h"
#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// Mutual TLS between two TlsContexts over an in-memory BIO pair: who may connect, what each
// side learns of the other, and why a handshake failed.

namespace palisade::common {
namespace {

using test_certs::CertFactory;
using test_certs::Credential;
using test_certs::kHour;
using test_certs::kNow;
using test_certs::leafSpec;

Svid svidOf(const Credential& cred, const std::vector<const Credential*>& chain = {}) {
  Svid svid;
  svid.leaf = share(cred.cert.get());
  EVP_PKEY_up_ref(cred.key.get());
  svid.key.reset(cred.key.get());
  for (const Credential* c : chain) {
    svid.intermediates.push_back(share(c->cert.get()));
  }
  return svid;
}

std::shared_ptr<const BundleSet> bundleOf(const std::vector<const CertFactory*>& factories) {
  auto set = std::make_shared<BundleSet>();
  for (const CertFactory* f : factories) {
    set->add(f->trustDomain(), share(f->root().cert.get()));
  }
  return set;
}

struct Outcome {
  bool ok = false;
  std::string alpn;
  const PeerIdentity* server_saw = nullptr;  // what the server learned of the client
  const PeerIdentity* client_saw = nullptr;
};

// Runs both handshakes to completion or failure.
Outcome handshake(SSL* client, SSL* server) {
  Outcome out;
  out.ok = test_tls::handshakeOverBioPair(client, server);
  if (out.ok) {
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(client, &proto, &len);
    out.alpn.assign(reinterpret_cast<const char*>(proto), len);
  }
  out.server_saw = peerIdentity(server);
  out.client_saw = peerIdentity(client);
  return out;
}

class TlsContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new CertFactory("mesh.test");
    other_ca_ = new CertFactory("mesh.test");  // same trust domain, another key
    foreign_ = new CertFactory("foreign.test");
    server_ = new Credential(test_certs::makeCredential(
        leafSpec("spiffe://mesh.test/ns/db/sa/postgres"), &mesh_->root()));
    client_ = new Credential(
        test_certs::makeCredential(leafSpec("spiffe://mesh.test/ns/web/sa/api"), &mesh_->root()));
  }
  static void TearDownTestSuite() {
    delete mesh_;
    delete other_ca_;
    delete foreign_;
    delete server_;
    delete client_;
  }

  static TlsOptions options(std::vector<std::string> alpn = {}) {
    TlsOptions o;
    o.alpn = std::move(alpn);
    o.clock = [] { return kNow; };
    return o;
  }
  static std::shared_ptr<const TlsContext> serverContext(TlsOptions o = options()) {
    auto ctx = TlsContext::server(svidOf(*server_), bundleOf({mesh_}), o);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    return *ctx;
  }
  static std::shared_ptr<const TlsContext> clientContext(const Credential& cred,
                                                         TlsOptions o = options()) {
    auto ctx = TlsContext::client(svidOf(cred), bundleOf({mesh_, foreign_}), o);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    return *ctx;
  }

  static inline CertFactory* mesh_ = nullptr;
  static inline CertFactory* other_ca_ = nullptr;
  static inline CertFactory* foreign_ = nullptr;
  static inline Credential* server_ = nullptr;
  static inline Credential* client_ = nullptr;
};

TEST_F(TlsContextTest, MutualTls_BothSidesLearnThePeer) {
  auto server = serverContext();
  auto client = clientContext(*client_);
  SslPtr s = server->newSsl();
  SslPtr c = client->newSsl();
  Outcome o = handshake(c.get(), s.get());
  ASSERT_TRUE(o.ok);
  ASSERT_NE(o.server_saw, nullptr);
  ASSERT_NE(o.server_saw->id, nullptr);
  EXPECT_EQ(o.server_saw->id->uri(), "spiffe://mesh.test/ns/web/sa/api");
  EXPECT_EQ(o.server_saw->expires, kNow + kHour);
  ASSERT_NE(o.client_saw->id, nullptr);
  EXPECT_EQ(o.client_saw->id->uri(), "spiffe://mesh.test/ns/db/sa/postgres");
  EXPECT_EQ(SSL_version(c.get()), TLS1_3_VERSION) << "TLS 1.3 preferred";
}

TEST_F(TlsContextTest, Alpn_ServerPreferenceWins) {
  auto server = serverContext(options({"h2", "http/1.1"}));
  auto client = clientContext(*client_, options({"http/1.1", "h2"}));
  SslPtr s = server->newSsl();
  SslPtr c = client->newSsl();
  Outcome o = handshake(c.get(), s.get());
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.alpn, "h2");
}

TEST_F(TlsContextTest, Alpn_NoCommonProtocol_StillConnectsWithoutAlpn) {
  auto server = serverContext(options({"h2"}));
  auto client = clientContext(*client_, options({"x-custom"}));
  SslPtr s = server->newSsl();
  SslPtr c = client->newSsl();
  Outcome o = handshake(c.get(), s.get());
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.alpn, "");
}

struct RefusedClient {
  std::string name;
  std::function<Credential()> make;
  HandshakeFailure want;
  std::string want_reason_prefix;
};

TEST_F(TlsContextTest, ServerRefusesClientsWithoutAValidSvid) {
  const std::vector<RefusedClient> rows = {
      {"unknown CA of the same trust domain",
       [] {
         return test_certs::makeCredential(leafSpec("spiffe://mesh.test/ns/web/sa/api"),
                                           &other_ca_->root());
       },
       HandshakeFailure::kUntrusted, std::string(kSvidChain)},
      {"another trust domain",
       [] {
         return test_certs::makeCredential(leafSpec("spiffe://foreign.test/ns/web/sa/api"),
                                           &foreign_->root());
       },
       HandshakeFailure::kUnknownTrustDomain, std::string(kSvidNoBundle) + "foreign.test"},
      {"expired",
       [] {
         test_certs::CertSpec spec = leafSpec("spiffe://mesh.test/ns/web/sa/api");
         spec.not_before = kNow - 3 * kHour;
         spec.not_after = kNow - kHour;
         return test_certs::makeCredential(spec, &mesh_->root());
       },
       HandshakeFailure::kUntrusted, std::string(kSvidChain) + "certificate has expired"},
      {"not an SVID (a CA certificate)",
       [] {
         test_certs::CertSpec spec = leafSpec("spiffe://mesh.test/ns/web/sa/api");
         spec.basic_constraints = "critical,CA:TRUE";
         return test_certs::makeCredential(spec, &mesh_->root());
       },
       HandshakeFailure::kInvalidSvid, std::string(kSvidLeafIsCa)},
  };
  auto server = serverContext();
  for (const RefusedClient& row : rows) {
    SCOPED_TRACE(row.name);
    Credential cred = row.make();
    auto client = clientContext(cred);
    SslPtr s = server->newSsl();
    SslPtr c = client->newSsl();
    Outcome o = handshake(c.get(), s.get());
    EXPECT_FALSE(o.ok);
    ASSERT_NE(o.server_saw, nullptr);
    EXPECT_EQ(o.server_saw->id, nullptr);
    EXPECT_EQ(o.server_saw->failure, row.want) << handshakeFailureName(o.server_saw->failure);
    EXPECT_TRUE(o.server_saw->reason.starts_with(row.want_reason_prefix)) << o.server_saw->reason;
  }
}

TEST_F(TlsContextTest, ClientWithoutCertificate_RefusedWhenRequired_AllowedWhenNot) {
  // A TLS client with no certificate at all.
  SslCtxPtr bare(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(bare.get(), SSL_VERIFY_NONE, nullptr);
  {
    auto server = serverContext();
    SslPtr s = server->newSsl();
    SslPtr c(SSL_new(bare.get()));
    SSL_set_connect_state(c.get());
    Outcome o = handshake(c.get(), s.get());
    EXPECT_FALSE(o.ok) << "STRICT: a client certificate is required";
  }
  {
    TlsOptions permissive = options();
    permissive.require_peer_certificate = false;
    auto server = serverContext(permissive);
    SslPtr s = server->newSsl();
    SslPtr c(SSL_new(bare.get()));
    SSL_set_connect_state(c.get());
    Outcome o = handshake(c.get(), s.get());
    EXPECT_TRUE(o.ok);
    const PeerIdentity* peer = peerIdentity(s.get());
    EXPECT_TRUE(peer == nullptr || peer->id == nullptr) << "no certificate, no identity";
  }
}

TEST_F(TlsContextTest, SecureNaming_ClientRefusesAnImpostorServer) {
  auto server = serverContext();
  auto client = clientContext(*client_);
  {
    SslPtr s = server->newSsl();
    SslPtr c = client->newSsl({"spiffe://mesh.test/ns/db/sa/postgres"});
    EXPECT_TRUE(handshake(c.get(), s.get()).ok) << "the allowed identity";
  }
  SslPtr s = server->newSsl();
  SslPtr c = client->newSsl({"spiffe://mesh.test/ns/db/sa/mysql"});
  Outcome o = handshake(c.get(), s.get());
  EXPECT_FALSE(o.ok);
  ASSERT_NE(o.client_saw, nullptr);
  EXPECT_EQ(o.client_saw->failure, HandshakeFailure::kSecureNaming);
  EXPECT_EQ(o.client_saw->reason,
            "secure naming: the server is spiffe://mesh.test/ns/db/sa/postgres, which the service "
            "does not allow (allowed: spiffe://mesh.test/ns/db/sa/mysql)");
}

TEST_F(TlsContextTest, ContextOutlivedBySsl_StillHandshakes) {
  SslPtr s;
  SslPtr c;
  {
    auto server = serverContext(options({"h2"}));
    auto client = clientContext(*client_, options({"h2"}));
    s = server->newSsl();
    c = client->newSsl();
  }  // the TlsContexts are gone; their SSL_CTX and callback data live on with the SSLs
  Outcome o = handshake(c.get(), s.get());
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.alpn, "h2");
}

TEST_F(TlsContextTest, LoadSvid_ReadsChainAndKey_RefusesAKeyThatDoesNotMatch) {
  test_env::TempDir dir;
  const std::string chain =
      dir.write("chain.pem", server_->certPem() + certificatePem(mesh_->root().cert.get()));
  const std::string key = dir.write("key.pem", server_->keyPem());
  const std::string wrong_key = dir.write("wrong.pem", client_->keyPem());
  auto svid = loadSvid(chain, key);
  ASSERT_TRUE(svid.ok()) << svid.error().message;
  EXPECT_EQ(svid->intermediates.size(), 1u);
  auto mismatched = loadSvid(chain, wrong_key);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.error().message, wrong_key + ": the key does not match " + chain);
  EXPECT_FALSE(loadSvid(dir.file("missing.pem"), key).ok());
}

}  // namespace
}  // namespace palisade::common
