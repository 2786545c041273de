// Owning handles for the OpenSSL objects kvtier reads and makes (keys, certificates, files), so
// every path out of a function frees them: the product's PEM checks and the tests' PKI share them.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace kvtier::security {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

using BioHandle = std::unique_ptr<BIO, BioFree>;
using CertHandle = std::unique_ptr<X509, X509Free>;
using KeyHandle = std::unique_ptr<EVP_PKEY, KeyFree>;

}  // namespace kvtier::security
