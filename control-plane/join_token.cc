#include "control-plane/join_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "common/openssl.h"

namespace palisade::cp {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr std::size_t kHashHexLength = 64;
constexpr std::string_view kRecordSuffix = ".json";
constexpr std::string_view kLockFile = ".lock";
// A record is ~250 bytes; anything much larger was not written by us.
constexpr std::size_t kMaxRecordSize = 4096;
constexpr int kRecordVersion = 1;

std::time_t nowOr(std::time_t t) { return t != 0 ? t : std::time(nullptr); }

Error ioError(const std::string& what) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(errno)};
}

std::string pathIn(const std::string& dir, std::string_view name) {
  return (fs::path(dir) / std::string(name)).string();
}

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// RFC 4648 section 5, without padding.
std::string base64Url(const std::uint8_t* data, std::size_t size) {
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kBase64Url[(v >> 18) & 63];
    out += kBase64Url[(v >> 12) & 63];
    out += kBase64Url[(v >> 6) & 63];
    out += kBase64Url[v & 63];
  }
  if (size - i == 1) {
    const std::uint32_t v = data[i] << 16;
    out += kBase64Url[(v >> 18) & 63];
    out += kBase64Url[(v >> 12) & 63];
  } else if (size - i == 2) {
    const std::uint32_t v = (data[i] << 16) | (data[i + 1] << 8);
    out += kBase64Url[(v >> 18) & 63];
    out += kBase64Url[(v >> 12) & 63];
    out += kBase64Url[(v >> 6) & 63];
  }
  return out;
}

// Exactly what create() makes: the prefix, 43 base64url characters, and a last character
// whose two low bits are zero (32 bytes fill only 4 of its 6 bits), so that one token has one
// spelling.
bool wellFormed(std::string_view token) {
  if (token.size() != kJoinTokenLength || !token.starts_with(kJoinTokenPrefix)) {
    return false;
  }
  std::string_view body = token.substr(kJoinTokenPrefix.size());
  for (char c : body) {
    if (kBase64Url.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return kBase64Url.find(body.back()) % 4 == 0;
}

bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

std::string sha256Hex(std::string_view text) {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), md.data(), &n, EVP_sha256(), nullptr) != 1 || n != 32) {
    // SHA-256 of bytes in memory has no way to fail short of a broken OpenSSL.
    std::fprintf(stderr, "join_token: SHA-256 failed: %s\n", common::opensslErrors().c_str());
    std::abort();
  }
  return common::hex(md.data(), n);
}

// "<64 lowercase hex>.json": the only names the store reads. Temporary files of
// writeFileAtomic (".<name>.XXXXXX") and the lock file are not records.
bool isRecordName(std::string_view name) {
  if (name.size() != kHashHexLength + kRecordSuffix.size() || !name.ends_with(kRecordSuffix)) {
    return false;
  }
  return std::all_of(name.begin(), name.begin() + kHashHexLength, isHex);
}

struct Record {
  std::string sha256;
  std::string spiffe_id;
  std::time_t created = 0;
  std::time_t expires = 0;
  int max_uses = 0;
  int uses_left = 0;
};

std::string encode(const Record& r) {
  // ordered_json: keys stay in this order, for people who cat the file.
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["version"] = kRecordVersion;
  j["sha256"] = r.sha256;
  j["spiffe_id"] = r.spiffe_id;
  j["created"] = common::formatTime(r.created);
  j["expires"] = common::formatTime(r.expires);
  j["max_uses"] = r.max_uses;
  j["uses_left"] = r.uses_left;
  return j.dump(2) + "\n";
}

