#include "control-plane/cp_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "common/csr.h"
#include "common/log.h"
#include "common/openssl.h"
#include "grpc/health/v1/health.pb.h"

namespace palisade::cp {

namespace {

using common::grpc::ServerCall;
using common::grpc::StatusCode;

constexpr const char* kLog = "cp";
constexpr const char* kCreateCertificate = "/palisade.v1.CertificateService/CreateCertificate";
constexpr const char* kWatchTrustBundles = "/palisade.v1.CertificateService/WatchTrustBundles";
constexpr const char* kHealthCheck = "/grpc.health.v1.Health/Check";

std::string ownSpiffeId(const std::string& trust_domain) {
  return "spiffe://" + trust_domain + "/ns/palisade-system/sa/palisade-cp";
}

}  // namespace

struct ControlPlane::Metrics {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& issued =
      prometheus::BuildCounter()
          .Name("palisade_cp_certificates_issued_total")
          .Help("Certificates issued, by how the caller proved its identity")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& refused =
      prometheus::BuildCounter()
          .Name("palisade_cp_certificate_refusals_total")
          .Help("Certificate requests refused, by reason and attestation method")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& attestation_failures =
      prometheus::BuildCounter()
          .Name("palisade_cp_attestation_failures_total")
          .Help("Attestations that failed, by method and reason")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& issue_seconds =
      prometheus::BuildHistogram()
          .Name("palisade_cp_certificate_issue_duration_seconds")
          .Help("Time to decide and sign one certificate request")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& ca_expiry =
      prometheus::BuildGauge()
          .Name("palisade_cp_ca_expiry_timestamp_seconds")
          .Help("When the signing CA certificate expires (Unix time)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& own_expiry =
      prometheus::BuildGauge()
          .Name("palisade_cp_serving_certificate_expiry_timestamp_seconds")
          .Help("When the control plane's own serving certificate expires (Unix time)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& connections =
      prometheus::BuildGauge()
          .Name("palisade_cp_grpc_connections")
          .Help("Open gRPC connections to the control plane")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& bundle_watchers =
      prometheus::BuildGauge()
          .Name("palisade_cp_trust_bundle_watchers")
          .Help("Open WatchTrustBundles streams")
          .Register(registry);
  prometheus::Histogram& issue_histogram = issue_seconds.Add(
      {}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01, 0.025, 0.05, 0.1});
};

ControlPlane::ControlPlane(event_base* base, ControlPlaneOptions options)
    : base_(base), options_(std::move(options)), metrics_(std::make_unique<Metrics>()) {}

ControlPlane::~ControlPlane() {
  if (timer_ != nullptr) {
    event_free(timer_);
  }
  if (http_ != nullptr) {
    evhttp_free(http_);
  }
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::create(event_base* base,
                                                           const ControlPlaneOptions& options) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane(base, options));
  ControlPlaneOptions& o = cp->options_;
  if (o.ca_dir.empty()) {
    o.ca_dir = o.data_dir + "/ca";
  }
  // The CA: the one on disk, or a new self-signed root (as istiod does without a plugged-in
  // CA), saved so that a restart keeps it.
  if (std::filesystem::exists(o.ca_dir + "/ca.crt")) {
    auto ca = CertificateAuthority::load(o.ca_dir);
    if (!ca.ok()) {
      return Error{ca.error().code, "--ca-dir " + o.ca_dir + ": " + ca.error().message};
    }
    if (!o.trust_domain.empty() && ca->trustDomain() != o.trust_domain) {
      return invalidArgument("--trust-domain " + o.trust_domain + " but the CA in " + o.ca_dir +
                             " is for " + ca->trustDomain());
    }
    cp->ca_ = std::make_shared<CertificateAuthority>(std::move(*ca));
  } else {
    CaInitOptions init;
    init.trust_domain = o.trust_domain;
    auto ca = CertificateAuthority::create(init);
    if (!ca.ok()) {
      return ca.error();
    }
    std::error_code ec;
    std::filesystem::create_directories(o.ca_dir, ec);
    ::chmod(o.ca_dir.c_str(), 0700);
    if (Status s = ca->save(o.ca_dir); !s.ok()) {
      return s.error();
    }
    PALISADE_LOG(kWarning, kLog,
                 "no CA in " + o.ca_dir + ": made a self-signed root for trust domain " +
                     o.trust_domain + " (import your own with palisadectl ca import)");
    cp->ca_ = std::make_shared<CertificateAuthority>(std::move(*ca));
  }
  o.trust_domain = cp->ca_->trustDomain();
  auto tokens = JoinTokenStore::open(joinTokenDir(o.data_dir));
  if (!tokens.ok()) {
    return tokens.error();
  }
  cp->tokens_ = std::move(*tokens);
  if (!o.jwks_path.empty()) {
    auto jwks = Jwks::load(o.jwks_path);
    if (!jwks.ok()) {
      return jwks.error();
    }
    cp->jwks_ = std::move(*jwks);
  }
  CertServiceOptions service;
  service.default_ttl = o.default_ttl;
  service.max_ttl = o.max_ttl;
  ControlPlane* self = cp.get();
  service.join_token = [self](const std::string& token, std::time_t now) {
    Attestation a;
    auto redeemed = self->tokens_->redeem(token, now);
    if (!redeemed.ok()) {
      a.error = AttestationError{std::string(joinTokenRefusalReason(redeemed.error())),
                                 redeemed.error().message};
      return a;
    }
    a.spiffe_id = std::string(redeemed->spiffe_id.uri());
    PALISADE_LOG(kInfo, kLog, "join token " + redeemed->id + " redeemed for " + a.spiffe_id);
    return a;
  };
  if (cp->jwks_) {
    service.service_account_token = [self](const std::string& jwt, std::time_t now) {
      Attestation a;
      SaTokenOptions options;
      options.audience = self->options_.token_audience;
      options.issuer = self->options_.token_issuer;
      options.now = now;
      auto identity = verifySaToken(jwt, *self->jwks_, options);
      if (!identity.ok()) {
        a.error = AttestationError{std::string(reasonName(saTokenReason(identity.error()))),
                                   identity.error().message};
        return a;
      }
      auto id = identity->spiffeId(self->options_.trust_domain);
      if (!id.ok()) {
        a.error = AttestationError{"bad_subject", id.error().message};
        return a;
      }
      a.spiffe_id = std::string(id->uri());
      return a;
    };
  }
  cp->certs_ = std::make_unique<CertService>(cp->ca_, std::move(service));
  if (Status s = cp->issueOwnSvid(); !s.ok()) {
    return s.error();
  }
  return cp;
}

palisade::Status ControlPlane::issueOwnSvid() {
  auto key = common::generateP256Key();
  if (!key.ok()) {
    return key.error();
  }
  std::string id_text = ownSpiffeId(options_.trust_domain);
  auto csr = common::makeCsr(key->get(), {id_text}, options_.dns_names);
  if (!csr.ok()) {
    return csr.error();
  }
  auto id = policy::SpiffeId::parse(id_text);
  if (!id.ok()) {
    return id.error();
  }
  std::time_t now = std::time(nullptr);
  IssueOptions issue;
  issue.dns_names = options_.dns_names;
  std::time_t ca_end = common::notAfter(ca_->signingCertificate());
  issue.ttl =
      std::min(options_.own_ttl,
               std::chrono::seconds(std::max<std::time_t>(ca_end - now, kMinLeafTtl.count())));
  auto cert = ca_->sign(csr->get(), *id, issue);
  if (!cert.ok()) {
    return cert.error();
  }
  common::Svid svid;
  svid.leaf = std::move(cert->certificate);
  svid.intermediates = std::move(cert->intermediates);
  svid.key = std::move(*key);
  auto bundles = std::make_shared<common::BundleSet>();
  for (const auto& root : ca_->roots()) {
    bundles->add(options_.trust_domain, common::share(root.get()));
  }
  common::TlsOptions tls;
  tls.alpn = {"h2"};
  tls.require_peer_certificate = false;  // a workload attests before it has an SVID
  auto ctx = common::TlsContext::server(svid, bundles, tls);
  if (!ctx.ok()) {
    return ctx.error();
  }
  own_expires_ = common::notAfter(svid.leaf.get());
  std::time_t not_before = common::notBefore(svid.leaf.get());
  own_renew_at_ = not_before + (own_expires_ - not_before) / 2;
  tls_ = std::move(*ctx);
  metrics_->own_expiry.Add({}).Set(static_cast<double>(own_expires_));
  PALISADE_LOG(kInfo, kLog,
               "serving certificate " + id_text + " until " + common::formatTime(own_expires_));
  return Ok{};
}

palisade::Status ControlPlane::start() {
  common::grpc::ServerOptions so;
  so.address = options_.grpc_host;
  so.port = options_.grpc_port;
  so.limits.keepalive_time = options_.keepalive_time;
  so.tls = [this] { return tls_; };
  grpc_ = std::make_unique<common::grpc::Server>(base_, std::move(so));
  grpc_->handleUnary(kCreateCertificate,
                     [this](const std::shared_ptr<ServerCall>& call, const std::string& request) {
                       onCreateCertificate(call, request);
                     });
  grpc_->handleStream(kWatchTrustBundles,
                      [this](const std::shared_ptr<ServerCall>& call) { onWatchBundles(call); });
  grpc_->handleUnary(kHealthCheck, [this](const std::shared_ptr<ServerCall>& call,
                                          const std::string& request) { onHealth(call, request); });
  if (palisade::Status s = grpc_->start(); !s.ok()) {
    return s;
  }
  http_ = evhttp_new(base_);
  evhttp_set_gencb(http_, onHttp, this);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(
      http_, options_.monitoring_host.c_str(), options_.monitoring_port);
  if (bound == nullptr) {
    return Error{ErrorCode::kIo, "cannot listen on " + options_.monitoring_host + ":" +
                                     std::to_string(options_.monitoring_port) + ": " +
                                     std::strerror(errno)};
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&ss), &len);
  monitoring_port_ =
      ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  timer_ = event_new(base_, -1, EV_PERSIST, onTimer, this);
  timeval tv{1, 0};
  event_add(timer_, &tv);
  checkCaExpiry();
  ready_ = true;
  PALISADE_LOG(kInfo, kLog,
               "serving gRPC on " + options_.grpc_host + ":" + std::to_string(grpc_->port()) +
                   " and metrics on " + options_.monitoring_host + ":" +
                   std::to_string(monitoring_port_) + " for trust domain " + options_.trust_domain);
  return Ok{};
}

