#include "common/openssl.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <ctime>
#include <string>
#include <vector>

#include "common/csr.h"
#include "tests/mocks/common/cert_factory.h"
#include "tests/mocks/common/temp_dir.h"

// The OpenSSL wrappers: PEM parsing of certificates, keys and CSRs, RFC 3339 times, serials,
// digests and the atomic file writer keys are saved with.

namespace palisade::common {
namespace {

using test_certs::CertFactory;
using test_certs::kHour;
using test_certs::kMinute;
using test_certs::kNow;
using test_env::TempDir;

class OpensslTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ca_ = std::make_unique<CertFactory>("td.test"); }
  static void TearDownTestSuite() { ca_.reset(); }
  static inline std::unique_ptr<CertFactory> ca_;
};

std::string pemOf(const char* type, const std::string& base64) {
  return std::string("-----BEGIN ") + type + "-----\n" + base64 + "\n-----END " + type + "-----\n";
}

struct ParseCertsCase {
  std::string name;
  std::string input;
  std::size_t want;        // number of certificates
  std::string want_error;  // the message starts with this
};

TEST_F(OpensslTest, ParseCertificatesPem) {
  const std::string leaf = ca_->validLeaf();
  const std::string root = ca_->rootPem();
  const std::string key = ca_->root().keyPem();
  const std::string cannot_parse = "certificate: cannot parse PEM";
  const std::string none = "certificate: no PEM certificate found";
  const ParseCertsCase cases[] = {
      {"one", leaf, 1, ""},
      {"two in order", leaf + root, 2, ""},
      {"text around and between", "# bundle\n" + leaf + "\nnext:\n" + root + "trailer\n", 2, ""},
      {"a key block between certificates is skipped", leaf + key + root, 2, ""},
      {"empty", "", 0, none},
      {"text only", "hello\n", 0, none},
      {"a key only", key, 0, none},
      {"bad base64", pemOf("CERTIFICATE", "!!!notbase64!!!"), 0, cannot_parse},
      {"base64 that is not DER", pemOf("CERTIFICATE", "AAAAAAAA"), 0, cannot_parse},
      {"no END line", leaf.substr(0, leaf.size() / 2), 0, cannot_parse},
      {"a good certificate, then a broken one", leaf + pemOf("CERTIFICATE", "AAAAAAAA"), 0,
       cannot_parse},
  };
  for (const ParseCertsCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto got = parseCertificatesPem(c.input);
    EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left with: " << opensslErrors();
    if (!c.want_error.empty()) {
      ASSERT_FALSE(got.ok()) << got->size() << " certificates";
      EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
      EXPECT_EQ(got.error().message.substr(0, c.want_error.size()), c.want_error)
          << got.error().message;
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->size(), c.want);
  }
  auto two = parseCertificatesPem(leaf + root);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(certificatesPem(*two), leaf + root);
}

// Keys in the three encodings the header promises, each made by OpenSSL's own writers.
std::string traditionalKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

struct ParseKeyCase {
  std::string name;
  std::string input;
  EVP_PKEY* want;  // the key it must equal
  std::string want_error;
};

