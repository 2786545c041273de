#include "server/security/client_credentials.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "server/security/pem_files.h"

namespace kvtier::security {
namespace {

// How often a client's certificate files are checked for a rotation.
constexpr unsigned kFileRefreshSeconds = 60;

}  // namespace

Result<std::shared_ptr<const ClientCredentials>> ClientCredentials::open(const config::ClientSecurity& security) {
  KVTIER_RETURN_IF_ERROR(security.validate("client TLS"));
  std::shared_ptr<ClientCredentials> c(new ClientCredentials());
  c->security_ = security;
  if (!security.token_file.empty()) {
    auto token = SecretFile::open(security.token_file);
    if (!token.ok()) return token.status();
    c->token_ = std::move(token).value();
    c->token_checked_ = std::chrono::steady_clock::now();
  }
  if (!security.tls()) {
    c->credentials_ = grpc::InsecureChannelCredentials();
    return std::shared_ptr<const ClientCredentials>(std::move(c));
  }
  auto cas = check_certificates(security.ca_file);
  if (!cas.ok()) return cas.status().with_context("TLS CA");
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (security.cert_file.empty()) {
    provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(security.ca_file, kFileRefreshSeconds);
  } else {
    auto pair = check_key_pair(security.cert_file, security.key_file);
    if (!pair.ok()) return pair.status().with_context("TLS client certificate");
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        security.key_file, security.cert_file, security.ca_file, kFileRefreshSeconds);
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!security.cert_file.empty()) options.watch_identity_key_cert_pairs();
  // The server's certificate must name the host dialled (or server_name): a certificate from the
  // right CA for another service is not enough.
  options.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  options.set_check_call_host(true);
  c->credentials_ = grpc::experimental::TlsCredentials(options);
  if (!c->credentials_) return Status::invalid_argument("gRPC refused the client TLS settings");
  return std::shared_ptr<const ClientCredentials>(std::move(c));
}

std::shared_ptr<grpc::Channel> ClientCredentials::channel(const std::string& address,
                                                          grpc::ChannelArguments args) const {
  if (!security_.server_name.empty()) args.SetSslTargetNameOverride(security_.server_name);
  return grpc::CreateCustomChannel(address, credentials_, args);
}

void ClientCredentials::authorize(grpc::ClientContext& context) const {
  if (!token_) return;
  std::string value;
  {
    std::lock_guard lock(token_mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - token_checked_ >= std::chrono::seconds(1)) {
      token_checked_ = now;
      (void)token_->refresh();  // a failed re-read keeps the token read before
    }
    value = "Bearer " + token_->value();
  }
  context.AddMetadata("authorization", value);
}

}  // namespace kvtier::security