void ControlPlane::shutdown() {
  ready_ = false;
  for (auto& w : watchers_) {
    w->finish({StatusCode::kUnavailable, "the control plane is shutting down"});
  }
  watchers_.clear();
  if (grpc_ != nullptr) {
    grpc_->shutdown();
  }
}

std::uint16_t ControlPlane::grpcPort() const { return grpc_ != nullptr ? grpc_->port() : 0; }

void ControlPlane::checkCaExpiry() {
  std::time_t end = common::notAfter(ca_->signingCertificate());
  metrics_->ca_expiry.Add({{"trust_domain", options_.trust_domain}}).Set(static_cast<double>(end));
  std::time_t now = std::time(nullptr);
  if (end - now < options_.ca_expiry_warning.count()) {
    PALISADE_LOG(kWarning, kLog,
                 "the signing CA expires at " + common::formatTime(end) +
                     ": rotate it (palisadectl ca rotate) before then; certificates that would "
                     "outlive it are refused");
  }
}

void ControlPlane::onTimer(evutil_socket_t, short, void* arg) {
  auto* cp = static_cast<ControlPlane*>(arg);
  std::time_t now = std::time(nullptr);
  if (now >= cp->own_renew_at_) {
    if (palisade::Status s = cp->issueOwnSvid(); !s.ok()) {
      PALISADE_LOG(kError, kLog, "cannot renew the serving certificate: " + s.error().message);
    }
    cp->checkCaExpiry();
  }
  cp->metrics_->connections.Add({}).Set(static_cast<double>(cp->grpc_->connections()));
  std::erase_if(cp->watchers_, [](const std::shared_ptr<ServerCall>& c) { return c->done(); });
  cp->metrics_->bundle_watchers.Add({}).Set(static_cast<double>(cp->watchers_.size()));
}

