#include "server/security/server_tls.h"

#include <fmt/format.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "server/security/pem_files.h"

namespace kvtier::security {

Result<ListeningCredentials> listening_credentials(const config::ServerSecurity& security, std::string_view address) {
  ListeningCredentials out;
  const config::ServerTls& tls = security.tls;
  if (!tls.enabled()) {
    out.credentials = grpc::InsecureServerCredentials();
    out.description = "plaintext";
    if (!config::is_loopback_address(address)) {
      out.warnings.push_back(fmt::format(
          "gRPC on {} is plaintext and reachable from other machines (allow_insecure: true): anyone who can "
          "reach the port can read and write blocks unless a mesh or NetworkPolicy stops them",
          address));
    }
    return out;
  }
  auto facts = check_key_pair(tls.cert_file, tls.key_file);
  if (!facts.ok()) return facts.status().with_context("TLS");
  const std::time_t now = std::time(nullptr);
  if (facts->not_after <= now) {
    out.warnings.push_back(
        fmt::format("the certificate in {} expired at {}; clients will refuse it until it is renewed", tls.cert_file,
                    utc_time(facts->not_after)));
  }
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (tls.client_ca_file.empty()) {
    provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(tls.key_file, tls.cert_file, tls.reload_s);
  } else {
    auto cas = check_certificates(tls.client_ca_file);
    if (!cas.ok()) return cas.status().with_context("TLS client CA");
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(tls.key_file, tls.cert_file,
                                                                                    tls.client_ca_file, tls.reload_s);
  }
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    out.description = "TLS";
  } else {
    options.watch_root_certs();
    // A certificate that is presented is always verified; require_client_cert decides whether one must be.
    options.set_cert_request_type(tls.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                          : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    out.description = tls.require_client_cert ? "mutual TLS" : "TLS, client certificates verified when presented";
  }
  out.description +=
      fmt::format(" (certificate valid until {}, files checked every {} s)", utc_time(facts->not_after), tls.reload_s);
  out.credentials = grpc::experimental::TlsServerCredentials(options);
  if (!out.credentials) return Status::invalid_argument("gRPC refused the TLS settings");
  return out;
}

}  // namespace kvtier::security
