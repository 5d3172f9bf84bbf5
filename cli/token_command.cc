// palisadectl token (create, list, revoke): join tokens, as `kubeadm token` and
// `spire-server token generate` users know them. The commands work on the control plane's
// data directory directly, so they run on the control plane's host (or wherever that
// directory is mounted) as a user who can write it.

#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/openssl.h"
#include "control-plane/join_token.h"
#include "policy/duration.h"

namespace palisade::cli {
namespace {

constexpr const char* kDefaultDataDir = "/var/lib/palisade-cp";
constexpr const char* kDataDirEnv = "PALISADE_CP_DATA_DIR";
constexpr const char* kDefaultTtl = "1h";

int fail(Io& io, const Error& e, int code) {
  io.err << "Error: " << e.message << "\n";
  return code;
}

// --data-dir, else $PALISADE_CP_DATA_DIR, else /var/lib/palisade-cp.
std::string dataDir(const Args& args) {
  if (args.has("data-dir")) {
    return args.get("data-dir");
  }
  const char* env = std::getenv(kDataDirEnv);
  return env != nullptr && *env != '\0' ? env : kDefaultDataDir;
}

// list and revoke only read what is there; they do not make an empty store.
bool storeExists(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec);
}

FlagSpec dataDirFlag() {
  return {"data-dir", "DIR",
          "data directory (default $PALISADE_CP_DATA_DIR or /var/lib/palisade-cp)"};
}

std::string usesText(int uses) { return uses == 1 ? "one use" : std::to_string(uses) + " uses"; }

int createRun(const Args& args, Io& io) {
  if (!args.positional.empty()) {
    io.err << "Error: unexpected argument \"" << args.positional.front()
           << "\"\nUsage: palisadectl token create --spiffe-id ID [--ttl D] [--uses N]\n";
    return kExitUsage;
  }
  if (!args.has("spiffe-id")) {
    io.err << "Error: --spiffe-id is required\n";
    return kExitUsage;
  }
  auto ttl = policy::parseDuration(args.get("ttl", kDefaultTtl));
  if (!ttl.ok()) {
    return fail(io, ttl.error(), kExitUsage);
  }
  int uses = 1;
  if (args.has("uses")) {
    const std::string text = args.get("uses");
    // Digits only (no sign, no spaces); the store checks the range.
    if (text.empty() || text.size() > 9 ||
        text.find_first_not_of("0123456789") != std::string::npos) {
      io.err << "Error: --uses: expected a whole number from 1 to " << cp::kJoinTokenMaxUses
             << ", got \"" << text << "\"\n";
      return kExitUsage;
    }
    uses = std::stoi(text);
  }
  const std::string dir = cp::joinTokenDir(dataDir(args));
  auto store = cp::JoinTokenStore::open(dir);
  if (!store.ok()) {
    return fail(io, store.error(), kExitUsage);
  }
  const std::time_t now = std::time(nullptr);
  auto token = (*store)->create(args.get("spiffe-id"), *ttl, uses, now);
  if (!token.ok()) {
    return fail(io, token.error(), kExitUsage);
  }
  // stdout holds the token alone, so that TOKEN=$(palisadectl token create ...) works.
  io.out << *token << "\n";
  io.err << "join token " << cp::joinTokenId(*token) << " for " << args.get("spiffe-id") << ": "
         << usesText(uses) << ", expires " << common::formatTime(now + ttl->count()) << " (in "
         << policy::shortDuration(*ttl) << "). It is shown only this once; the store keeps "
         << "its hash.\n";
  return kExitOk;
}

void printTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(width[i] - row[i].size() + 3, ' ');
      }
    }
    out << line << "\n";
  }
}

