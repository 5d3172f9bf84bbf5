// palisadectl ca (init, import, revoke, crl) and cert issue: the mesh CA from the command
// line, for operators who used to do this with openssl, Vault's PKI engine or cert-manager.

#include <openssl/pkcs12.h>

#include <filesystem>
#include <ostream>

#include "cli/commands.h"
#include "common/csr.h"
#include "common/openssl.h"
#include "control-plane/ca.h"
#include "policy/duration.h"

namespace palisade::cli {
namespace {

namespace fs = std::filesystem;
using policy::parseDuration;

std::string joinPath(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

int fail(Io& io, const Error& e, int code) {
  io.err << "Error: " << e.message << "\n";
  return code;
}

Result<cp::CertificateAuthority> loadCa(const Args& args) {
  return cp::CertificateAuthority::load(args.get("ca", "."));
}

int initRun(const Args& args, Io& io) {
  if (!args.has("trust-domain") || !args.has("out")) {
    io.err << "Error: --trust-domain and --out are required\n";
    return kExitUsage;
  }
  const std::string out = args.get("out");
  if (fs::exists(joinPath(out, "ca.key")) && !args.has("force")) {
    io.err << "Error: " << out << " already holds a CA (ca.key); use --force to replace it\n";
    return kExitUsage;
  }
  cp::CaInitOptions options;
  options.trust_domain = args.get("trust-domain");
  options.intermediate = args.has("intermediate");
  if (args.has("ttl")) {
    auto ttl = parseDuration(args.get("ttl"));
    if (!ttl.ok()) {
      return fail(io, ttl.error(), kExitUsage);
    }
    options.root_ttl = *ttl;
    options.intermediate_ttl = std::min(options.intermediate_ttl, *ttl);
  }
  auto ca = cp::CertificateAuthority::create(options);
  if (!ca.ok()) {
    return fail(io, ca.error(), kExitUsage);
  }
  if (Status s = ca->save(out); !s.ok()) {
    return fail(io, s.error(), kExitUsage);
  }
  io.out << "CA for trust domain " << ca->trustDomain() << " written to " << out << "/\n"
         << "  root.crt      root certificate: the trust bundle to give every workload\n";
  if (options.intermediate) {
    io.out << "  root.key      root key (0600): keep it offline; it only signs intermediates\n"
           << "  ca.crt        intermediate certificate that signs workload certificates\n";
  } else {
    io.out << "  ca.crt        the root, which also signs workload certificates\n";
  }
  io.out << "  ca.key        signing key (0600)\n";
  return kExitOk;
}

int importRun(const Args& args, Io& io) {
  if (!args.has("cert") || !args.has("key")) {
    io.err << "Error: --cert and --key are required\n";
    return kExitUsage;
  }
  auto cert = common::readFile(args.get("cert"));
  if (!cert.ok()) {
    return fail(io, cert.error(), kExitUsage);
  }
  auto key = common::readFile(args.get("key"));
  if (!key.ok()) {
    return fail(io, key.error(), kExitUsage);
  }
  std::optional<std::string> td;
  if (args.has("trust-domain")) {
    td = args.get("trust-domain");
  }
  auto ca = cp::CertificateAuthority::import(*cert, *key, td);
  if (!ca.ok()) {
    return fail(io, ca.error(), kExitNegative);
  }
  const std::string out = args.get("out", ".");
  if (Status s = ca->save(out); !s.ok()) {
    return fail(io, s.error(), kExitUsage);
  }
  io.out << "imported CA " << common::serialHex(ca->signingCertificate()) << " for trust domain "
         << ca->trustDomain() << " into " << out << "/ (expires "
         << common::formatTime(common::notAfter(ca->signingCertificate())) << ")\n";
  return kExitOk;
}

int revokeRun(const Args& args, Io& io) {
  if (args.positional.size() != 1) {
    io.err << "Error: expected one SERIAL\nUsage: palisadectl ca revoke SERIAL [--ca DIR]\n";
    return kExitUsage;
  }
  auto ca = loadCa(args);
  if (!ca.ok()) {
    return fail(io, ca.error(), kExitUsage);
  }
  if (Status s = ca->revoke(args.positional[0]); !s.ok()) {
    return fail(io, s.error(), kExitUsage);
  }
  if (Status s = ca->save(args.get("ca", ".")); !s.ok()) {
    return fail(io, s.error(), kExitUsage);
  }
  io.out << "revoked " << cp::canonicalSerial(args.positional[0]) << " (" << ca->revoked().size()
         << " revoked in all); publish a new CRL with 'palisadectl ca crl'\n";
  return kExitOk;
}

int crlRun(const Args& args, Io& io) {
  auto ca = loadCa(args);
  if (!ca.ok()) {
    return fail(io, ca.error(), kExitUsage);
  }
  std::chrono::seconds next = std::chrono::hours(24 * 7);
  if (args.has("next-update")) {
    auto d = parseDuration(args.get("next-update"));
    if (!d.ok()) {
      return fail(io, d.error(), kExitUsage);
    }
    next = *d;
  }
  auto crl = ca->crl(0, next);
  if (!crl.ok()) {
    return fail(io, crl.error(), kExitUsage);
  }
  const std::string pem = common::crlPem(crl->get());
  if (!args.has("out")) {
    io.out << pem;
    return kExitOk;
  }
  if (Status s = common::writeFileAtomic(args.get("out"), pem, 0644); !s.ok()) {
    return fail(io, s.error(), kExitUsage);
  }
  io.out << "CRL with " << ca->revoked().size() << " revoked serial(s) written to "
         << args.get("out") << "\n";
  return kExitOk;
}

// PKCS#12 with the algorithms every importer takes (macOS keychain, browsers): 3DES for the
// key and certificates, an SHA-1 MAC. Newer defaults (AES, PBKDF2) are refused by older
// keychains.
Result<std::string> pkcs12(EVP_PKEY* key, X509* cert, const std::vector<common::X509Ptr>& chain,
                           const std::string& password, const std::string& name) {
  common::X509StackPtr cas(sk_X509_new_null());
  for (const common::X509Ptr& c : chain) {
    sk_X509_push(cas.get(), c.get());
  }
  // mac_iter -1: no MAC yet; it is added below with SHA-1 (OpenSSL 3 defaults to SHA-256).
  PKCS12* p12 = PKCS12_create(password.c_str(), name.c_str(), key, cert, cas.get(),
                              NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                              NID_pbe_WithSHA1And3_Key_TripleDES_CBC, 2048, -1, 0);
  if (p12 == nullptr) {
    return common::opensslError("pkcs12: cannot create");
  }
  if (PKCS12_set_mac(p12, password.c_str(), -1, nullptr, 0, 2048, EVP_sha1()) != 1) {
    PKCS12_free(p12);
    return common::opensslError("pkcs12: cannot add the MAC");
  }
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  i2d_PKCS12_bio(bio.get(), p12);
  PKCS12_free(p12);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

int issueRun(const Args& args, Io& io) {
  if (!args.has("spiffe-id") || !args.has("out")) {
    io.err << "Error: --spiffe-id and --out are required\n";
    return kExitUsage;
  }
  if (args.has("p12") != args.has("p12-password")) {
    io.err << "Error: --p12 and --p12-password go together\n";
    return kExitUsage;
  }
  auto id = policy::SpiffeId::parse(args.get("spiffe-id"));
  if (!id.ok()) {
    return fail(io, id.error(), kExitUsage);
  }
  cp::IssueOptions options;
  options.dns_names = args.all("dns");
  if (args.has("ttl")) {
    auto ttl = parseDuration(args.get("ttl"));
    if (!ttl.ok()) {
      return fail(io, ttl.error(), kExitUsage);
    }
    options.ttl = *ttl;
  }
  auto ca = loadCa(args);
  if (!ca.ok()) {
    return fail(io, ca.error(), kExitUsage);
  }
  // The key is made here and signed through a CSR, as a workload's would be.
  auto key = common::generateP256Key();
  if (!key.ok()) {
    return fail(io, key.error(), kExitUsage);
  }
  auto csr = common::makeCsr(key->get(), {std::string(id->uri())}, options.dns_names);
  if (!csr.ok()) {
    return fail(io, csr.error(), kExitUsage);
  }
  auto issued = ca->sign(csr->get(), *id, options);
  if (!issued.ok()) {
    return fail(io, issued.error(), kExitNegative);
  }
  const std::string out = args.get("out");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    io.err << "Error: " << out << ": cannot create: " << ec.message() << "\n";
    return kExitUsage;
  }
  X509* cert = issued->certificate.get();
  std::string chain = common::certificatePem(cert) + common::certificatesPem(issued->intermediates);
  struct File {
    const char* name;
    std::string data;
    unsigned mode;
  };
  const std::vector<File> files = {
      {"key.pem", common::privateKeyPem(key->get()), 0600},
      {"cert.pem", common::certificatePem(cert), 0644},
      {"chain.pem", chain, 0644},
      {"bundle.pem", common::certificatesPem(ca->roots()), 0644},
  };
  for (const File& f : files) {
    if (Status s = common::writeFileAtomic(joinPath(out, f.name), f.data, f.mode); !s.ok()) {
      return fail(io, s.error(), kExitUsage);
    }
  }
  if (args.has("p12")) {
    std::vector<common::X509Ptr> cas;
    for (const auto& c : issued->intermediates) {
      cas.push_back(common::share(c.get()));
    }
    for (const auto& c : ca->roots()) {
      cas.push_back(common::share(c.get()));
    }
    auto p12 = pkcs12(key->get(), cert, cas, args.get("p12-password"), std::string(id->uri()));
    if (!p12.ok()) {
      return fail(io, p12.error(), kExitUsage);
    }
    if (Status s = common::writeFileAtomic(args.get("p12"), *p12, 0600); !s.ok()) {
      return fail(io, s.error(), kExitUsage);
    }
  }
  io.out << "issued " << id->uri() << " serial " << common::serialHex(cert) << ", expires "
         << common::formatTime(common::notAfter(cert)) << "\n"
         << "  " << out << "/key.pem, cert.pem, chain.pem (leaf + intermediates), bundle.pem"
         << (args.has("p12") ? ", " + args.get("p12") : std::string()) << "\n";
  return kExitOk;
}

}  // namespace

Command caCommand() {
  Command init;
  init.name = "init";
  init.summary = "Create a new CA for a trust domain";
  init.usage = "palisadectl ca init --trust-domain TD --out DIR [--intermediate] [--ttl D]";
  init.long_help =
      "Create an ECDSA P-256 root CA for a trust domain (its certificate carries the SPIFFE ID\n"
      "spiffe://TD), and with --intermediate an intermediate under it that signs workload\n"
      "certificates while the root key can go offline. Keys are written 0600, every file\n"
      "atomically.";
  init.examples = "  palisadectl ca init --trust-domain cluster.local --out ./ca --intermediate\n";
  init.flags = {
      {"trust-domain", "TD", "trust domain of the CA (required)"},
      {"out", "DIR", "directory to write the CA into (required)"},
      {"intermediate", "", "sign leaves from an intermediate under the root"},
      {"ttl", "D", "validity of the root (default 87600h, 10 years)"},
      {"force", "", "replace a CA already in DIR"},
  };
  init.run = initRun;

  Command import;
  import.name = "import";
  import.summary = "Import an existing CA (openssl, Vault PKI)";
  import.usage = "palisadectl ca import --cert ca.crt --key ca.key [--trust-domain TD] [--out DIR]";
  import.long_help =
      "Take an existing CA: one made with `openssl req -x509 ... -extensions v3_ca` (RSA or\n"
      "EC; PKCS#1, SEC1 or PKCS#8 key), or an intermediate exported from Vault's PKI engine\n"
      "(its certificate followed by its chain up to the root in --cert). Refused (exit 1): a\n"
      "certificate that is not a CA, one without the keyCertSign key usage the SPIFFE\n"
      "standard requires of signing certificates (openssl's stock v3_ca has no key usage: add\n"
      "-addext keyUsage=critical,keyCertSign,cRLSign), a key that does not match it, an\n"
      "intermediate whose chain does not reach the root given.\n\n"
      "The trust domain is the certificate's SPIFFE ID (spiffe://TD) when it has one, else\n"
      "--trust-domain, else cluster.local.";
  import.examples =
      "  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \\\n"
      "    -subj /CN=my-ca -extensions v3_ca -addext keyUsage=critical,keyCertSign,cRLSign\n"
      "  palisadectl ca import --cert ca.crt --key ca.key --trust-domain example.org --out ./ca\n";
  import.flags = {
      {"cert", "FILE", "CA certificate, then its chain up to the root (required)"},
      {"key", "FILE", "the CA's private key (required)"},
      {"trust-domain", "TD",
       "trust domain when the certificate names none (default cluster.local)"},
      {"out", "DIR", "directory to write the CA into (default .)"},
  };
  import.run = importRun;

  Command revoke;
  revoke.name = "revoke";
  revoke.summary = "Revoke a certificate by serial number";
  revoke.usage = "palisadectl ca revoke SERIAL [--ca DIR]";
  revoke.long_help =
      "Add a serial number (hex, as `palisadectl svid inspect` prints it) to the CA's\n"
      "revocation list. Mesh certificates live an hour and are not revoked; this is for the\n"
      "rare long-lived certificate. Publish the list with 'palisadectl ca crl'.";
  revoke.flags = {{"ca", "DIR", "CA directory (default .)"}};
  revoke.run = revokeRun;

  Command crl;
  crl.name = "crl";
  crl.summary = "Sign and print the CA's certificate revocation list";
  crl.usage = "palisadectl ca crl [--ca DIR] [--out FILE] [--next-update D]";
  crl.flags = {
      {"ca", "DIR", "CA directory (default .)"},
      {"out", "FILE", "write the PEM CRL here instead of stdout"},
      {"next-update", "D", "when the next CRL is due (default 168h)"},
  };
  crl.run = crlRun;

  Command ca;
  ca.name = "ca";
  ca.summary = "Run the mesh's certificate authority";
  ca.long_help =
      "Create or import the CA that signs the mesh's X509-SVIDs, and revoke certificates.";
  ca.children.push_back(std::move(init));
  ca.children.push_back(std::move(import));
  ca.children.push_back(std::move(revoke));
  ca.children.push_back(std::move(crl));
  return ca;
}

Command certCommand() {
  Command issue;
  issue.name = "issue";
  issue.summary = "Issue a certificate for a SPIFFE ID";
  issue.usage =
      "palisadectl cert issue --ca DIR --spiffe-id ID [--dns NAME]... [--ttl D] --out DIR\n"
      "      [--p12 FILE --p12-password PASSWORD]";
  issue.long_help =
      "Make a fresh ECDSA P-256 key, a CSR, and have the CA sign it: the certificate carries\n"
      "exactly the SPIFFE ID as URI SAN (and --dns names, for a gateway or server), lives\n"
      "--ttl (default 1h, at least 1m, never past the CA). Writes key.pem (0600), cert.pem,\n"
      "chain.pem (leaf and intermediates), bundle.pem (roots), as `vault write pki/issue`\n"
      "gives them, and with --p12 a PKCS#12 file a browser or the macOS keychain imports for\n"
      "client-certificate access through a gateway.";
  issue.examples =
      "  palisadectl cert issue --ca ./ca --spiffe-id spiffe://cluster.local/ns/default/sa/web \\\n"
      "    --ttl 2m --out ./web\n"
      "  palisadectl cert issue --ca ./ca --spiffe-id spiffe://cluster.local/ns/edge/sa/alice \\\n"
      "    --ttl 720h --out ./alice --p12 alice.p12 --p12-password changeit\n";
  issue.flags = {
      {"ca", "DIR", "CA directory (default .)"},
      {"spiffe-id", "ID", "the SPIFFE ID to certify (required)"},
      {"dns", "NAME", "a DNS SAN, for gateway or server certificates", true},
      {"ttl", "D", "validity (default 1h, minimum 1m)"},
      {"out", "DIR", "directory to write key.pem, cert.pem, chain.pem, bundle.pem (required)"},
      {"p12", "FILE", "also write a PKCS#12 file"},
      {"p12-password", "PASSWORD", "password of the PKCS#12 file"},
  };
  issue.run = issueRun;

  Command cert;
  cert.name = "cert";
  cert.summary = "Issue certificates from the mesh CA";
  cert.children.push_back(std::move(issue));
  return cert;
}

}  // namespace palisade::cli