TEST_F(OpensslTest, ParsePrivateKeyPem) {
  EvpPkeyPtr ec = test_certs::p256Key();
  EvpPkeyPtr rsa = test_certs::rsaKey(1024);  // small: only parsing is tested
  const std::string sec1 = traditionalKeyPem(ec.get());
  const std::string pkcs1 = traditionalKeyPem(rsa.get());
  ASSERT_NE(sec1.find("BEGIN EC PRIVATE KEY"), std::string::npos);
  ASSERT_NE(pkcs1.find("BEGIN RSA PRIVATE KEY"), std::string::npos);
  const std::string pkcs8 = privateKeyPem(ec.get());
  ASSERT_NE(pkcs8.find("BEGIN PRIVATE KEY"), std::string::npos);
  const std::string error = "private key: cannot parse PEM (PKCS#8, PKCS#1 or SEC1 expected)";
  const ParseKeyCase cases[] = {
      {"PKCS#8 EC", pkcs8, ec.get(), ""},
      {"PKCS#8 RSA", privateKeyPem(rsa.get()), rsa.get(), ""},
      {"SEC1 EC", sec1, ec.get(), ""},
      {"PKCS#1 RSA", pkcs1, rsa.get(), ""},
      {"certificate first, key after", ca_->rootPem() + pkcs8, ec.get(), ""},
      {"empty", "", nullptr, error},
      {"garbage", "not a key\n", nullptr, error},
      {"a certificate", ca_->rootPem(), nullptr, error},
      {"bad body", pemOf("PRIVATE KEY", "AAAAAAAA"), nullptr, error},
  };
  for (const ParseKeyCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto got = parsePrivateKeyPem(c.input);
    EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left with: " << opensslErrors();
    if (!c.want_error.empty()) {
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.error().message.substr(0, c.want_error.size()), c.want_error)
          << got.error().message;
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(EVP_PKEY_eq(got->get(), c.want), 1);
  }
}

TEST_F(OpensslTest, ParseCsrPem) {
  EvpPkeyPtr key = test_certs::p256Key();
  auto csr = makeCsr(key.get(), {"spiffe://td.test/w"}, {"w.example"});
  ASSERT_TRUE(csr.ok()) << csr.error().message;
  const std::string pem = csrPem(csr->get());
  auto parsed = parseCsrPem(pem);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(csrPem(parsed->get()), pem);
  EXPECT_EQ(X509_REQ_verify(parsed->get(), key.get()), 1);

  for (const std::string& bad : {std::string(), std::string("junk"), ca_->rootPem()}) {
    SCOPED_TRACE(bad);
    auto got = parseCsrPem(bad);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().message.substr(0, 21), "csr: cannot parse PEM");
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
}

struct TimeCase {
  std::string name;
  std::string input;
  std::time_t want;
  std::string want_error;  // exact
};

std::string timeError(const std::string& input) {
  return "time: expected RFC 3339 (2026-01-02T15:04:05Z), got \"" + input + "\"";
}

TEST(TimeTest, ParseTime) {
  const TimeCase cases[] = {
      {"UTC", "2027-01-15T08:00:00Z", kNow, ""},
      {"lowercase z (RFC 3339 5.6 NOTE)", "2027-01-15T08:00:00z", kNow, ""},
      {"positive offset", "2027-01-15T10:00:00+02:00", kNow, ""},
      {"negative offset with minutes", "2027-01-15T02:30:00-05:30", kNow, ""},
      {"zero offset", "2027-01-15T08:00:00+00:00", kNow, ""},
      {"offset crossing the day", "2027-01-14T23:00:00-09:00", kNow, ""},
      {"fractional seconds are dropped", "2027-01-15T08:00:00.999999Z", kNow, ""},
      {"epoch", "1970-01-01T00:00:00Z", 0, ""},
      {"before the epoch", "1969-12-31T23:59:59Z", -1, ""},
      {"leap day", "2028-02-29T12:00:00Z", 1835438400, ""},
      {"empty", "", 0, timeError("")},
      {"date only", "2027-01-15", 0, timeError("2027-01-15")},
      {"space instead of T", "2027-01-15 08:00:00Z", 0, timeError("2027-01-15 08:00:00Z")},
      {"month 13", "2027-13-01T00:00:00Z", 0, timeError("2027-13-01T00:00:00Z")},
      // time-numoffset and date-month are 2DIGIT (RFC 3339 section 5.6).
      {"one-digit month", "2027-1-15T08:00:00Z", 0, timeError("2027-1-15T08:00:00Z")},
      {"leading space", " 2027-01-15T08:00:00Z", 0, timeError(" 2027-01-15T08:00:00Z")},
      {"no zone", "2027-01-15T08:00:00", 0,
       "time: RFC 3339 needs Z or an offset: \"2027-01-15T08:00:00\""},
      {"offset without colon", "2027-01-15T08:00:00+0200", 0,
       "time: RFC 3339 needs Z or an offset: \"2027-01-15T08:00:00+0200\""},
      {"offset not numeric", "2027-01-15T08:00:00+ab:cd", 0,
       "time: bad offset in \"2027-01-15T08:00:00+ab:cd\""},
      {"text after Z", "2027-01-15T08:00:00Zjunk", 0,
       "time: trailing text in \"2027-01-15T08:00:00Zjunk\""},
  };
  for (const TimeCase& c : cases) {
    SCOPED_TRACE(c.name + ": \"" + c.input + "\"");
    auto got = parseTime(c.input);
    if (!c.want_error.empty()) {
      ASSERT_FALSE(got.ok()) << "parsed as " << *got;
      EXPECT_EQ(got.error().message, c.want_error);
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(*got, c.want);
  }
}

TEST(TimeTest, FormatTimeAndRoundTrip) {
  EXPECT_EQ(formatTime(kNow), "2027-01-15T08:00:00Z");
  EXPECT_EQ(formatTime(0), "1970-01-01T00:00:00Z");
  for (std::time_t t : {std::time_t{0}, std::time_t{-1}, kNow, kNow + 59, std::time_t{951782400},
                        std::time_t{4102444799}}) {
    SCOPED_TRACE(t);
    auto back = parseTime(formatTime(t));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, t);
  }
}

