// Checks on PEM files before gRPC is handed them: each parses, a key matches its certificate, and
// when a certificate stops being valid. OpenSSL reads them; gRPC then reads them again itself.
#pragma once

#include <ctime>
#include <string>

#include "kvtier/result.h"

namespace kvtier::security {

struct CertificateFacts {
  std::time_t not_after = 0;  // when the (first) certificate expires
  int certificates = 0;       // how many the file holds
};

// A file of one or more PEM certificates (a chain, or a CA bundle).
Result<CertificateFacts> check_certificates(const std::string& path);
// A certificate chain and the private key of its first certificate.
Result<CertificateFacts> check_key_pair(const std::string& cert_path, const std::string& key_path);

std::string utc_time(std::time_t t);  // "2027-01-05 10:00:00 UTC"

}  // namespace kvtier::security
