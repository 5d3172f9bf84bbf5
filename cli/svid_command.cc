// palisadectl svid (verify, inspect) and certs check-expiration.

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "cli/commands.h"
#include "common/openssl.h"
#include "common/trust_bundle.h"
#include "common/x509_svid.h"
#include "policy/duration.h"

namespace palisade::cli {
namespace {

namespace fs = std::filesystem;
using policy::parseDuration;
using policy::shortDuration;

int verifyRun(const Args& args, Io& io) {
  if (args.positional.size() != 1 || !args.has("bundle")) {
    io.err << "Error: expected --bundle B.pem and one SVID.pem\n"
              "Usage: palisadectl svid verify --bundle B.pem [--trust-domain TD] [--at RFC3339] "
              "SVID.pem\n";
    return kExitUsage;
  }
  common::VerifyOptions options;
  if (args.has("trust-domain")) {
    options.trust_domain = args.get("trust-domain");
    if (Status s = policy::SpiffeId::validateTrustDomain(*options.trust_domain); !s.ok()) {
      io.err << "Error: --trust-domain: " << s.error().message << "\n";
      return kExitUsage;
    }
  }
  if (args.has("at")) {
    auto at = common::parseTime(args.get("at"));
    if (!at.ok()) {
      io.err << "Error: --at: " << at.error().message << "\n";
      return kExitUsage;
    }
    options.at = *at;
  }
  auto certs = common::readCertificatesFile(args.positional[0]);
  if (!certs.ok()) {
    // Unreadable input is bad input; a file without a valid certificate is an invalid SVID.
    const bool io_error = certs.error().code == ErrorCode::kIo;
    io.err << (io_error ? "Error: " : "") << certs.error().message << "\n";
    return io_error ? kExitUsage : kExitNegative;
  }
  // Roots that name no trust domain belong to --trust-domain, else to the SVID's own.
  std::optional<std::string> default_td = options.trust_domain;
  if (!default_td) {
    if (auto id = common::spiffeIdOf(certs->front().get()); id.ok()) {
      default_td = std::string(id->trustDomain());
    }
  }
  common::BundleSet bundles;
  for (const std::string& b : args.all("bundle")) {
    if (Status s = bundles.addPemFile(b, default_td); !s.ok()) {
      io.err << "Error: " << s.error().message << "\n";
      return kExitUsage;
    }
  }
  std::vector<X509*> intermediates;
  for (std::size_t i = 1; i < certs->size(); ++i) {
    intermediates.push_back((*certs)[i].get());
  }
  auto verified = common::verifySvid(certs->front().get(), intermediates, bundles, options);
  if (!verified.ok()) {
    io.err << args.positional[0] << ": " << verified.error().message << "\n";
    return kExitNegative;
  }
  io.out << verified->id.uri() << "\n";
  return kExitOk;
}

std::string nameText(X509_NAME* name) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string s(data, static_cast<std::size_t>(n));
  return s.empty() ? "(empty)" : s;
}

std::string keyText(X509* cert) {
  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key == nullptr) {
    return "?";
  }
  const int bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char curve[64] = "";
      std::size_t len = 0;
      EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof curve, &len);
      std::string c = curve;
      if (c == "prime256v1") {
        c = "P-256";
      } else if (c == "secp384r1") {
        c = "P-384";
      }
      return "ECDSA " + c;
    }
    case EVP_PKEY_RSA:
      return "RSA " + std::to_string(bits);
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return std::to_string(bits) + "-bit key";
  }
}

std::string keyUsageText(X509* cert) {
  if (!(X509_get_extension_flags(cert) & EXFLAG_KUSAGE)) {
    return "(none)";
  }
  const uint32_t ku = X509_get_key_usage(cert);
  const std::pair<uint32_t, const char*> bits[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"},
                                                   {KU_NON_REPUDIATION, "contentCommitment"},
                                                   {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
                                                   {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
                                                   {KU_KEY_AGREEMENT, "keyAgreement"},
                                                   {KU_KEY_CERT_SIGN, "keyCertSign"},
                                                   {KU_CRL_SIGN, "cRLSign"}};
  std::string out;
  for (const auto& [bit, name] : bits) {
    if (ku & bit) {
      out += (out.empty() ? "" : ", ") + std::string(name);
    }
  }
  return out;
}

std::string extendedKeyUsageText(X509* cert) {
  if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE)) {
    return "(none)";
  }
  const uint32_t xku = X509_get_extended_key_usage(cert);
  const std::pair<uint32_t, const char*> bits[] = {
      {XKU_SSL_SERVER, "serverAuth"}, {XKU_SSL_CLIENT, "clientAuth"},
      {XKU_CODE_SIGN, "codeSigning"}, {XKU_SMIME, "emailProtection"},
      {XKU_OCSP_SIGN, "OCSPSigning"}, {XKU_TIMESTAMP, "timeStamping"}};
  std::string out;
  for (const auto& [bit, name] : bits) {
    if (xku & bit) {
      out += (out.empty() ? "" : ", ") + std::string(name);
    }
  }
  return out.empty() ? "(other)" : out;
}