TEST_F(OpensslTest, CertificateFields) {
  test_certs::CertSpec spec = test_certs::leafSpec("spiffe://td.test/w");
  spec.not_before = kNow - 5 * kMinute;
  spec.not_after = kNow + 2 * kHour;
  auto certs = parseCertificatesPem(ca_->leaf(spec));
  ASSERT_TRUE(certs.ok());
  X509* cert = certs->front().get();
  EXPECT_EQ(notBefore(cert), kNow - 5 * kMinute);
  EXPECT_EQ(notAfter(cert), kNow + 2 * kHour);

  // SHA-256 of the DER encoding.
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  ASSERT_GT(len, 0);
  Sha256 want{};
  unsigned int n = 0;
  EVP_Digest(der, static_cast<std::size_t>(len), want.data(), &n, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  EXPECT_EQ(certificateSha256(cert), want);

  const std::uint8_t bytes[] = {0x00, 0x0f, 0xab, 0xff};
  EXPECT_EQ(hex(bytes, sizeof bytes), "000fabff");
  EXPECT_EQ(hex(bytes, 0), "");

  X509Ptr shared = share(cert);
  EXPECT_EQ(shared.get(), cert);
}

// "Serial number as uppercase hex without leading zeros" (openssl.h).
TEST_F(OpensslTest, SerialHex) {
  struct Case {
    std::string name;
    std::int64_t serial;
    std::string want;
  };
  const Case cases[] = {
      {"two bytes", 0x1a2b, "1A2B"},
      {"high nibble zero", 0x0a1b, "A1B"},
      {"one", 1, "1"},
      {"eight bytes", 0x7fffffffffffffff, "7FFFFFFFFFFFFFFF"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto certs = parseCertificatesPem(ca_->validLeaf());
    ASSERT_TRUE(certs.ok());
    X509* cert = certs->front().get();
    ASN1_INTEGER_set_int64(X509_get_serialNumber(cert), c.serial);
    EXPECT_EQ(serialHex(cert), c.want);
  }
}

TEST(OpensslErrorTest, DrainsTheQueueIntoTheMessage) {
  EXPECT_EQ(opensslErrors(), "");
  Error plain = opensslError("thing: failed");
  EXPECT_EQ(plain.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(plain.message, "thing: failed");

  const unsigned char junk[] = {0x30, 0x03, 0x01};
  const unsigned char* p = junk;
  EXPECT_EQ(d2i_X509(nullptr, &p, sizeof junk), nullptr);
  ASSERT_NE(ERR_peek_error(), 0u);
  Error e = opensslError("thing: failed");
  EXPECT_EQ(e.message.rfind("thing: failed: error:", 0), 0u) << e.message;
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// writeFileAtomic: the reader sees the old file or the new one; keys are 0600 from the start.
TEST(WriteFileAtomicTest, CreatesWithMode) {
  TempDir dir;
  const std::string path = dir.file("ca.key");
  ASSERT_TRUE(writeFileAtomic(path, "secret\n", 0600).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto text = readFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "secret\n");
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"ca.key"}));
}

TEST(WriteFileAtomicTest, ReplacesContentAndMode) {
  TempDir dir;
  const std::string path = dir.write("f", "a much longer old content\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(writeFileAtomic(path, "new", 0600).ok());
  auto text = readFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "new");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"f"}));

  ASSERT_TRUE(writeFileAtomic(path, "", 0644).ok());
  text = readFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "");
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST(WriteFileAtomicTest, ModeIsNotNarrowedByTheUmask) {
  TempDir dir;
  const mode_t old = ::umask(077);
  Status s = writeFileAtomic(dir.file("root.crt"), "cert", 0644);
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("root.crt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST(WriteFileAtomicTest, FailuresLeaveNoTemporaryFile) {
  TempDir dir;
  const std::string missing = dir.file("no/such/dir/f");
  Status s = writeFileAtomic(missing, "x", 0600);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kIo);
  EXPECT_EQ(s.error().message.rfind(missing + ": cannot create: ", 0), 0u) << s.error().message;

  // Renaming a file onto a non-empty directory fails after the temporary file was written.
  const std::string target = dir.file("d");
  ASSERT_EQ(::mkdir(target.c_str(), 0700), 0);
  dir.write("d/inside", "x");
  s = writeFileAtomic(target, "x", 0600);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kIo);
  EXPECT_EQ(s.error().message.rfind(target + ": cannot rename into place: ", 0), 0u)
      << s.error().message;
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"d"}));
}

