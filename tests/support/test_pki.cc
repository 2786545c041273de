#include "test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

#include "server/security/openssl_handles.h"

namespace kvtier::testing {
namespace {

using Key = security::KeyHandle;
using Cert = security::CertHandle;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

Key new_key() {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EC key generation");
  return key;
}

void write_pem(const std::string& path, EVP_PKEY* key, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "open output");
  const bool ok = key != nullptr ? PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1
                                 : PEM_write_X509(f, cert) == 1;
  std::fclose(f);
  check(ok, "write PEM");
}

Key read_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  check(f != nullptr, "open key");
  Key key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  check(key != nullptr, "read key");
  return key;
}

Cert read_cert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  check(f != nullptr, "open certificate");
  Cert cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  check(cert != nullptr, "read certificate");
  return cert;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Cert new_cert(EVP_PKEY* key, const std::string& cn, long from_s, long until_s) {
  static long serial = 1;
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++ + static_cast<long>(time(nullptr) % 100000) * 1000);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), until_s);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

void TestPki::authority(const std::string& name) const {
  Key key = new_key();
  Cert cert = new_cert(key.get(), "kvtier test " + name, -3600, 7 * 86400);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign CA");
  write_pem(crt(name), nullptr, cert.get());
  write_pem(this->key(name), key.get(), nullptr);
}

void TestPki::issue(const std::string& name, const std::string& ca, const CertificateRequest& r) const {
  Key ca_key = read_key(key(ca));
  Cert ca_cert = read_cert(crt(ca));
  Key leaf_key = new_key();
  Cert cert = new_cert(leaf_key.get(), r.common_name.empty() ? name : r.common_name, r.valid_from_s, r.valid_until_s);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  std::string san;
  const auto add = [&san](const char* kind, const std::vector<std::string>& values) {
    for (const std::string& v : values) san += (san.empty() ? "" : ",") + std::string(kind) + ":" + v;
  };
  add("DNS", r.dns);
  add("URI", r.uris);
  add("IP", r.ips);
  add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_extension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  if (!san.empty()) add_extension(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "sign leaf");
  // The key first, then the certificate: a watcher that reads between the two sees an old pair
  // fail its check rather than a new certificate with an old key.
  write_pem(key(name), leaf_key.get(), nullptr);
  write_pem(crt(name), nullptr, cert.get());
}

void TestPki::standard_set() const {
  authority("ca");
  authority("other-ca");
  issue("server", "ca", {.common_name = "kvtierd", .dns = {"localhost"}, .ips = {"127.0.0.1"}});
  issue("server-other", "other-ca", {.common_name = "kvtierd", .dns = {"localhost"}, .ips = {"127.0.0.1"}});
  for (const char* who : {"reader", "writer", "admin"}) {
    issue(who, "ca", {.uris = {std::string("spiffe://kvtier.test/") + who}});
  }
  issue("expired", "ca", {.uris = {"spiffe://kvtier.test/writer"}, .valid_from_s = -7200, .valid_until_s = -3600});
  issue("stranger", "other-ca", {.uris = {"spiffe://kvtier.test/writer"}});
}

}  // namespace kvtier::testing
