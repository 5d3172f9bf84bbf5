#include "proxy/agent.h"

#include <algorithm>

#include "common/csr.h"
#include "common/log.h"
#include "common/openssl.h"
#include "common/x509_svid.h"
#include "palisade/v1/ca.pb.h"
#include "proxy/snapshot.h"

namespace palisade::proxy {

namespace {

using common::grpc::StatusCode;

constexpr const char* kLog = "agent";
constexpr const char* kCreate = "/palisade.v1.CertificateService/CreateCertificate";
constexpr const char* kWatch = "/palisade.v1.CertificateService/WatchTrustBundles";
constexpr std::chrono::seconds kCallTimeout{10};

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000),
          static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

// A refusal the control plane will repeat: retrying the same credential is pointless.
bool isRefusal(StatusCode code) {
  return code == StatusCode::kUnauthenticated || code == StatusCode::kPermissionDenied ||
         code == StatusCode::kInvalidArgument || code == StatusCode::kFailedPrecondition;
}

// The control plane's bundles, plus the bootstrap files' for trust domains it does not send.
Result<std::shared_ptr<const common::BundleSet>> mergeBundles(
    const google::protobuf::RepeatedPtrField<palisade::v1::TrustBundle>& from_cp,
    const common::BundleSet& files) {
  auto set = std::make_shared<common::BundleSet>();
  std::vector<std::string> cp_domains;
  for (const auto& b : from_cp) {
    if (Status s = policy::SpiffeId::validateTrustDomain(b.trust_domain()); !s.ok()) {
      return Error{s.error().code, "trust bundle: " + s.error().message};
    }
    cp_domains.push_back(b.trust_domain());
    for (const std::string& pem : b.roots()) {
      auto certs = common::parseCertificatesPem(pem);
      if (!certs.ok()) {
        return Error{certs.error().code,
                     "trust bundle " + b.trust_domain() + ": " + certs.error().message};
      }
      for (auto& c : *certs) {
        set->add(b.trust_domain(), std::move(c));
      }
    }
  }
  if (cp_domains.empty()) {
    return invalidArgument("the control plane sent no trust bundle");
  }
  for (const std::string& td : files.trustDomains()) {
    if (std::find(cp_domains.begin(), cp_domains.end(), td) != cp_domains.end()) {
      continue;
    }
    for (const auto& root : *files.roots(td)) {
      set->add(td, common::share(root.get()));
    }
  }
  return std::shared_ptr<const common::BundleSet>(std::move(set));
}

}  // namespace

CertificateAgent::CertificateAgent(event_base* base, const BootstrapConfig& config)
    : base_(base), config_(config), rng_(std::random_device{}()) {
  timer_ = evtimer_new(base_, onTimer, this);
  watch_timer_ = evtimer_new(base_, onWatchTimer, this);
  auto files = loadBundleFiles(config_);
  file_bundles_ = files.ok() ? *files : std::make_shared<const common::BundleSet>();
  const ControlPlaneConfig& cp = *config_.control_plane;
  common::grpc::ChannelOptions options;
  options.host = cp.host;
  options.port = cp.port;
  options.limits.keepalive_time = cp.keepalive;
  options.tls = [this] { return channelContext(); };
  channel_ = std::make_unique<common::grpc::Channel>(base_, std::move(options));
}

CertificateAgent::~CertificateAgent() {
  on_change_ = nullptr;
  if (call_) {
    call_->on_finish = nullptr;
  }
  if (watch_) {
    watch_->on_finish = nullptr;
    watch_->on_message = nullptr;
  }
  channel_.reset();
  event_free(timer_);
  event_free(watch_timer_);
}

std::string CertificateAgent::controlPlaneId() const {
  const ControlPlaneConfig& cp = *config_.control_plane;
  if (!cp.identity.empty()) {
    return cp.identity;
  }
  std::string td;
  if (have_svid_) {
    if (auto id = policy::SpiffeId::parse(current_.spiffe_id); id.ok()) {
      td = std::string(id->trustDomain());
    }
  } else if (!file_bundles_->trustDomains().empty()) {
    td = file_bundles_->trustDomains().front();
  }
  return "spiffe://" + td + "/ns/palisade-system/sa/palisade-cp";
}

