#include "policy/path_normalization.h"

#include <array>

namespace palisade::policy {

int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

namespace {

// RFC 3986 2.3 unreserved characters: percent-encodings of them are decoded.
bool unreserved(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 3986 5.2.4, on a path that starts with '/'.
void removeDotSegments(std::string& p) {
  std::string out;
  out.reserve(p.size());
  std::size_t i = 0;
  while (i < p.size()) {
    // p[i] is '/' here: look at the segment after it.
    std::size_t end = p.find('/', i + 1);
    if (end == std::string::npos) {
      end = p.size();
    }
    std::string_view seg(p.data() + i + 1, end - i - 1);
    const bool last = end == p.size();
    if (seg == ".") {
      if (last) {
        out.push_back('/');
      }
    } else if (seg == "..") {
      std::size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      if (last) {
        out.push_back('/');
      }
    } else {
      out.push_back('/');
      out.append(seg);
    }
    i = end;
  }
  if (out.empty()) {
    out.assign(1, '/');
  }
  p.swap(out);
}

}  // namespace

std::optional<PathNormalization> parsePathNormalization(std::string_view name) {
  if (name == "NONE") {
    return PathNormalization::kNone;
  }
  if (name == "BASE" || name == "DEFAULT") {
    return PathNormalization::kBase;
  }
  if (name == "MERGE_SLASHES") {
    return PathNormalization::kMergeSlashes;
  }
  if (name == "DECODE_AND_MERGE_SLASHES") {
    return PathNormalization::kDecodeAndMergeSlashes;
  }
  return std::nullopt;
}

const char* pathNormalizationName(PathNormalization n) {
  switch (n) {
    case PathNormalization::kNone:
      return "NONE";
    case PathNormalization::kBase:
      return "BASE";
    case PathNormalization::kMergeSlashes:
      return "MERGE_SLASHES";
    case PathNormalization::kDecodeAndMergeSlashes:
      return "DECODE_AND_MERGE_SLASHES";
  }
  return "?";
}

bool normalizePath(std::string_view path, PathNormalization mode, std::string& out) {
  out.clear();
  std::size_t q = path.find_first_of("?#");
  std::string_view p = path.substr(0, q);
  std::string_view rest = q == std::string_view::npos ? std::string_view() : path.substr(q);
  if (mode == PathNormalization::kNone || path == "*") {
    out.assign(path);
    return true;
  }
  if (!p.empty() && p[0] != '/' && p[0] != '\\') {
    return false;  // origin form only (RFC 9112 3.2.1); "" stands for "/"
  }
  out.reserve(path.size());
  const bool decode_slashes = mode == PathNormalization::kDecodeAndMergeSlashes;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '%' && i + 2 < p.size()) {
      const int hi = hexDigitValue(p[i + 1]);
      const int lo = hexDigitValue(p[i + 2]);
      if (hi >= 0 && lo >= 0) {
        const int v = hi * 16 + lo;
        if (v == 0) {
          return false;  // "%00: the request will always be rejected with HTTP code 400"
        }
        if (unreserved(v)) {
          out.push_back(static_cast<char>(v));
          i += 2;
          continue;
        }
        if (decode_slashes && (v == '/' || v == '\\')) {
          out.push_back('/');
          i += 2;
          continue;
        }
      }
    }
    if (c == '\0') {
      return false;
    }
    out.push_back(c == '\\' ? '/' : c);
  }
  if (out.empty()) {
    out.assign(1, '/');
  }
  // Decoding is done once, but "%%300" decodes to "%00": the app would decode that again
  // into a NUL the check above never saw. Refuse it like a %00 in the request itself.
  for (std::size_t i = 0; i + 2 < out.size(); ++i) {
    if (out[i] == '%' && out[i + 1] == '0' && out[i + 2] == '0') {
      return false;
    }
  }
  removeDotSegments(out);
  if (mode == PathNormalization::kMergeSlashes || decode_slashes) {
    std::string merged;
    merged.reserve(out.size());
    for (char c : out) {
      if (c == '/' && !merged.empty() && merged.back() == '/') {
        continue;
      }
      merged.push_back(c);
    }
    out.swap(merged);
  }
  out.append(rest);
  return true;
}

}  // namespace palisade::policy
