#include "common/openssl.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace palisade::common {

X509Ptr share(X509* cert) {
  X509_up_ref(cert);
  return X509Ptr(cert);
}

std::string opensslErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out;
}

Error opensslError(std::string_view what) {
  std::string message(what);
  if (std::string errors = opensslErrors(); !errors.empty()) {
    message.append(": ").append(errors);
  }
  return invalidArgument(std::move(message));
}

namespace {

BioPtr memBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

template <typename Write>
std::string toPem(Write write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  write(bio.get());
  return bioString(bio.get());
}

}  // namespace

Result<std::vector<X509Ptr>> parseCertificatesPem(std::string_view pem) {
  BioPtr bio = memBio(pem);
  std::vector<X509Ptr> out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert);
  }
  // Reading stops with "no start line" at the end of the text; anything else is an error.
  unsigned long last = ERR_peek_last_error();
  if (last == 0 || ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
    if (out.empty()) {
      return invalidArgument("certificate: no PEM certificate found");
    }
    return out;
  }
  return opensslError("certificate: cannot parse PEM");
}

Result<EvpPkeyPtr> parsePrivateKeyPem(std::string_view pem) {
  BioPtr bio = memBio(pem);
  // No passphrase callback may prompt on a terminal: an encrypted key is an error.
  bool asked_passphrase = false;
  auto no_passphrase = [](char*, int, int, void* asked) {
    *static_cast<bool*>(asked) = true;
    return -1;
  };
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, &asked_passphrase);
  if (key == nullptr) {
    if (asked_passphrase) {
      ERR_clear_error();
      return invalidArgument(
          "private key: the key is encrypted; decrypt it first (openssl pkey -in KEY -out "
          "PLAIN)");
    }
    return opensslError("private key: cannot parse PEM (PKCS#8, PKCS#1 or SEC1 expected)");
  }
  return EvpPkeyPtr(key);
}

Result<X509ReqPtr> parseCsrPem(std::string_view pem) {
  BioPtr bio = memBio(pem);
  X509_REQ* req = PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr);
  if (req == nullptr) {
    return opensslError("csr: cannot parse PEM");
  }
  return X509ReqPtr(req);
}

std::string certificatePem(X509* cert) {
  return toPem([&](BIO* b) { PEM_write_bio_X509(b, cert); });
}

std::string certificatesPem(const std::vector<X509Ptr>& certs) {
  std::string out;
  for (const X509Ptr& c : certs) {
    out += certificatePem(c.get());
  }
  return out;
}

std::string privateKeyPem(EVP_PKEY* key) {
  return toPem([&](BIO* b) {
    PEM_write_bio_PKCS8PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

std::string csrPem(X509_REQ* csr) {
  return toPem([&](BIO* b) { PEM_write_bio_X509_REQ(b, csr); });
}

std::string crlPem(X509_CRL* crl) {
  return toPem([&](BIO* b) { PEM_write_bio_X509_CRL(b, crl); });
}

Sha256 certificateSha256(X509* cert) {
  Sha256 out{};
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), out.data(), &n);
  return out;
}

std::string hex(const std::uint8_t* data, std::size_t size) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

std::string serialHex(X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* text = BN_bn2hex(bn.get());
  std::string out(text);
  OPENSSL_free(text);
  // BN_bn2hex pads to whole bytes ("0A1B"); the canonical form has no leading zeros.
  std::size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? "0" : out.substr(first);
}

namespace {
std::time_t asn1Time(const ASN1_TIME* t) {
  struct tm tm {};
  ASN1_TIME_to_tm(t, &tm);
  return timegm(&tm);
}
}  // namespace

std::time_t notBefore(X509* cert) { return asn1Time(X509_get0_notBefore(cert)); }
std::time_t notAfter(X509* cert) { return asn1Time(X509_get0_notAfter(cert)); }

std::string formatTime(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::time_t> parseTime(std::string_view text) {
  // RFC 3339 in UTC ("Z") or with a numeric offset; fractional seconds are dropped.
  struct tm tm {};
  std::string s(text);
  // strptime accepts one-digit fields; RFC 3339 does not ("2026-1-2T3:04:05Z").
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  bool shaped = s.size() >= kShape.size();
  for (std::size_t i = 0; shaped && i < kShape.size(); ++i) {
    const char c = s[i];
    shaped = kShape[i] == 'd' ? (c >= '0' && c <= '9') : (c == kShape[i] || (i == 10 && c == 't'));
  }
  const char* rest = shaped ? strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) : nullptr;
  if (rest == nullptr) {
    return invalidArgument("time: expected RFC 3339 (2026-01-02T15:04:05Z), got \"" + s + "\"");
  }
  if (*rest == '.') {
    ++rest;
    while (*rest >= '0' && *rest <= '9') {
      ++rest;
    }
  }
  long offset = 0;
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if ((*rest == '+' || *rest == '-') && std::strlen(rest) == 6 && rest[3] == ':') {
    int h = 0;
    int m = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &h, &m) != 2) {
      return invalidArgument("time: bad offset in \"" + s + "\"");
    }
    offset = (h * 3600L + m * 60L) * (*rest == '+' ? 1 : -1);
    rest += 6;
  } else {
    return invalidArgument("time: RFC 3339 needs Z or an offset: \"" + s + "\"");
  }
  if (*rest != '\0') {
    return invalidArgument("time: trailing text in \"" + s + "\"");
  }
  return timegm(&tm) - offset;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{ErrorCode::kIo, path + ": cannot read: " + std::strerror(errno)};
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Result<std::vector<X509Ptr>> readCertificatesFile(const std::string& path) {
  auto pem = readFile(path);
  if (!pem.ok()) {
    return pem.error();
  }
  auto certs = parseCertificatesPem(*pem);
  if (!certs.ok()) {
    return Error{certs.error().code, path + ": " + certs.error().message};
  }
  return certs;
}

Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  std::filesystem::path target(path);
  std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  std::string hidden = ".";
  hidden.append(target.filename().string()).append(".XXXXXX");
  std::string tmpl = (dir / hidden).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());  // created 0600
  if (fd < 0) {
    return Error{ErrorCode::kIo, path + ": cannot create: " + std::strerror(errno)};
  }
  auto fail = [&](const char* what) {
    Error e{ErrorCode::kIo, path + ": cannot " + what + ": " + std::strerror(errno)};
    ::close(fd);
    ::unlink(name.data());
    return e;
  };
  if (::fchmod(fd, mode) != 0) {
    return fail("chmod");
  }
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    return fail("fsync");
  }
  if (::close(fd) != 0) {
    ::unlink(name.data());
    return Error{ErrorCode::kIo, path + ": cannot close: " + std::strerror(errno)};
  }
  if (::rename(name.data(), path.c_str()) != 0) {
    Error e{ErrorCode::kIo, path + ": cannot rename into place: " + std::strerror(errno)};
    ::unlink(name.data());
    return e;
  }
  return Ok{};
}

}  // namespace palisade::common