// `path` names the record in errors; `hash` is the hash its file name says it holds.
Result<Record> decode(std::string_view text, const std::string& path, const std::string& hash) {
  auto corrupt = [&](const std::string& what) {
    return invalidArgument(std::string(kJoinTokenCorrupt) + path + ": " + what);
  };
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return corrupt("not a JSON object");
  }
  auto str = [&](const char* key) -> const std::string* {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto integer = [&](const char* key, long long lo, long long hi, int* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
      return false;
    }
    const long long v = it->get<long long>();
    if (v < lo || v > hi) {
      return false;
    }
    *out = static_cast<int>(v);
    return true;
  };
  int version = 0;
  if (!integer("version", kRecordVersion, kRecordVersion, &version)) {
    return corrupt("version is not 1");
  }
  Record r;
  const std::string* sha = str("sha256");
  // The file name found the record; the hash inside must agree, so a record copied or renamed
  // under another token's name does not redeem it. Constant time, as for any secret-derived
  // value.
  if (sha == nullptr || sha->size() != hash.size() ||
      CRYPTO_memcmp(sha->data(), hash.data(), hash.size()) != 0) {
    return corrupt("sha256 does not match the file name");
  }
  r.sha256 = *sha;
  const std::string* id = str("spiffe_id");
  if (id == nullptr || !policy::SpiffeId::parse(*id).ok()) {
    return corrupt("bad spiffe_id");
  }
  r.spiffe_id = *id;
  const std::string* created = str("created");
  const std::string* expires = str("expires");
  auto c = created != nullptr ? common::parseTime(*created) : Result<std::time_t>(Error{});
  auto e = expires != nullptr ? common::parseTime(*expires) : Result<std::time_t>(Error{});
  if (!c.ok() || !e.ok()) {
    return corrupt("bad created or expires time");
  }
  r.created = *c;
  r.expires = *e;
  if (!integer("max_uses", 1, kJoinTokenMaxUses, &r.max_uses) ||
      !integer("uses_left", 0, r.max_uses, &r.uses_left)) {
    return corrupt("bad max_uses or uses_left");
  }
  return r;
}

// Reads a record file: kNotFound when there is none, kIo when it cannot be read. Symbolic
// links are refused (O_NOFOLLOW) and the size is bounded.
Result<std::string> readRecord(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Error{ErrorCode::kNotFound, path + ": no such record"};
    }
    return ioError(path + ": cannot read");
  }
  std::string data;
  char buf[1024];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      Error e = ioError(path + ": cannot read");
      ::close(fd);
      return e;
    }
    if (n == 0) {
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > kMaxRecordSize) {
      ::close(fd);
      return invalidArgument(std::string(kJoinTokenCorrupt) + path + ": larger than 4096 bytes");
    }
  }
  ::close(fd);
  return data;
}

// A rename or unlink is durable only once the directory is synced: without it, a crash
// right after redeeming a one-time token could bring its record back.
Status syncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return ioError(dir + ": cannot open");
  }
  if (::fsync(fd) != 0) {
    Error e = ioError(dir + ": cannot fsync");
    ::close(fd);
    return e;
  }
  ::close(fd);
  return Ok{};
}

Status removeRecord(const std::string& dir, const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ioError(path + ": cannot remove");
  }
  return syncDir(dir);
}

// An exclusive flock(2) on DIR/.lock for as long as it lives. flock locks belong to an open
// file description, so each holder opens the file itself; two threads sharing one descriptor
// would not exclude each other (the store's mutex covers that case anyway).
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir) {
    const std::string path = pathIn(dir, kLockFile);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return ioError(path + ": cannot open");
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        Error e = ioError(path + ": cannot lock");
        ::close(fd);
        return e;
      }
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock() {
    if (fd_ >= 0) {
      ::close(fd_);  // releases the lock
    }
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

JoinTokenInfo infoOf(const Record& r, std::time_t now) {
  JoinTokenInfo info;
  info.sha256 = r.sha256;
  info.spiffe_id = r.spiffe_id;
  info.created = r.created;
  info.expires = r.expires;
  info.uses_left = r.uses_left;
  info.max_uses = r.max_uses;
  info.expired = now >= r.expires;
  return info;
}

// Names of the records in `dir`, sorted.
Result<std::vector<std::string>> recordNames(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (isRecordName(name)) {
      names.push_back(std::move(name));
    }
  }
  if (ec) {
    return Error{ErrorCode::kIo, dir + ": cannot list: " + ec.message()};
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::string_view joinTokenRefusalReason(const Error& error) {
  if (error.message == kJoinTokenMalformed) {
    return kJoinTokenReasonMalformed;
  }
  if (error.message == kJoinTokenUnknown) {
    return kJoinTokenReasonUnknown;
  }
  if (error.message == kJoinTokenExpired) {
    return kJoinTokenReasonExpired;
  }
  if (error.message == kJoinTokenExhausted) {
    return kJoinTokenReasonExhausted;
  }
  return kJoinTokenReasonError;
}

std::string joinTokenId(std::string_view token) {
  return sha256Hex(token).substr(0, kJoinTokenIdLength);
}

std::string joinTokenDir(const std::string& data_dir) {
  return pathIn(data_dir, kJoinTokenDirName);
}

Result<std::unique_ptr<JoinTokenStore>> JoinTokenStore::open(const std::string& dir) {
  // Each missing directory, parents included, is made 0700 (create_directories would use
  // 0777 less the umask).
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = fs::path(dir).lexically_normal(); !p.empty() && !fs::exists(p, ec);
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) {
      break;
    }
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
      return ioError(it->string() + ": cannot create");
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return ioError(dir + ": cannot open");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error{ErrorCode::kIo, dir + ": not a directory"};
  }
  if ((st.st_mode & 022) != 0) {
    return invalidArgument(std::string(kJoinTokenDirWritable) + dir);
  }
  return std::unique_ptr<JoinTokenStore>(new JoinTokenStore(dir));
}

