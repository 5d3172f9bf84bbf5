#include <ostream>

#include "cli/commands.h"

namespace palisade::cli {

Command rootCommand() {
  Command root;
  root.name = "palisadectl";
  root.summary = "The Palisade operator's tool";
  root.long_help =
      "palisadectl is the operator's tool for Palisade, a service-mesh sidecar with SPIFFE\n"
      "authorization: it checks SPIFFE IDs and Istio authorization policies offline, runs the\n"
      "mesh's certificate authority, issues and inspects X509-SVIDs.";
  Command version;
  version.name = "version";
  version.summary = "Print the version of palisadectl";
  version.usage = "palisadectl version";
  version.run = [](const Args&, Io& io) {
    io.out << "palisadectl " << PALISADE_VERSION << "\n";
    return kExitOk;
  };
  root.children.push_back(authzCommand());
  root.children.push_back(caCommand());
  root.children.push_back(certCommand());
  root.children.push_back(certsCommand());
  root.children.push_back(spiffeCommand());
  root.children.push_back(svidCommand());
  root.children.push_back(tokenCommand());
  root.children.push_back(std::move(version));
  return root;
}

}  // namespace palisade::cli