std::shared_ptr<const common::TlsContext> CertificateAgent::channelContext() {
  common::TlsOptions options;
  options.alpn = {"h2"};
  Result<std::shared_ptr<const common::TlsContext>> ctx =
      have_svid_ ? common::TlsContext::client(*current_.svid, current_.bundles, options)
                 : common::TlsContext::client(common::Svid{}, file_bundles_, options);
  if (!ctx.ok()) {
    PALISADE_LOG(kError, kLog, "cannot build the TLS context: " + ctx.error().message);
    return nullptr;
  }
  return *ctx;
}

void CertificateAgent::request(bool with_attestation) {
  const ControlPlaneConfig& cp = *config_.control_plane;
  auto key = common::generateP256Key();
  if (!key.ok()) {
    stats_.last_error = key.error().message;
    scheduleRetry();
    return;
  }
  std::vector<std::string> uris;
  if (have_svid_) {
    uris.push_back(current_.spiffe_id);
  }
  auto csr = common::makeCsr(key->get(), uris, {});
  if (!csr.ok()) {
    stats_.last_error = csr.error().message;
    scheduleRetry();
    return;
  }
  palisade::v1::CertificateRequest req;
  req.set_csr(common::csrPem(csr->get()));
  req.set_validity_duration(
      std::chrono::duration_cast<std::chrono::seconds>(cp.certificate_ttl).count());
  if (with_attestation) {
    if (!cp.join_token.empty()) {
      req.set_join_token(cp.join_token);
    } else if (!cp.join_token_file.empty() || !cp.service_account_token_file.empty()) {
      const std::string& file =
          cp.join_token_file.empty() ? cp.service_account_token_file : cp.join_token_file;
      auto text = common::readFile(file);  // read each time: kubelet rotates projected tokens
      if (!text.ok()) {
        stats_.last_error = text.error().message;
        scheduleRetry();
        return;
      }
      std::string token = *text;
      while (!token.empty() &&
             (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
        token.pop_back();
      }
      if (cp.join_token_file.empty()) {
        req.set_service_account_token(token);
      } else {
        req.set_join_token(token);
      }
    }
  }
  auto shared_key = std::make_shared<common::EvpPkeyPtr>(std::move(*key));
  call_ = channel_->unary(kCreate, req.SerializeAsString(), kCallTimeout,
                          [this, shared_key, with_attestation](const common::grpc::Status& status,
                                                               std::string response) {
                            if (status.ok()) {
                              // The key goes with the certificate it was made for.
                              pending_key_ = std::move(*shared_key);
                            }
                            onResponse(status, response, with_attestation);
                          });
}

void CertificateAgent::onResponse(const common::grpc::Status& status, const std::string& response,
                                  bool with_attestation) {
  call_.reset();
  std::string error;
  palisade::v1::CertificateResponse resp;
  common::Svid svid;
  Result<std::shared_ptr<const common::BundleSet>> bundles = invalidArgument("");
  if (!status.ok()) {
    error = std::string("the control plane answered ") + common::grpc::statusCodeName(status.code) +
            ": " + status.message;
  } else if (!resp.ParseFromString(response) || resp.cert_chain_size() == 0) {
    error = "the control plane sent a response without a certificate";
  } else {
    for (int i = 0; i < resp.cert_chain_size() && error.empty(); ++i) {
      auto certs = common::parseCertificatesPem(resp.cert_chain(i));
      if (!certs.ok()) {
        error = "certificate chain: " + certs.error().message;
        break;
      }
      for (auto& c : *certs) {
        if (svid.leaf == nullptr) {
          svid.leaf = std::move(c);
        } else {
          svid.intermediates.push_back(std::move(c));
        }
      }
    }
    svid.key = std::move(pending_key_);
    if (error.empty()) {
      bundles = mergeBundles(resp.trust_bundles(), *file_bundles_);
      if (!bundles.ok()) {
        error = bundles.error().message;
      }
    }
    if (error.empty()) {
      auto id = common::spiffeIdOf(svid.leaf.get());
      if (!id.ok() || id->uri() != resp.spiffe_id()) {
        error = "the certificate's SPIFFE ID is not the one the control plane named";
      }
    }
  }
  if (!error.empty()) {
    ++stats_.failures;
    stats_.last_error = error;
    if (status.ok() || isRefusal(status.code)) {
      if (!have_svid_) {
        attempt_ = Attempt::kRefused;
        refusal_ = error;
        return;
      }
    }
    PALISADE_LOG(kWarning, kLog,
                 std::string(have_svid_ ? "renewal" : "bootstrap") + " failed (" + error +
                     "); keeping " + (have_svid_ ? "the current certificate" : "trying") +
                     ", retrying with backoff");
    attempt_ = Attempt::kRetry;
    scheduleRetry();
    return;
  }
  (void)with_attestation;
  AgentSvid next;
  next.not_before = common::notBefore(svid.leaf.get());
  next.received = std::time(nullptr);
  next.not_after = common::notAfter(svid.leaf.get());
  next.spiffe_id = resp.spiffe_id();
  next.svid = std::make_shared<const common::Svid>(std::move(svid));
  next.bundles = std::move(*bundles);
  next.bundle_version = current_.bundle_version;
  current_ = std::move(next);
  have_svid_ = true;
  ++stats_.issued;
  backoff_ = std::chrono::milliseconds(0);
  attempt_ = Attempt::kIssued;
  PALISADE_LOG(
      kInfo, kLog,
      "certificate for " + current_.spiffe_id + " until " + common::formatTime(current_.not_after));
  if (on_change_) {
    on_change_(current_);
    scheduleRenewal();
    // The next connection presents the new certificate: reconnect (from the loop, not from
    // inside the channel's callback) and reopen the bundle watch.
    watch_backoff_ = std::chrono::milliseconds(0);
    reconnect_ = true;
    timeval zero{0, 0};
    evtimer_add(watch_timer_, &zero);
  }
}

void CertificateAgent::scheduleRenewal() {
  // From when the certificate arrived, not its notBefore: the CA backdates notBefore to
  // absorb clock skew, and counting from it would renew a short-lived certificate at once.
  std::time_t start = std::max(current_.not_before, current_.received);
  std::time_t lifetime = std::max<std::time_t>(current_.not_after - start, 1);
  const ControlPlaneConfig& cp = *config_.control_plane;
  std::uniform_real_distribution<double> jitter(-cp.renew_jitter, cp.renew_jitter);
  double at = static_cast<double>(start) +
              static_cast<double>(lifetime) * (cp.renew_fraction + jitter(rng_));
  double now = static_cast<double>(std::time(nullptr));
  auto delay =
      std::chrono::milliseconds(static_cast<std::int64_t>(std::max(1.0, at - now) * 1000.0));
  stats_.next_renewal = std::time(nullptr) + delay.count() / 1000;
  evtimer_del(timer_);
  timeval tv = toTimeval(delay);
  evtimer_add(timer_, &tv);
}

void CertificateAgent::scheduleRetry() {
  const ControlPlaneConfig& cp = *config_.control_plane;
  backoff_ = backoff_.count() == 0 ? cp.retry_initial : std::min(cp.retry_max, backoff_ * 2);
  std::uniform_int_distribution<std::int64_t> spread(backoff_.count() / 2, backoff_.count());
  auto delay = std::chrono::milliseconds(spread(rng_));
  if (have_svid_) {
    // Never sleep past the certificate's end while the control plane is away.
    std::time_t left = current_.not_after - std::time(nullptr);
    if (left > 2) {
      delay = std::min(delay, std::chrono::milliseconds((left - 1) * 1000 / 2));
    }
  }
  stats_.next_renewal = std::time(nullptr) + delay.count() / 1000;
  evtimer_del(timer_);
  timeval tv = toTimeval(std::max(delay, std::chrono::milliseconds(10)));
  evtimer_add(timer_, &tv);
}

void CertificateAgent::onTimer(evutil_socket_t, short, void* arg) {
  auto* a = static_cast<CertificateAgent*>(arg);
  bool expired = a->have_svid_ && a->current_.not_after <= std::time(nullptr);
  // A renewal is authenticated by the current certificate; without a valid one, attest again.
  a->request(!a->have_svid_ || expired);
}

void CertificateAgent::start(AgentSvid current, OnChange on_change) {
  current_ = std::move(current);
  have_svid_ = current_.svid != nullptr;
  on_change_ = std::move(on_change);
  scheduleRenewal();
  openBundleWatch();
}

void CertificateAgent::openBundleWatch() {
  watch_ = channel_->start(kWatch);
  std::weak_ptr<common::grpc::ClientCall> weak = watch_;
  watch_->on_message = [this](std::string message) {
    stats_.bundle_stream_up = true;
    watch_backoff_ = std::chrono::milliseconds(0);
    palisade::v1::BundleUpdate update;
    if (!update.ParseFromString(message)) {
      PALISADE_LOG(kWarning, kLog, "unreadable trust-bundle update ignored");
      return;
    }
    if (update.version() == current_.bundle_version) {
      return;
    }
    auto bundles = mergeBundles(update.trust_bundles(), *file_bundles_);
    if (!bundles.ok()) {
      PALISADE_LOG(kWarning, kLog, "trust-bundle update refused: " + bundles.error().message);
      return;
    }
    bool first = current_.bundle_version.empty();
    current_.bundles = std::move(*bundles);
    current_.bundle_version = update.version();
    ++stats_.bundle_updates;
    if (!first) {
      PALISADE_LOG(kInfo, kLog, "trust bundle updated to version " + update.version());
    }
    if (on_change_) {
      on_change_(current_);
    }
  };
  watch_->on_finish = [this](const common::grpc::Status& status) {
    stats_.bundle_stream_up = false;
    if (reconnect_) {
      return;  // reopened by the timer
    }
    const ControlPlaneConfig& cp = *config_.control_plane;
    watch_backoff_ =
        watch_backoff_.count() == 0 ? cp.retry_initial : std::min(cp.retry_max, watch_backoff_ * 2);
    std::uniform_int_distribution<std::int64_t> spread(watch_backoff_.count() / 2,
                                                       watch_backoff_.count());
    PALISADE_LOG(kDebug, kLog,
                 std::string("trust-bundle watch ended: ") + status.message + "; reopening");
    timeval tv = toTimeval(std::chrono::milliseconds(spread(rng_)));
    evtimer_add(watch_timer_, &tv);
  };
  palisade::v1::BundleWatchRequest req;
  req.set_version(current_.bundle_version);
  watch_->send(req.SerializeAsString());
}

void CertificateAgent::onWatchTimer(evutil_socket_t, short, void* arg) {
  auto* a = static_cast<CertificateAgent*>(arg);
  if (a->reconnect_) {
    a->reconnect_ = false;
    if (a->watch_) {
      a->watch_->on_finish = nullptr;
      a->watch_->on_message = nullptr;
      a->watch_.reset();
    }
    a->channel_->close();
  }
  a->openBundleWatch();
}

Result<AgentSvid> CertificateAgent::bootstrap(const BootstrapConfig& config,
                                              std::chrono::milliseconds give_up) {
  event_base* base = event_base_new();
  Result<AgentSvid> out = invalidArgument("");
  {
    CertificateAgent agent(base, config);
    auto deadline = std::chrono::steady_clock::now() + give_up;
    agent.request(true);
    while (agent.attempt_ != Attempt::kIssued && agent.attempt_ != Attempt::kRefused &&
           std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base, EVLOOP_ONCE);
    }
    if (agent.attempt_ == Attempt::kIssued) {
      out = agent.current_;
    } else if (agent.attempt_ == Attempt::kRefused) {
      out = invalidArgument("the control plane refused this workload: " + agent.refusal_);
    } else {
      out = Error{ErrorCode::kIo,
                  "no certificate from the control plane at " + config.control_plane->host + ":" +
                      std::to_string(config.control_plane->port) + " within " +
                      std::to_string(give_up.count() / 1000) + " s: " + agent.stats_.last_error};
    }
  }
  event_base_free(base);
  return out;
}

}  // namespace palisade::proxy
