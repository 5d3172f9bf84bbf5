// CertService: attestation, identity checks and lifetimes, without sockets.

#include "control-plane/cert_service.h"

#include <gtest/gtest.h>

#include "common/csr.h"
#include "common/openssl.h"
#include "common/x509_svid.h"

namespace palisade::cp {
namespace {

using common::grpc::StatusCode;

constexpr const char* kWeb = "spiffe://cluster.local/ns/default/sa/web";

class CertServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CaInitOptions init;
    init.trust_domain = "cluster.local";
    init.root_ttl = std::chrono::hours(24 * 30);
    auto ca = CertificateAuthority::create(init);
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    ca_ = std::make_shared<CertificateAuthority>(std::move(*ca));
  }

  CertService service() {
    CertServiceOptions o;
    o.join_token = [this](const std::string& token, std::time_t) {
      ++redeemed_;
      Attestation a;
      if (token == "good") {
        a.spiffe_id = kWeb;
      } else {
        a.error = AttestationError{"unknown", "no such token"};
      }
      return a;
    };
    return CertService(ca_, std::move(o));
  }

  static std::string csr(const std::vector<std::string>& uris) {
    auto key = common::generateP256Key();
    auto req = common::makeCsr(key->get(), uris, {});
    return common::csrPem(req->get());
  }

  std::shared_ptr<const CertificateAuthority> ca_;
  int redeemed_ = 0;
};

TEST_F(CertServiceTest, JoinTokenIssuesTheBoundIdentity) {
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({}));
  req.set_join_token("good");
  IssueOutcome out = service().create(req, {});
  ASSERT_TRUE(out.status.ok()) << out.status.message;
  EXPECT_EQ(out.method, "join_token");
  EXPECT_EQ(out.response.spiffe_id(), kWeb);
  ASSERT_EQ(out.response.cert_chain_size(), 1);
  auto leaf = common::parseCertificatesPem(out.response.cert_chain(0));
  ASSERT_TRUE(leaf.ok());
  auto id = common::spiffeIdOf(leaf->front().get());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->uri(), kWeb);
  ASSERT_EQ(out.response.trust_bundles_size(), 1);
  EXPECT_EQ(out.response.trust_bundles(0).trust_domain(), "cluster.local");
  EXPECT_EQ(out.response.trust_bundles(0).roots_size(), 1);
  EXPECT_EQ(out.response.expires_unix(), common::notAfter(leaf->front().get()));
}

TEST_F(CertServiceTest, RefusedTokenIsUnauthenticatedWithTheAttestorsReason) {
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({}));
  req.set_join_token("bad");
  IssueOutcome out = service().create(req, {});
  EXPECT_EQ(out.status.code, StatusCode::kUnauthenticated);
  EXPECT_EQ(out.reason, kRefuseAttestation);
  EXPECT_EQ(out.attestation_reason, "unknown");
}

TEST_F(CertServiceTest, CsrAskingForAnotherIdentityIsRefused) {
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({"spiffe://cluster.local/ns/default/sa/admin"}));
  req.set_join_token("good");
  IssueOutcome out = service().create(req, {});
  EXPECT_EQ(out.status.code, StatusCode::kPermissionDenied);
  EXPECT_EQ(out.reason, kRefuseIdentityMismatch);
  EXPECT_NE(out.status.message.find("sa/admin"), std::string::npos) << out.status.message;
}

TEST_F(CertServiceTest, BadRequestDoesNotSpendTheToken) {
  palisade::v1::CertificateRequest req;
  req.set_csr("not a csr");
  req.set_join_token("good");
  IssueOutcome out = service().create(req, {});
  EXPECT_EQ(out.status.code, StatusCode::kInvalidArgument);
  EXPECT_EQ(out.reason, kRefuseBadCsr);
  EXPECT_EQ(out.method, "join_token");
  req.set_csr(csr({}));
  req.set_validity_duration(10);
  out = service().create(req, {});
  EXPECT_EQ(out.reason, kRefuseBadTtl);
  EXPECT_EQ(redeemed_, 0);
}

TEST_F(CertServiceTest, NoAttestationWithoutClientCertificateIsRefused) {
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({}));
  IssueOutcome out = service().create(req, {});
  EXPECT_EQ(out.status.code, StatusCode::kUnauthenticated);
  EXPECT_EQ(out.reason, kRefuseNoAttestation);
  EXPECT_EQ(out.method, "none");
}

TEST_F(CertServiceTest, RenewalUsesTheTlsPeerIdentityWhileItIsValid) {
  auto id = policy::SpiffeId::parse(kWeb);
  common::PeerIdentity peer;
  peer.id = std::make_shared<const policy::SpiffeId>(*id);
  std::time_t now = std::time(nullptr);
  peer.expires = now + 600;
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({kWeb}));
  IssueOutcome out = service().create(req, peer, now);
  ASSERT_TRUE(out.status.ok()) << out.status.message;
  EXPECT_EQ(out.method, "renewal");
  EXPECT_EQ(out.response.spiffe_id(), kWeb);
  // A renewal may not ask for someone else.
  req.set_csr(csr({"spiffe://cluster.local/ns/default/sa/db"}));
  EXPECT_EQ(service().create(req, peer, now).reason, kRefuseIdentityMismatch);
  // Nor ride on a certificate that expired during a long-lived connection.
  req.set_csr(csr({kWeb}));
  peer.expires = now - 1;
  EXPECT_EQ(service().create(req, peer, now).status.code, StatusCode::kUnauthenticated);
}

TEST_F(CertServiceTest, LifetimeIsCappedAndNeverOutlivesTheCa) {
  palisade::v1::CertificateRequest req;
  req.set_csr(csr({}));
  req.set_join_token("good");
  req.set_validity_duration(7 * 24 * 3600);  // above max_ttl (24h): capped
  std::time_t now = std::time(nullptr);
  IssueOutcome out = service().create(req, {}, now);
  ASSERT_TRUE(out.status.ok()) << out.status.message;
  EXPECT_LE(out.response.expires_unix(), now + 24 * 3600 + 1);
  // 29.5 days later the CA (30 days) has less than a day left: a 1-day certificate is refused.
  std::time_t late = now + 29 * 24 * 3600 + 12 * 3600;
  req.set_validity_duration(24 * 3600);
  out = service().create(req, {}, late);
  EXPECT_EQ(out.status.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.reason, kRefuseOutlivesCa);
  EXPECT_NE(out.status.message.find("outlive"), std::string::npos);
}

TEST_F(CertServiceTest, BundleVersionFollowsTheRoots) {
  CertService s = service();
  std::string v1 = s.bundleVersion();
  EXPECT_FALSE(v1.empty());
  CaInitOptions init;
  init.trust_domain = "cluster.local";
  auto next = CertificateAuthority::create(init);
  ASSERT_TRUE(next.ok());
  std::vector<common::X509Ptr> extra;
  extra.push_back(common::share(next->roots().front().get()));
  s.setExtraRoots(std::move(extra));
  EXPECT_NE(s.bundleVersion(), v1);
  ASSERT_EQ(s.bundles().size(), 1u);
  EXPECT_EQ(s.bundles()[0].roots_size(), 2);
}

}  // namespace
}  // namespace palisade::cp
