// requests_engine mock: the test PKI, a CA and a localhost server certificate made at run time
// with OpenSSL 3, for the mock's HTTPS mode (the TLS tests, `requests-engine mock --tls-dir`).
#pragma once

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace requests_engine_mock {

// ---------------------------------------------------------------------------
// Test PKI
// ---------------------------------------------------------------------------

struct tls_files {
  std::string dir, ca_cert, server_cert, server_key;  // absolute file paths
};

namespace detail {

struct pkey_free {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct x509_ext_free {
  void operator()(X509_EXTENSION* p) const noexcept { X509_EXTENSION_free(p); }
};
struct bio_free {
  void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};
struct bn_free {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using x509_ext_ptr = std::unique_ptr<X509_EXTENSION, x509_ext_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

inline std::string openssl_errors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

[[noreturn]] inline void pki_fail(const std::string& what) {
  const std::string err = openssl_errors();
  throw std::runtime_error("requests_engine_mock::make_test_pki: " + what +
                           (err.empty() ? std::string() : " (" + err + ")"));
}

inline pkey_ptr make_ec_p256_key() {
  char curve[] = "P-256";  // read back as char* through the varargs
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  if (!key) pki_fail("cannot generate an EC P-256 key");
  return key;
}

inline void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  x509_ext_ptr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext) pki_fail(std::string("cannot build certificate extension ") + OBJ_nid2sn(nid) + "=" + value);
  if (X509_add_ext(cert, ext.get(), -1) != 1) pki_fail(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid));
}

// issuer == nullptr: self-signed CA certificate.
inline x509_ptr make_cert(EVP_PKEY* subject_key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key) {
  const bool is_ca = issuer == nullptr;
  x509_ptr cert(X509_new());
  if (!cert) pki_fail("X509_new failed");
  if (X509_set_version(cert.get(), 2) != 1) pki_fail("X509_set_version failed");

  bn_ptr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    pki_fail("cannot set a random serial number");

  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600L) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600L))
    pki_fail("cannot set the validity period");
  if (X509_set_pubkey(cert.get(), subject_key) != 1) pki_fail("X509_set_pubkey failed");

  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("requests_engine mock"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1,
                                 -1, 0) != 1)
    pki_fail("cannot set the subject name");
  if (X509_set_issuer_name(cert.get(), is_ca ? name : X509_get_subject_name(issuer)) != 1)
    pki_fail("cannot set the issuer name");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, is_ca ? cert.get() : issuer, cert.get(), nullptr, nullptr, 0);
  if (is_ca) {
    add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  } else {
    add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
    add_ext(cert.get(), &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  }
  if (X509_sign(cert.get(), is_ca ? subject_key : issuer_key, EVP_sha256()) <= 0)
    pki_fail(std::string("cannot sign the certificate for ") + common_name);
  return cert;
}

template <class WritePem>
std::string pem_string(WritePem&& write) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || !write(bio.get())) pki_fail("cannot encode PEM");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) pki_fail("cannot encode PEM");
  return std::string(data, static_cast<std::size_t>(len));
}

inline void write_file(const std::filesystem::path& path, const std::string& data, bool secret) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (secret) std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                             std::filesystem::perm_options::replace, ec);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) pki_fail("cannot write " + path.string());
  }
}

}  // namespace detail

// Generates (at run time, OpenSSL 3) a self-signed CA and a server certificate
// signed by it (EC P-256 keys, SHA-256), the latter with subjectAltName
// DNS:localhost, IP:127.0.0.1, IP:::1; both valid from now-1h to now+24h.
// Writes ca.pem, server.pem and server.key (mode 0600) into `dir` (created if
// missing) and returns their absolute paths. Throws std::runtime_error.
inline tls_files make_test_pki(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::runtime_error("requests_engine_mock::make_test_pki: cannot create directory '" + dir +
                             "': " + (ec ? ec.message() : std::string("not a directory")));
  const fs::path base = fs::absolute(fs::path(dir), ec);
  if (ec) throw std::runtime_error("requests_engine_mock::make_test_pki: bad directory '" + dir + "': " + ec.message());
  ERR_clear_error();

  detail::pkey_ptr ca_key = detail::make_ec_p256_key();
  detail::x509_ptr ca = detail::make_cert(ca_key.get(), "requests_engine mock test CA", nullptr, nullptr);
  detail::pkey_ptr srv_key = detail::make_ec_p256_key();
  detail::x509_ptr srv = detail::make_cert(srv_key.get(), "localhost", ca.get(), ca_key.get());

  const std::string ca_pem = detail::pem_string([&](BIO* b) { return PEM_write_bio_X509(b, ca.get()) == 1; });
  const std::string srv_pem = detail::pem_string([&](BIO* b) { return PEM_write_bio_X509(b, srv.get()) == 1; });
  const std::string key_pem = detail::pem_string(
      [&](BIO* b) { return PEM_write_bio_PrivateKey(b, srv_key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1; });

  tls_files files;
  files.dir = base.string();
  files.ca_cert = (base / "ca.pem").string();
  files.server_cert = (base / "server.pem").string();
  files.server_key = (base / "server.key").string();
  detail::write_file(files.ca_cert, ca_pem, false);
  detail::write_file(files.server_cert, srv_pem, false);
  detail::write_file(files.server_key, key_pem, true);
  return files;
}

}  // namespace requests_engine_mock