std::string remainingText(std::time_t end, std::time_t now) {
  if (end <= now) {
    return "expired " + shortDuration(std::chrono::seconds(now - end)) + " ago";
  }
  return shortDuration(std::chrono::seconds(end - now));
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out.empty() ? "(none)" : out;
}

int inspectRun(const Args& args, Io& io) {
  if (args.positional.size() != 1) {
    io.err << "Error: expected one FILE\nUsage: palisadectl svid inspect FILE\n";
    return kExitUsage;
  }
  auto certs = common::readCertificatesFile(args.positional[0]);
  if (!certs.ok()) {
    io.err << "Error: " << certs.error().message << "\n";
    return kExitUsage;
  }
  const std::time_t now = std::time(nullptr);
  for (std::size_t i = 0; i < certs->size(); ++i) {
    X509* c = (*certs)[i].get();
    const bool ca = (X509_get_extension_flags(c) & EXFLAG_CA) != 0;
    const char* role = i == 0 ? (ca ? "CA" : "leaf") : (ca ? "issuer chain: CA" : "issuer chain");
    io.out << (i == 0 ? "" : "\n") << "Certificate " << i + 1 << " of " << certs->size() << " ("
           << role << ")\n";
    auto id = common::spiffeIdOf(c);
    auto row = [&](const char* label, const std::string& value) {
      io.out << "  " << std::left << std::setw(18) << label << value << "\n";
    };
    row("Subject:", nameText(X509_get_subject_name(c)));
    row("Issuer:", nameText(X509_get_issuer_name(c)));
    row("SPIFFE ID:", id.ok() ? std::string(id->uri()) : "(none: " + id.error().message + ")");
    row("URI SANs:", join(common::uriSans(c)));
    row("DNS SANs:", join(common::dnsSans(c)));
    row("Serial:", common::serialHex(c));
    row("Public key:", keyText(c));
    row("CA:", ca ? "true" : "false");
    row("Key usage:", keyUsageText(c));
    row("Extended usage:", extendedKeyUsageText(c));
    row("Not before:", common::formatTime(common::notBefore(c)));
    row("Not after:", common::formatTime(common::notAfter(c)));
    row("Remaining:", remainingText(common::notAfter(c), now));
    const common::Sha256 digest = common::certificateSha256(c);
    row("SHA-256:", common::hex(digest.data(), digest.size()));
  }
  return kExitOk;
}

// "Dec 30, 2020 23:36 UTC", as kubeadm prints expiry.
std::string kubeadmTime(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%b %d, %Y %H:%M UTC", &tm);
  return buf;
}

std::string shortName(X509_NAME* name) {
  for (int nid : {NID_commonName, NID_organizationName}) {
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i >= 0) {
      ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
  }
  return nameText(name);
}

bool isCertificateFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".crt" || ext == ".pem" || ext == ".cert" || ext == ".cer";
}