void ControlPlane::onCreateCertificate(const std::shared_ptr<ServerCall>& call,
                                       const std::string& request) {
  auto started = std::chrono::steady_clock::now();
  palisade::v1::CertificateRequest req;
  if (!req.ParseFromString(request)) {
    call->finish({StatusCode::kInvalidArgument, "cannot parse CertificateRequest"});
    metrics_->refused.Add({{"reason", kRefuseBadCsr}, {"method", "none"}}).Increment();
    return;
  }
  IssueOutcome out = certs_->create(req, call->peer());
  metrics_->issue_histogram.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!out.status.ok()) {
    metrics_->refused.Add({{"reason", out.reason}, {"method", out.method}}).Increment();
    if (out.reason == kRefuseAttestation) {
      metrics_->attestation_failures
          .Add({{"method", out.method}, {"reason", out.attestation_reason}})
          .Increment();
    }
    PALISADE_LOG(kWarning, kLog,
                 "refused a certificate for " + call->peerAddress() + " (" + out.method +
                     "): " + out.status.message);
    call->finish(out.status);
    return;
  }
  metrics_->issued.Add({{"method", out.method}}).Increment();
  PALISADE_LOG(kDebug, kLog, "issued " + out.spiffe_id + " (" + out.method + ")");
  common::grpc::reply(*call, out.response.SerializeAsString());
}