Result<std::string> JoinTokenStore::create(std::string_view spiffe_id, std::chrono::seconds ttl,
                                           int max_uses, std::time_t now) {
  auto id = policy::SpiffeId::parse(spiffe_id);
  if (!id.ok()) {
    return id.error();
  }
  if (id->path().empty()) {
    return invalidArgument(std::string(kJoinTokenIdWithoutPath) + std::string(spiffe_id));
  }
  if (ttl < std::chrono::seconds(1)) {
    return invalidArgument(std::string(kJoinTokenTtlNotPositive));
  }
  if (ttl > kJoinTokenMaxTtl) {
    return invalidArgument(std::string(kJoinTokenTtlTooLong));
  }
  if (max_uses < 1 || max_uses > kJoinTokenMaxUses) {
    return invalidArgument(std::string(kJoinTokenUsesRange));
  }
  std::array<std::uint8_t, kJoinTokenRandomBytes> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    return common::opensslError("join_token: no randomness for a token");
  }
  std::string token = std::string(kJoinTokenPrefix) + base64Url(random.data(), random.size());
  OPENSSL_cleanse(random.data(), random.size());

  Record r;
  r.sha256 = sha256Hex(token);
  r.spiffe_id = std::string(id->uri());
  r.created = nowOr(now);
  r.expires = r.created + static_cast<std::time_t>(ttl.count());
  r.max_uses = max_uses;
  r.uses_left = max_uses;
  // A new name: nothing to race with, so no lock. (Two tokens with one SHA-256 would take
  // 2^128 tries.)
  const std::string path = pathIn(dir_, r.sha256 + std::string(kRecordSuffix));
  if (Status s = common::writeFileAtomic(path, encode(r), 0600); !s.ok()) {
    return s.error();
  }
  return token;
}

Result<RedeemedJoinToken> JoinTokenStore::redeem(std::string_view token, std::time_t now) {
  // Checked before anything else, so no input beyond 47 bytes is hashed or logged.
  if (!wellFormed(token)) {
    return invalidArgument(std::string(kJoinTokenMalformed));
  }
  now = nowOr(now);
  const std::string hash = sha256Hex(token);
  const std::string path = pathIn(dir_, hash + std::string(kRecordSuffix));

  std::lock_guard<std::mutex> guard(mutex_);
  auto lock = DirLock::acquire(dir_);
  if (!lock.ok()) {
    return lock.error();
  }
  auto text = readRecord(path);
  if (!text.ok()) {
    if (text.error().code == ErrorCode::kNotFound) {
      return invalidArgument(std::string(kJoinTokenUnknown));
    }
    return text.error();
  }
  auto record = decode(*text, path, hash);
  if (!record.ok()) {
    return record.error();
  }
  if (now >= record->expires) {
    // Refused whether or not the record goes away; a failed removal is pruneExpired()'s.
    (void)removeRecord(dir_, path);
    return invalidArgument(std::string(kJoinTokenExpired));
  }
  if (record->uses_left <= 0) {
    (void)removeRecord(dir_, path);
    return invalidArgument(std::string(kJoinTokenExhausted));
  }
  // The use is spent on disk before it is granted: if that fails, the redemption fails.
  record->uses_left -= 1;
  if (record->uses_left == 0) {
    if (Status s = removeRecord(dir_, path); !s.ok()) {
      return s.error();
    }
  } else if (Status s = common::writeFileAtomic(path, encode(*record), 0600); !s.ok()) {
    return s.error();
  } else if (Status d = syncDir(dir_); !d.ok()) {
    return d.error();
  }
  auto id = policy::SpiffeId::parse(record->spiffe_id);  // decode() checked it
  return RedeemedJoinToken{std::move(*id), hash.substr(0, kJoinTokenIdLength), record->expires,
                           record->uses_left, record->max_uses};
}