int checkExpirationRun(const Args& args, Io& io) {
  if (args.positional.empty()) {
    io.err << "Error: expected DIR_OR_FILES\n"
              "Usage: palisadectl certs check-expiration DIR_OR_FILES... [--warn 24h]\n";
    return kExitUsage;
  }
  auto warn = parseDuration(args.get("warn", "24h"));
  if (!warn.ok()) {
    io.err << "Error: --warn: " << warn.error().message << "\n";
    return kExitUsage;
  }
  struct Row {
    std::string name;
    std::time_t expires;
    std::string ca;
  };
  std::vector<Row> rows;
  auto addFile = [&](const fs::path& path, bool named) -> bool {
    auto pem = common::readFile(path.string());
    if (!pem.ok()) {
      io.err << "Error: " << pem.error().message << "\n";
      return false;
    }
    if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      if (named) {
        io.err << "Error: " << path.string() << ": no PEM certificate\n";
        return false;
      }
      return true;  // a key or a CRL beside the certificates in a directory
    }
    auto certs = common::parseCertificatesPem(*pem);
    if (!certs.ok()) {
      io.err << "Error: " << path.string() << ": " << certs.error().message << "\n";
      return false;
    }
    // The first certificate of a file is the one the file is for (a leaf before its chain).
    X509* c = certs->front().get();
    const bool self_signed = X509_check_issued(c, c) == X509_V_OK;
    rows.push_back(Row{path.string(), common::notAfter(c),
                       self_signed ? "(self-signed)" : shortName(X509_get_issuer_name(c))});
    return true;
  };
  for (const std::string& arg : args.positional) {
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(arg, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file() && isCertificateFile(it->path())) {
          files.push_back(it->path());
        }
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) {
        if (!addFile(f, false)) {
          return kExitUsage;
        }
      }
    } else if (!addFile(arg, true)) {
      return kExitUsage;
    }
  }
  const std::time_t now = std::time(nullptr);
  std::size_t width = std::string("CERTIFICATE").size();
  for (const Row& r : rows) {
    width = std::max(width, r.name.size());
  }
  io.out << std::left << std::setw(static_cast<int>(width + 3)) << "CERTIFICATE" << std::setw(27)
         << "EXPIRES" << std::setw(16) << "RESIDUAL TIME"
         << "CERTIFICATE AUTHORITY\n";
  bool expiring = false;
  for (const Row& r : rows) {
    const auto residual = std::chrono::seconds(r.expires - now);
    expiring |= residual <= *warn;
    io.out << std::setw(static_cast<int>(width + 3)) << r.name << std::setw(27)
           << kubeadmTime(r.expires) << std::setw(16) << shortDuration(residual) << r.ca << "\n";
  }
  if (expiring) {
    io.err << "certificates expire within " << args.get("warn", "24h") << "\n";
  }
  return expiring ? kExitNegative : kExitOk;
}

}  // namespace

Command svidCommand() {
  Command verify;
  verify.name = "verify";
  verify.summary = "Verify an X509-SVID against a trust bundle";
  verify.usage =
      "palisadectl svid verify --bundle B.pem [--trust-domain TD] [--at RFC3339] SVID.pem";
  verify.long_help =
      "Verify an X509-SVID (the leaf, then any intermediates, in SVID.pem) exactly per the\n"
      "SPIFFE X509-SVID standard: one URI SAN holding a SPIFFE ID with a path; a leaf that\n"
      "is not a CA, has digitalSignature and neither keyCertSign nor cRLSign; signing\n"
      "certificates that are CAs; a chain to a root of the bundle of the SVID's own trust\n"
      "domain, valid at --at (default now).\n\n"
      "Roots whose certificate names a trust domain (spiffe://TD) belong to it; other roots\n"
      "belong to --trust-domain, else to the SVID's trust domain.\n\n"
      "Prints the SPIFFE ID and exits 0; prints why on stderr and exits 1 for an invalid\n"
      "SVID; exits 2 for bad input.";
  verify.examples =
      "  palisadectl svid verify --bundle ca/root.crt web/chain.pem\n"
      "  spiffe://cluster.local/ns/default/sa/web\n";
  verify.flags = {
      {"bundle", "B.pem", "trust bundle: root certificates (required)", true},
      {"trust-domain", "TD", "the SVID must be in this trust domain"},
      {"at", "RFC3339", "verify at this time instead of now (2026-01-02T15:04:05Z)"},
  };
  verify.run = verifyRun;

  Command inspect;
  inspect.name = "inspect";
  inspect.summary = "Show what a certificate or chain says";
  inspect.usage = "palisadectl svid inspect FILE";
  inspect.long_help =
      "Print each certificate of a PEM file: subject, issuer, SPIFFE ID, SANs, serial, key,\n"
      "key usages, validity and the time remaining.";
  inspect.run = inspectRun;

  Command svid;
  svid.name = "svid";
  svid.summary = "Verify and inspect X509-SVIDs";
  svid.children.push_back(std::move(verify));
  svid.children.push_back(std::move(inspect));
  return svid;
}

Command certsCommand() {
  Command check;
  check.name = "check-expiration";
  check.summary = "List certificates and when they expire";
  check.usage = "palisadectl certs check-expiration DIR_OR_FILES... [--warn 24h]";
  check.long_help =
      "Print a table of certificates (files named *.crt, *.pem, *.cert, *.cer under each\n"
      "directory, or the files given), like `kubeadm certs check-expiration`: when each\n"
      "expires, the time left and the CA that signed it.\n\n"
      "Exit status: 0 when nothing expires within --warn, 1 when something does (or has),\n"
      "2 for unreadable input.";
  check.examples = "  palisadectl certs check-expiration ./ca ./web --warn 72h\n";
  check.flags = {{"warn", "D", "warn about certificates expiring within D (default 24h)"}};
  check.run = checkExpirationRun;

  Command certs;
  certs.name = "certs";
  certs.summary = "Watch certificate expiry";
  certs.children.push_back(std::move(check));
  return certs;
}

}  // namespace palisade::cli