void ControlPlane::onWatchBundles(const std::shared_ptr<ServerCall>& call) {
  std::weak_ptr<ServerCall> weak = call;
  call->on_message = [this, weak](std::string message) {
    auto c = weak.lock();
    palisade::v1::BundleWatchRequest req;
    if (!c || !req.ParseFromString(message)) {
      if (c) {
        c->finish({StatusCode::kInvalidArgument, "cannot parse BundleWatchRequest"});
      }
      return;
    }
    std::string version = certs_->bundleVersion();
    if (req.version() != version) {
      palisade::v1::BundleUpdate update;
      update.set_version(version);
      for (auto& b : certs_->bundles()) {
        *update.add_trust_bundles() = std::move(b);
      }
      c->send(update.SerializeAsString());
    }
  };
  call->on_half_close = [weak] {
    if (auto c = weak.lock()) {
      c->finish(common::grpc::Status::Ok());
    }
  };
  watchers_.push_back(call);
}

void ControlPlane::onHealth(const std::shared_ptr<ServerCall>& call, const std::string& request) {
  grpc::health::v1::HealthCheckRequest req;
  if (!req.ParseFromString(request)) {
    call->finish({StatusCode::kInvalidArgument, "cannot parse HealthCheckRequest"});
    return;
  }
  if (!req.service().empty() && req.service() != "palisade.v1.CertificateService") {
    call->finish({StatusCode::kNotFound, "unknown service " + req.service()});
    return;
  }
  grpc::health::v1::HealthCheckResponse resp;
  resp.set_status(ready_ ? grpc::health::v1::HealthCheckResponse::SERVING
                         : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  common::grpc::reply(*call, resp.SerializeAsString());
}

std::string ControlPlane::metricsText() const {
  return prometheus::TextSerializer().Serialize(metrics_->registry.Collect());
}

void ControlPlane::onHttp(evhttp_request* req, void* arg) {
  auto* cp = static_cast<ControlPlane*>(arg);
  const char* uri = evhttp_request_get_uri(req);
  std::string path = uri != nullptr ? uri : "/";
  if (auto q = path.find('?'); q != std::string::npos) {
    path.resize(q);
  }
  evbuffer* body = evbuffer_new();
  int code = 200;
  const char* reason = "OK";
  const char* type = "text/plain; charset=utf-8";
  if (path == "/metrics") {
    std::string text = cp->metricsText();
    evbuffer_add(body, text.data(), text.size());
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path == "/ready") {
    if (cp->ready_) {
      evbuffer_add_printf(body, "ready\n");
    } else {
      code = 503;
      reason = "Service Unavailable";
      evbuffer_add_printf(body, "not ready\n");
    }
  } else if (path == "/healthz") {
    evbuffer_add_printf(body, "ok\n");
  } else {
    code = 404;
    reason = "Not Found";
    evbuffer_add_printf(body, "not found: try /metrics, /ready or /healthz\n");
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
  evhttp_send_reply(req, code, reason, body);
  evbuffer_free(body);
}

}  // namespace palisade::cp
