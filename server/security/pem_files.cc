#include "server/security/pem_files.h"

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/security/openssl_handles.h"

namespace kvtier::security {
namespace {

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data";
  char text[256];
  ERR_error_string_n(e, text, sizeof(text));
  return text;
}

std::time_t to_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

}  // namespace

std::string utc_time(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

Result<CertificateFacts> check_certificates(const std::string& path) {
  BioHandle bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Status::not_found(fmt::format("cannot open certificate file {}", path));
  CertificateFacts facts;
  while (true) {
    CertHandle cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    if (facts.certificates++ == 0) facts.not_after = to_time(X509_get0_notAfter(cert.get()));
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (facts.certificates == 0) {
    return Status::invalid_argument(fmt::format("{} holds no PEM certificate", path));
  }
  return facts;
}

Result<CertificateFacts> check_key_pair(const std::string& cert_path, const std::string& key_path) {
  auto facts = check_certificates(cert_path);
  if (!facts.ok()) return facts.status();
  BioHandle cert_bio(BIO_new_file(cert_path.c_str(), "r"));
  BioHandle key_bio(BIO_new_file(key_path.c_str(), "r"));
  if (!key_bio) return Status::not_found(fmt::format("cannot open key file {}", key_path));
  if (!cert_bio) return Status::not_found(fmt::format("cannot open certificate file {}", cert_path));
  KeyHandle key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) return Status::invalid_argument(fmt::format("{} holds no PEM private key: {}", key_path, openssl_error()));
  CertHandle cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert || X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::invalid_argument(
        fmt::format("the key in {} is not the key of the certificate in {}", key_path, cert_path));
  }
  return facts;
}

}  // namespace kvtier::security
