// palisade-proxy: the sidecar. See proxy/README.md and the bootstrap format in bootstrap.h.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "common/log.h"
#include "policy/loader.h"
#include "proxy/bootstrap.h"
#include "proxy/server.h"

namespace {

constexpr const char* kUsage =
    R"(palisade-proxy: the Palisade sidecar. Upgrades a workload's traffic to mutual TLS with
SPIFFE identities and applies Istio AuthorizationPolicy to every connection and request.

Usage:
  palisade-proxy --bootstrap FILE [--concurrency N] [--log-level LEVEL]
  palisade-proxy --validate --bootstrap FILE

Flags:
  -c, --bootstrap FILE    the bootstrap file (format: proxy/README.md)
      --validate          check the bootstrap file and everything it names (certificates,
                          bundles, policies, services), print "bootstrap OK" or the problems
                          as file:line:col, and exit 0 or 1
      --concurrency N     worker threads (default: the bootstrap's, else one per core)
      --log-level LEVEL   trace, debug, info (default), warning, error, off; change it later
                          with POST http://127.0.0.1:15000/logging?level=debug
  -h, --help              this help
      --version           print the version

Ports (defaults; the bootstrap changes them): 15006 inbound mTLS, 15001 outbound capture,
127.0.0.1:15000 admin (/config_dump, /clusters, /certs, /logging, /drain, /quitquitquit),
15020 /healthz/ready, 15090 /stats/prometheus.
Signals: SIGTERM or SIGINT drain and exit; SIGHUP reloads the files now.
)";

int usageError(const std::string& message) {
  std::cerr << "Error: " << message << "\nRun 'palisade-proxy --help' for usage.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace palisade;
  std::string bootstrap;
  bool validate = false;
  int concurrency = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        return nullptr;
      }
      (void)flag;
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help" || arg == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "palisade-proxy " << PALISADE_VERSION << "\n";
      return 0;
    }
    if (arg == "--validate") {
      validate = true;
    } else if (arg == "-c" || arg == "--bootstrap" || arg.starts_with("--bootstrap=")) {
      const char* v = arg.starts_with("--bootstrap=") ? argv[i] + 12 : value("--bootstrap");
      if (v == nullptr) {
        return usageError("--bootstrap needs a FILE");
      }
      bootstrap = v;
    } else if (arg == "--concurrency") {
      const char* v = value("--concurrency");
      char* end = nullptr;
      long n = v != nullptr ? std::strtol(v, &end, 10) : -1;
      if (v == nullptr || *end != '\0' || n < 1 || n > 256) {
        return usageError("--concurrency needs a number of workers in 1..256");
      }
      concurrency = static_cast<int>(n);
    } else if (arg == "--log-level") {
      const char* v = value("--log-level");
      auto level = v != nullptr ? common::parseLogLevel(v) : std::nullopt;
      if (!level) {
        return usageError("--log-level must be trace, debug, info, warning, error or off");
      }
      common::setLogLevel(*level);
    } else {
      return usageError("unknown argument \"" + arg + "\"");
    }
  }
  if (bootstrap.empty()) {
    return usageError("--bootstrap FILE is required");
  }

  policy::LoadResult diagnostics;
  proxy::BootstrapConfig config = proxy::loadBootstrap(bootstrap, diagnostics);
  if (diagnostics.ok()) {
    proxy::validateBootstrapReferences(config, diagnostics);
  }
  for (const policy::Diagnostic& d : diagnostics.diagnostics) {
    std::cerr << policy::formatDiagnostic(d) << "\n";
  }
  if (!diagnostics.ok()) {
    if (!validate) {
      std::cerr << "palisade-proxy: the bootstrap has errors; not starting\n";
    }
    return 1;
  }
  if (validate) {
    std::cout << "bootstrap OK\n";
    return 0;
  }
  if (concurrency > 0) {
    config.concurrency = static_cast<unsigned>(concurrency);
  }
  auto server = proxy::Server::create(std::move(config));
  if (!server.ok()) {
    PALISADE_LOG(kError, "palisade-proxy", server.error().message);
    return 1;
  }
  return (*server)->run();
}