int listRun(const Args& args, Io& io) {
  if (!args.positional.empty()) {
    io.err << "Error: unexpected argument \"" << args.positional.front()
           << "\"\nUsage: palisadectl token list [--data-dir DIR]\n";
    return kExitUsage;
  }
  const std::string dir = cp::joinTokenDir(dataDir(args));
  if (!storeExists(dir)) {
    io.err << "No join tokens in " << dir << ".\n";
    return kExitOk;
  }
  auto store = cp::JoinTokenStore::open(dir);
  if (!store.ok()) {
    return fail(io, store.error(), kExitUsage);
  }
  const std::time_t now = std::time(nullptr);
  auto tokens = (*store)->list(now);
  if (!tokens.ok()) {
    return fail(io, tokens.error(), kExitUsage);
  }
  if (tokens->empty()) {
    io.err << "No join tokens in " << dir << ".\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "SPIFFE ID", "TTL", "EXPIRES", "USES"}};
  for (const cp::JoinTokenInfo& t : *tokens) {
    rows.push_back(
        {t.sha256.substr(0, cp::kJoinTokenIdLength), t.spiffe_id,
         t.expired ? "<expired>" : policy::shortDuration(std::chrono::seconds(t.expires - now)),
         common::formatTime(t.expires),
         std::to_string(t.uses_left) + "/" + std::to_string(t.max_uses)});
  }
  printTable(rows, io.out);
  return kExitOk;
}

int revokeRun(const Args& args, Io& io) {
  if (args.positional.size() != 1) {
    io.err << "Error: expected one token ID\nUsage: palisadectl token revoke ID [--data-dir "
              "DIR]\n";
    return kExitUsage;
  }
  const std::string dir = cp::joinTokenDir(dataDir(args));
  if (!storeExists(dir)) {
    io.err << "Error: no join tokens in " << dir << "\n";
    return kExitNegative;
  }
  auto store = cp::JoinTokenStore::open(dir);
  if (!store.ok()) {
    return fail(io, store.error(), kExitUsage);
  }
  auto revoked = (*store)->revoke(args.positional[0]);
  if (!revoked.ok()) {
    return fail(io, revoked.error(),
                revoked.error().code == ErrorCode::kNotFound ? kExitNegative : kExitUsage);
  }
  io.out << "revoked join token " << revoked->sha256.substr(0, cp::kJoinTokenIdLength);
  if (!revoked->spiffe_id.empty()) {
    io.out << " for " << revoked->spiffe_id;
  }
  io.out << "\n";
  return kExitOk;
}

}  // namespace

Command tokenCommand() {
  Command create;
  create.name = "create";
  create.summary = "Create a join token bound to a SPIFFE ID";
  create.usage = "palisadectl token create --spiffe-id ID [--ttl D] [--uses N] [--data-dir DIR]";
  create.long_help =
      "Create a join token: a workload that presents it to the control plane before it\n"
      "expires is given the SPIFFE ID it is bound to, once (the default) or --uses times.\n"
      "The token is printed alone on stdout and shown only this once: the control plane keeps\n"
      "only its SHA-256, in DIR/join-tokens/. A note on what was made goes to stderr.\n\n"
      "--ttl is 1s to 720h (30 days); --uses is 1 to 1000.";
  create.examples =
      "  TOKEN=$(palisadectl token create --spiffe-id spiffe://cluster.local/ns/default/sa/web \\\n"
      "    --ttl 10m --data-dir /var/lib/palisade-cp)\n"
      "  palisadectl token create --spiffe-id spiffe://cluster.local/ns/edge/sa/gateway \\\n"
      "    --ttl 24h --uses 3\n";
  create.flags = {
      {"spiffe-id", "ID", "the SPIFFE ID the token grants (required)"},
      {"ttl", "D", "how long the token can be redeemed (default 1h, at most 720h)"},
      {"uses", "N", "how many times it can be redeemed (default 1, at most 1000)"},
      dataDirFlag(),
  };
  create.run = createRun;

  Command list;
  list.name = "list";
  list.summary = "List join tokens that have not been used up";
  list.usage = "palisadectl token list [--data-dir DIR]";
  list.long_help =
      "List the join tokens in the control plane's data directory: ID (the first 12 hex\n"
      "digits of the token's SHA-256, for 'token revoke'), SPIFFE ID, time left, expiry and\n"
      "uses left of the total. Tokens themselves are never stored, so never listed. An expired\n"
      "token is listed as <expired> until it is pruned or presented (either deletes it).";
  list.flags = {dataDirFlag()};
  list.run = listRun;

  Command revoke;
  revoke.name = "revoke";
  revoke.summary = "Revoke a join token";
  revoke.usage = "palisadectl token revoke ID [--data-dir DIR]";
  revoke.long_help =
      "Delete a join token so that it can no longer be redeemed. ID is the token's ID as\n"
      "'token list' prints it (any unambiguous prefix of at least 8 hex digits), or the token\n"
      "itself, when that is what leaked. Exit 1 when no token matches.";
  revoke.examples = "  palisadectl token revoke 3f9a1c0be2d4\n";
  revoke.flags = {dataDirFlag()};
  revoke.run = revokeRun;

  Command token;
  token.name = "token";
  token.summary = "Manage join tokens for workload attestation";
  token.long_help =
      "Join tokens attest workloads that have no platform identity to show (a VM, a laptop, a\n"
      "bare-metal host): each token is bound to one SPIFFE ID, expires, and is redeemed once\n"
      "or a bounded number of times, like SPIRE's join tokens or kubeadm's bootstrap tokens.";
  token.children.push_back(std::move(create));
  token.children.push_back(std::move(list));
  token.children.push_back(std::move(revoke));
  return token;
}

}  // namespace palisade::cli
