#pragma once

// OpenSSL 3 handles wrapped as they are created (STYLE.md: logic code never calls *_free),
// the error queue turned into Result messages, PEM and DER reading and writing, and the file
// helpers certificates and keys need (atomic, 0600 for keys). Thread: any; no shared state.

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace palisade::common {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, Deleter<X509_CRL_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

// Stacks (their free functions are macros, so they get deleters of their own).
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // does not free the certs
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;
struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * s) const {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
  }
};
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;

// A new reference to `cert` (X509_up_ref).
X509Ptr share(X509* cert);

// Drains OpenSSL's error queue into one line ("" when empty).
std::string opensslErrors();
// An Error "<what>: <queued OpenSSL errors>", draining the queue.
Error opensslError(std::string_view what);

// Every certificate of a PEM text, in order; an error if there is none.
Result<std::vector<X509Ptr>> parseCertificatesPem(std::string_view pem);
// A private key in PEM: PKCS#8, PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
Result<EvpPkeyPtr> parsePrivateKeyPem(std::string_view pem);
Result<X509ReqPtr> parseCsrPem(std::string_view pem);

std::string certificatePem(X509* cert);
std::string certificatesPem(const std::vector<X509Ptr>& certs);
std::string privateKeyPem(EVP_PKEY* key);  // PKCS#8, unencrypted
std::string csrPem(X509_REQ* csr);
std::string crlPem(X509_CRL* crl);

using Sha256 = std::array<std::uint8_t, 32>;
Sha256 certificateSha256(X509* cert);  // of the DER encoding
std::string hex(const std::uint8_t* data, std::size_t size);

// Serial number as uppercase hex without leading zeros ("1A2B...").
std::string serialHex(X509* cert);
// notBefore / notAfter as seconds since the epoch.
std::time_t notBefore(X509* cert);
std::time_t notAfter(X509* cert);
// RFC 3339 ("2026-11-23T05:00:00Z") both ways.
std::string formatTime(std::time_t t);
Result<std::time_t> parseTime(std::string_view rfc3339);

// Files.
Result<std::string> readFile(const std::string& path);
// Every certificate of a PEM file. Errors: kIo when the file cannot be read, kInvalidArgument
// ("<path>: certificate: ...") when it holds no valid certificate.
Result<std::vector<X509Ptr>> readCertificatesFile(const std::string& path);
// Writes `data` to `path` through a temporary file in the same directory, fsync and rename,
// so a reader sees the old file or the new one, never a part. `mode` is applied before any
// byte is written (0600 for private keys).
Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode);

}  // namespace palisade::common
