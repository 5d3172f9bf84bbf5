// Fuzz target: SpiffeId::parse. Besides not crashing, a parsed ID must keep the standard's
// invariants (checked here so the fuzzer finds logic errors, not only memory errors).

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/spiffe_id.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto id = palisade::policy::SpiffeId::parse(text);
  if (!id.ok()) {
    return 0;
  }
  // Round trip and structure: what parsed is what was given, and its parts recompose it.
  if (id->uri() != text || text.size() > 2048 || id->trustDomain().empty() ||
      id->trustDomain().size() > 255 || id->path().ends_with('/') ||
      id->path().find("//") != std::string_view::npos ||
      std::string("spiffe://").append(id->trustDomain()).append(id->path()) != text) {
    std::abort();
  }
  // Parsing is idempotent.
  auto again = palisade::policy::SpiffeId::parse(id->uri());
  if (!again.ok() || !(*again == *id)) {
    std::abort();
  }
  return 0;
}
