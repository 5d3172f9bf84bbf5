#include <ostream>

#include "cli/commands.h"
#include "policy/spiffe_id.h"

namespace palisade::cli {

Command spiffeCommand() {
  Command parse;
  parse.name = "parse";
  parse.summary = "Parse and validate a SPIFFE ID";
  parse.usage = "palisadectl spiffe parse ID";
  parse.long_help =
      "Parse a SPIFFE ID and validate it strictly against the SPIFFE-ID standard: the\n"
      "\"spiffe\" scheme, a trust domain of [a-z0-9._-] (at most 255 bytes), path segments\n"
      "of [A-Za-z0-9._-] with no empty, \".\" or \"..\" segments and no trailing slash, no\n"
      "query, fragment, port, userinfo or percent-encoding, at most 2048 bytes.\n\n"
      "Prints \"trust_domain=TD path=PATH\" and exits 0 for a valid ID; prints the reason\n"
      "on stderr and exits 1 for an invalid one.";
  parse.examples =
      "  palisadectl spiffe parse spiffe://cluster.local/ns/default/sa/sleep\n"
      "  trust_domain=cluster.local path=/ns/default/sa/sleep\n";
  parse.run = [](const Args& args, Io& io) {
    if (args.positional.size() != 1) {
      io.err << "Error: expected exactly one SPIFFE ID\nUsage: palisadectl spiffe parse ID\n";
      return kExitUsage;
    }
    auto id = policy::SpiffeId::parse(args.positional[0]);
    if (!id.ok()) {
      io.err << id.error().message << "\n";
      return kExitNegative;
    }
    io.out << "trust_domain=" << id->trustDomain() << " path=" << id->path() << "\n";
    return kExitOk;
  };

  Command spiffe;
  spiffe.name = "spiffe";
  spiffe.summary = "Work with SPIFFE IDs";
  spiffe.children.push_back(std::move(parse));
  return spiffe;
}

}  // namespace palisade::cli
