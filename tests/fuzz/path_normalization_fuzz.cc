// Fuzz target: request path normalization. Besides not crashing: a normalized path starts
// with '/', holds no "." or ".." segment, no backslash and no %00, and normalizing it again
// changes nothing (a second proxy would see what the first one authorized).

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/path_normalization.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using palisade::policy::PathNormalization;
  if (size == 0) {
    return 0;
  }
  const auto mode = static_cast<PathNormalization>(data[0] % 4);
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out;
  if (!palisade::policy::normalizePath(in, mode, out) || mode == PathNormalization::kNone ||
      out == "*") {
    return 0;
  }
  std::string_view path(out);
  path = path.substr(0, path.find_first_of("?#"));
  if (path.empty() || path[0] != '/' || path.find('\\') != std::string_view::npos ||
      path.find("/./") != std::string_view::npos || path.find("/../") != std::string_view::npos ||
      path.ends_with("/.") || path.ends_with("/..")) {
    std::abort();
  }
  // Whatever reaches the app holds no %00, encoded or formed by decoding.
  if (path.find("%00") != std::string_view::npos) {
    std::abort();
  }
  // Decoding happens once, so "%252e" may become "%2e" and decode further on a second pass;
  // apart from percent signs, the second pass is the identity.
  std::string again;
  const bool second = palisade::policy::normalizePath(out, mode, again);
  if (out.find('%') == std::string::npos && (!second || again != out)) {
    std::abort();
  }
  return 0;
}
