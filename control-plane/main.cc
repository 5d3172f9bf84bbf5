// palisade-cp: the control plane. See control-plane/README.md.

#include <event2/event.h>
#include <event2/thread.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/log.h"
#include "control-plane/cp_server.h"
#include "policy/duration.h"

namespace {

constexpr const char* kUsage =
    R"(palisade-cp: the Palisade control plane. The mesh's certificate authority: workloads
attest (join token or Kubernetes service-account token), send a CSR and get their X509-SVID
and the trust bundles over gRPC; renewals are authenticated by the current SVID.

Usage:
  palisade-cp [flags]

Flags:
      --trust-domain TD        the mesh's trust domain (default cluster.local; a CA loaded
                               from --ca-dir must be for it)
      --ca-dir DIR             the CA (palisadectl ca init/import writes one); made there,
                               self-signed, when DIR holds none (default DATA_DIR/ca)
      --data-dir DIR           state: join tokens (default /var/lib/palisade-cp, or
                               $PALISADE_CP_DATA_DIR)
      --grpc-addr HOST:PORT    gRPC over TLS (default 127.0.0.1:15012)
      --monitoring-addr HOST:PORT
                               /metrics, /ready, /healthz (default 127.0.0.1:15014)
      --jwks FILE              the cluster's service-account JWKS (kubectl get --raw
                               /openid/v1/jwks); without it service-account tokens are refused
      --token-audience AUD     the audience service-account tokens must carry
                               (default palisade-cp)
      --token-issuer ISS       the issuer they must carry (default: not checked)
      --default-ttl DURATION   certificate lifetime when the CSR asks none (default 1h)
      --max-ttl DURATION       the longest certificate issued (default 24h)
      --ca-expiry-warning DURATION
                               warn when the CA expires within this (default 720h)
      --dns-name NAME          a DNS name of the serving certificate (repeatable; default
                               palisade-cp, palisade-cp.palisade-system.svc, localhost)
      --keepalive DURATION     PING idle gRPC connections this often (default 30s)
      --log-level LEVEL        trace, debug, info (default), warning, error, off
  -h, --help                   this help
      --version                print the version

gRPC services: palisade.v1.CertificateService (CreateCertificate, WatchTrustBundles),
grpc.health.v1.Health (Check). The serving certificate is
spiffe://TD/ns/palisade-system/sa/palisade-cp. Signals: SIGTERM or SIGINT stop it.
)";

int usageError(const std::string& message) {
  std::cerr << "Error: " << message << "\nRun 'palisade-cp --help' for usage.\n";
  return 2;
}

bool splitHostPort(const std::string& text, std::string& host, std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    host = "0.0.0.0";
  }
  char* end = nullptr;
  long p = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535 || end == text.c_str() + colon + 1) {
    return false;
  }
  port = static_cast<std::uint16_t>(p);
  return true;
}

void onSignal(evutil_socket_t, short, void* arg) {
  auto* base = static_cast<event_base*>(arg);
  PALISADE_LOG(kInfo, "cp", "signal: stopping");
  event_base_loopexit(base, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace palisade;
  cp::ControlPlaneOptions options;
  if (const char* dir = std::getenv("PALISADE_CP_DATA_DIR"); dir != nullptr && *dir != '\0') {
    options.data_dir = dir;
  }
  bool dns_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string inline_value;
    bool has_inline = false;
    if (arg.starts_with("--") && arg.find('=') != std::string::npos) {
      inline_value = arg.substr(arg.find('=') + 1);
      arg.resize(arg.find('='));
      has_inline = true;
    }
    auto value = [&](std::string& out) {
      if (has_inline) {
        out = inline_value;
        return true;
      }
      if (i + 1 >= argc) {
        return false;
      }
      out = argv[++i];
      return true;
    };
    auto duration = [&](std::chrono::seconds& out) -> bool {
      std::string v;
      if (!value(v)) {
        return false;
      }
      auto d = policy::parseDuration(v);
      if (!d.ok()) {
        return false;
      }
      out = *d;
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help" || arg == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "palisade-cp " << PALISADE_VERSION << "\n";
      return 0;
    }
    if (arg == "--trust-domain") {
      if (!value(options.trust_domain)) return usageError("--trust-domain needs a value");
    } else if (arg == "--ca-dir") {
      if (!value(options.ca_dir)) return usageError("--ca-dir needs a DIR");
    } else if (arg == "--data-dir") {
      if (!value(options.data_dir)) return usageError("--data-dir needs a DIR");
    } else if (arg == "--grpc-addr") {
      if (!value(v) || !splitHostPort(v, options.grpc_host, options.grpc_port)) {
        return usageError("--grpc-addr needs HOST:PORT");
      }
    } else if (arg == "--monitoring-addr") {
      if (!value(v) || !splitHostPort(v, options.monitoring_host, options.monitoring_port)) {
        return usageError("--monitoring-addr needs HOST:PORT");
      }
    } else if (arg == "--jwks") {
      if (!value(options.jwks_path)) return usageError("--jwks needs a FILE");
    } else if (arg == "--token-audience") {
      if (!value(options.token_audience)) return usageError("--token-audience needs a value");
    } else if (arg == "--token-issuer") {
      if (!value(options.token_issuer)) return usageError("--token-issuer needs a value");
    } else if (arg == "--default-ttl") {
      if (!duration(options.default_ttl)) return usageError("--default-ttl needs a duration");
    } else if (arg == "--max-ttl") {
      if (!duration(options.max_ttl)) return usageError("--max-ttl needs a duration");
    } else if (arg == "--ca-expiry-warning") {
      if (!duration(options.ca_expiry_warning)) {
        return usageError("--ca-expiry-warning needs a duration");
      }
    } else if (arg == "--keepalive") {
      std::chrono::seconds s{};
      if (!duration(s)) return usageError("--keepalive needs a duration");
      options.keepalive_time = s;
    } else if (arg == "--dns-name") {
      if (!value(v)) return usageError("--dns-name needs a NAME");
      if (!dns_given) {
        options.dns_names.clear();
        dns_given = true;
      }
      options.dns_names.push_back(v);
    } else if (arg == "--log-level") {
      if (!value(v)) return usageError("--log-level needs a LEVEL");
      auto level = common::parseLogLevel(v);
      if (!level) return usageError("unknown log level " + v);
      common::setLogLevel(*level);
    } else {
      return usageError("unknown flag " + arg);
    }
  }
  if (options.default_ttl > options.max_ttl) {
    return usageError("--default-ttl is longer than --max-ttl");
  }
  std::signal(SIGPIPE, SIG_IGN);
  event_base* base = event_base_new();
  auto cp = cp::ControlPlane::create(base, options);
  if (!cp.ok()) {
    std::cerr << "palisade-cp: " << cp.error().message << "\n";
    return 1;
  }
  if (Status s = (*cp)->start(); !s.ok()) {
    std::cerr << "palisade-cp: " << s.error().message << "\n";
    return 1;
  }
  event* sigterm = evsignal_new(base, SIGTERM, onSignal, base);
  event* sigint = evsignal_new(base, SIGINT, onSignal, base);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  event_base_dispatch(base);
  (*cp)->shutdown();
  event_free(sigterm);
  event_free(sigint);
  cp->reset();
  event_base_free(base);
  return 0;
}