Result<std::vector<JoinTokenInfo>> JoinTokenStore::list(std::time_t now) const {
  now = nowOr(now);
  auto names = recordNames(dir_);
  if (!names.ok()) {
    return names.error();
  }
  std::vector<JoinTokenInfo> out;
  for (const std::string& name : *names) {
    const std::string path = pathIn(dir_, name);
    auto text = readRecord(path);
    if (!text.ok()) {
      if (text.error().code == ErrorCode::kNotFound) {
        continue;  // redeemed or revoked since the directory was read
      }
      return text.error();
    }
    auto record = decode(*text, path, name.substr(0, kHashHexLength));
    if (!record.ok()) {
      return record.error();
    }
    out.push_back(infoOf(*record, now));
  }
  std::sort(out.begin(), out.end(), [](const JoinTokenInfo& a, const JoinTokenInfo& b) {
    return std::tie(a.expires, a.sha256) < std::tie(b.expires, b.sha256);
  });
  return out;
}

Result<JoinTokenInfo> JoinTokenStore::revoke(std::string_view id_or_token) {
  // A leaked token is revoked by itself: its hash is the full id.
  std::string prefix = wellFormed(id_or_token) ? sha256Hex(id_or_token) : std::string(id_or_token);
  std::transform(prefix.begin(), prefix.end(), prefix.begin(),
                 [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c + 32) : c; });
  if (prefix.size() < kJoinTokenMinRevokePrefix || prefix.size() > kHashHexLength ||
      !std::all_of(prefix.begin(), prefix.end(), isHex)) {
    // The input is not echoed: it may be a mistyped token.
    return invalidArgument(std::string(kJoinTokenBadPrefix));
  }
  std::lock_guard<std::mutex> guard(mutex_);
  auto lock = DirLock::acquire(dir_);
  if (!lock.ok()) {
    return lock.error();
  }
  auto names = recordNames(dir_);
  if (!names.ok()) {
    return names.error();
  }
  std::vector<std::string> matches;
  for (const std::string& name : *names) {
    if (name.starts_with(prefix)) {
      matches.push_back(name);
    }
  }
  if (matches.empty()) {
    return Error{ErrorCode::kNotFound, std::string(kJoinTokenNoMatch) + prefix};
  }
  if (matches.size() > 1) {
    return invalidArgument(std::string(kJoinTokenAmbiguous) + prefix);
  }
  const std::string hash = matches.front().substr(0, kHashHexLength);
  const std::string path = pathIn(dir_, matches.front());
  JoinTokenInfo info;
  info.sha256 = hash;
  // An unreadable record is revoked all the same: revoking is how an operator gets rid of it.
  if (auto text = readRecord(path); text.ok()) {
    if (auto record = decode(*text, path, hash); record.ok()) {
      info = infoOf(*record, nowOr(0));
    }
  }
  if (Status s = removeRecord(dir_, path); !s.ok()) {
    return s.error();
  }
  return info;
}

Result<std::size_t> JoinTokenStore::pruneExpired(std::time_t now) {
  now = nowOr(now);
  std::lock_guard<std::mutex> guard(mutex_);
  auto lock = DirLock::acquire(dir_);
  if (!lock.ok()) {
    return lock.error();
  }
  auto names = recordNames(dir_);
  if (!names.ok()) {
    return names.error();
  }
  std::size_t removed = 0;
  for (const std::string& name : *names) {
    const std::string path = pathIn(dir_, name);
    auto text = readRecord(path);
    if (!text.ok()) {
      continue;
    }
    auto record = decode(*text, path, name.substr(0, kHashHexLength));
    if (!record.ok() || (now < record->expires && record->uses_left > 0)) {
      continue;
    }
    if (::unlink(path.c_str()) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      return ioError(path + ": cannot remove");
    }
  }
  if (removed > 0) {
    if (Status s = syncDir(dir_); !s.ok()) {
      return s.error();
    }
  }
  return removed;
}

}  // namespace palisade::cp
