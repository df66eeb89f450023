// transport.hpp: how requests reach the network: sessions (one per worker) and the default
// transport over cpp-httplib, one keep-alive connection per origin.
#pragma once

#include "stream.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

struct transport_options {
  std::chrono::milliseconds connect_timeout{REQUESTS_ENGINE_DEFAULT_CONNECT_TIMEOUT_MS};
  std::chrono::milliseconds read_timeout{REQUESTS_ENGINE_DEFAULT_READ_TIMEOUT_MS};
  std::chrono::milliseconds write_timeout{REQUESTS_ENGINE_DEFAULT_WRITE_TIMEOUT_MS};
  bool verify_tls = true;
  std::string ca_cert_file;  ///< PEM bundle to trust instead of the system's roots
  std::string ca_cert_dir;
  std::size_t max_response_bytes = REQUESTS_ENGINE_DEFAULT_MAX_RESPONSE_BYTES;
  /// The proxy every request goes through: "http://[user:password@]host[:port]" (the port
  /// defaults to 80; a URL without a scheme is taken as http://). HTTPS goes through it by
  /// CONNECT, the provider's certificate still verified end to end. Unset: from the environment,
  /// as the official SDKs and curl read it (https_proxy / HTTPS_PROXY for https URLs, http_proxy /
  /// HTTP_PROXY for http ones); "" = no proxy, whatever the environment says.
  std::optional<std::string> proxy;
  /// The hosts reached directly, as curl reads NO_PROXY: a comma-separated list of host names
  /// (each matching itself and its subdomains; a leading dot is ignored), IP addresses, CIDR
  /// ranges (10.0.0.0/8), any of them with ":port", or "*" for every host. Unset: no_proxy /
  /// NO_PROXY from the environment.
  std::optional<std::string> no_proxy;
};

namespace detail {

/// A proxy URL taken apart. `shown` is what messages may print: never the credentials.
struct proxy_url {
  std::string host;
  int port = 80;
  std::string user, password;  ///< percent-decoded; empty when the URL has none
  std::string shown;           ///< "http://host:port"
};

/// Parses a proxy URL; std::nullopt with `why` (which never holds the credentials) when it
/// cannot be used: another scheme than http, no host, a bad port.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<proxy_url> parse_proxy_url(std::string_view url, std::string& why);

/// True when `host` (a name or an IP address, IPv6 without brackets) at `port` is in a NO_PROXY
/// list, by curl's rules (see transport_options::no_proxy).
[[nodiscard]] REQUESTS_ENGINE_INLINE bool no_proxy_matches(std::string_view list, std::string_view host, int port);

/// The proxy setting for one origin: "" for none, else the proxy URL (and in `from`, where it
/// came from: "options::proxy" or the environment variable's name).
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string proxy_for(const transport_options& o, bool https,
                                                          std::string_view host, int port, std::string& from);

}  // namespace detail

/// One worker's connections. Used by one thread at a time.
class transport_session {
 public:
  virtual ~transport_session() = default;
  /// Sends one request. A failure without an HTTP answer is an error value (code connection,
  /// tls, timeout, response_too_large or cancelled); an HTTP answer of any status is a value.
  /// `cancelled` is polled while the body arrives.
  virtual result<http_response> send(const http_request& req, const std::atomic<bool>& cancelled) = 0;
  /// Like send(), but a 2xx body goes to `sink` piece by piece as it arrives (the returned
  /// response's body is then empty); `sink` returning false ends the exchange (an error value).
  /// Any other status is read whole, as send() reads it. The read timeout bounds each read, so
  /// it limits the silence between events, not the whole answer. This default, for transports
  /// that cannot stream, reads the whole body with send() and hands it over at once.
  virtual result<http_response> send_streaming(const http_request& req, const std::atomic<bool>& cancelled,
                                               const std::function<bool(std::string_view)>& sink) {
    result<http_response> r = send(req, cancelled);
    if (r && r->status >= 200 && r->status < 300) {
      const std::string body = std::move(r->body);
      r->body.clear();
      if (!sink(body)) return error{error_code::connection, 0, "the stream was abandoned", {}, 0, {}};
    }
    return r;
  }
  /// Called from another thread to abandon the exchange under way in send() (on cancel): send
  /// must then return soon. Must be safe to call at any time, also when nothing is in flight.
  virtual void abort() noexcept {}
};

/// Makes sessions; the engine opens one per worker thread.
class transport {
 public:
  virtual ~transport() = default;
  virtual std::unique_ptr<transport_session> open_session() = 0;
};

/// The default transport: cpp-httplib clients, one keep-alive connection per origin per worker.
class httplib_transport : public transport {
 public:
  explicit httplib_transport(transport_options o) : options_(std::move(o)) {}
  REQUESTS_ENGINE_INLINE std::unique_ptr<transport_session> open_session() override;
  [[nodiscard]] const transport_options& options() const noexcept { return options_; }

 private:
  transport_options options_;
};

REQUESTS_ENGINE_NAMESPACE_END
