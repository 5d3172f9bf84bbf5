#pragma once

// Request path normalization before authorization, as Istio's meshConfig.pathNormalization
// defines it (istio.io/latest/docs/reference/config/security/normalization): the normalized
// path is what policies see and what the app receives, so `/x/../admin`, `/%61dmin` or
// `\admin` cannot slip past a DENY on `/admin`. Only the path is changed; the query and
// fragment (from the first '?' or '#') are kept as received.
//   NONE                      nothing (vulnerable to CVE-2021-31920)
//   BASE (the default)        %00 rejected; %2D %2E %30-%39 %41-%5A %5F %61-%7A %7E decoded
//                             once; '\' becomes '/'; "." and ".." segments resolved (RFC 3986
//                             5.2.4)
//   MERGE_SLASHES             BASE, then "//" merged into "/"
//   DECODE_AND_MERGE_SLASHES  %2F and %5C decoded first, then MERGE_SLASHES
// Thread: any; allocation only into `out`.

#include <optional>
#include <string>
#include <string_view>

namespace palisade::policy {

enum class PathNormalization { kNone, kBase, kMergeSlashes, kDecodeAndMergeSlashes };

std::optional<PathNormalization> parsePathNormalization(std::string_view name);
const char* pathNormalizationName(PathNormalization n);

// Writes the normalized form of `path` into `out`. False when the request must be refused
// with 400 (a %00, also one that decoding formed, as in "%%300"; or a path that does not
// start with '/' other than "*").
bool normalizePath(std::string_view path, PathNormalization mode, std::string& out);

// The value of one hexadecimal digit (either case), or -1 (percent-decoding here and in
// gRPC's grpc-message).
int hexDigitValue(char c);

}  // namespace palisade::policy