TEST(ReadFileTest, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("absent");
  auto got = readFile(path);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kIo);
  EXPECT_EQ(got.error().message, path + ": cannot read: No such file or directory");
}

}  // namespace
}  // namespace palisade::common

namespace palisade::common {
namespace {

// An encrypted key is refused with a message, never a passphrase prompt on the terminal.
TEST(ParsePrivateKeyPemTest, EncryptedKeyIsRefusedWithoutPrompting) {
  auto key = generateP256Key();
  ASSERT_TRUE(key.ok());
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key->get(), EVP_aes_256_cbc(), nullptr, 0,
                                          nullptr, const_cast<char*>("secret")),
            1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  const std::string pem(data, static_cast<std::size_t>(n));
  ASSERT_NE(pem.find("ENCRYPTED PRIVATE KEY"), std::string::npos);
  auto parsed = parsePrivateKeyPem(pem);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message,
            "private key: the key is encrypted; decrypt it first (openssl pkey -in KEY -out "
            "PLAIN)");
  EXPECT_EQ(ERR_peek_error(), 0u) << "the error queue is left clean";
}

}  // namespace
}  // namespace palisade::common

namespace palisade::common {
namespace {

TEST(ReadCertificatesFileTest, SaysWhetherTheFileOrItsContentIsWrong) {
  test_env::TempDir dir;
  auto missing = readCertificatesFile(dir.file("missing.pem"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);

  const std::string junk = dir.write("junk.pem", "not a certificate\n");
  auto bad = readCertificatesFile(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, junk + ": certificate: no PEM certificate found");

  test_certs::CertFactory factory("read.test");
  const std::string good = dir.write("chain.pem", factory.leafViaIntermediate());
  auto certs = readCertificatesFile(good);
  ASSERT_TRUE(certs.ok()) << certs.error().message;
  EXPECT_EQ(certs->size(), 2u);
}

}  // namespace
}  // namespace palisade::common
