// Certificates made at test time with OpenSSL: certificate authorities, and server and client
// certificates they sign, each a <name>.crt and <name>.key (PEM) in one directory. Validity is set
// relative to now, so a test can make an expired certificate. EC P-256 keys: quick to make.
#pragma once

#include <string>
#include <vector>

namespace kvtier::testing {

struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> dns;   // subjectAltName DNS names
  std::vector<std::string> uris;  // subjectAltName URIs (SPIFFE ids)
  std::vector<std::string> ips;   // subjectAltName IP addresses
  long valid_from_s = -3600;      // relative to now
  long valid_until_s = 86400;
};

class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}

  // A self-signed CA: <dir>/<name>.crt, <dir>/<name>.key.
  void authority(const std::string& name) const;
  // A leaf certificate `ca` signs: <dir>/<name>.crt, <dir>/<name>.key. Throws on failure.
  void issue(const std::string& name, const std::string& ca, const CertificateRequest& request) const;

  std::string crt(const std::string& name) const { return dir_ + "/" + name + ".crt"; }
  std::string key(const std::string& name) const { return dir_ + "/" + name + ".key"; }
  const std::string& dir() const { return dir_; }

  // What the security tests use: authorities "ca" and "other-ca"; "server" (localhost,
  // 127.0.0.1); clients "reader", "writer", "admin" (spiffe://kvtier.test/<name>), "expired"
  // (ca-signed, expired an hour ago) and "stranger" (other-ca signs it); "server-other" (other-ca
  // signs it, for rotation).
  void standard_set() const;

 private:
  std::string dir_;
};

}  // namespace kvtier::testing
