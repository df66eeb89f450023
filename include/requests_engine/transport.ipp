// transport.ipp: the definitions of transport.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "transport.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

namespace proxy_impl {

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A port from 1 to 65535, else 0.
inline int port_of(std::string_view s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos) return 0;
  const int p = std::stoi(std::string(s));
  return p >= 1 && p <= 65535 ? p : 0;
}

// The bytes of an IPv4 or IPv6 address, or nothing.
inline std::optional<std::vector<unsigned char>> ip_bytes(const std::string& s) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return std::vector<unsigned char>(buf, buf + 4);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return std::vector<unsigned char>(buf, buf + 16);
  return std::nullopt;
}

inline std::string first_env(std::initializer_list<const char*> names, std::string* from = nullptr) {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v && *v) {
      if (from) *from = n;
      return v;
    }
  }
  return {};
}

}  // namespace proxy_impl

REQUESTS_ENGINE_INLINE std::optional<proxy_url> parse_proxy_url(std::string_view url, std::string& why) {
  using namespace proxy_impl;
  std::string_view rest = trim(url);
  if (const auto s = rest.find("://"); s != std::string_view::npos) {
    const std::string scheme = lower(rest.substr(0, s));
    if (scheme != "http") {
      why = "its scheme is '" + scheme +
            "' (only http:// proxies are supported; HTTPS requests still go through them encrypted, by CONNECT)";
      return std::nullopt;
    }
    rest.remove_prefix(s + 3);
  }
  const std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (end != std::string_view::npos && trim(rest.substr(end)) != "/") {
    why = "a proxy URL holds no path (give http://host:port)";
    return std::nullopt;
  }
  proxy_url p;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const auto colon = userinfo.find(':');
    p.user = percent_decode(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) p.password = percent_decode(userinfo.substr(colon + 1));
    authority.remove_prefix(at + 1);
  }
  std::string_view port_text;
  bool v6 = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "an IPv6 address without its closing ']'";
      return std::nullopt;
    }
    p.host = std::string(authority.substr(1, close - 1));
    v6 = true;
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "something after the IPv6 address that is not a port";
        return std::nullopt;
      }
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    p.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (p.host.empty()) {
    why = "it names no host";
    return std::nullopt;
  }
  if (p.host.find_first_not_of(v6 ? "0123456789abcdefABCDEF:." : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
      std::string::npos) {
    why = "its host holds a character no host name has";
    return std::nullopt;
  }
  if (!port_text.empty() || (authority.size() && authority.back() == ':')) {
    p.port = port_of(port_text);
    if (p.port == 0) {
      why = "its port is not a number from 1 to 65535";
      return std::nullopt;
    }
  }
  p.shown = "http://" + (v6 ? "[" + p.host + "]" : p.host) + ":" + std::to_string(p.port);
  return p;
}

REQUESTS_ENGINE_INLINE bool no_proxy_matches(std::string_view list, std::string_view host_in, int port) {
  using namespace proxy_impl;
  std::string host = lower(host_in);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  while (!host.empty() && host.back() == '.') host.pop_back();
  const auto host_ip = ip_bytes(host);
  std::size_t from = 0;
  while (from <= list.size()) {
    const std::size_t comma = list.find(',', from);
    std::string_view entry = trim(list.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from));
    from = comma == std::string_view::npos ? list.size() + 1 : comma + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    std::string e = lower(entry);
    // The port: after "]" for a bracketed IPv6 address, or after the one ':' of a name or IPv4.
    int entry_port = 0;
    if (!e.empty() && e.front() == '[') {
      const auto close = e.find(']');
      if (close == std::string::npos) continue;
      if (close + 1 < e.size()) {
        if (e[close + 1] != ':' || (entry_port = port_of(std::string_view(e).substr(close + 2))) == 0) continue;
      }
      e = e.substr(1, close - 1);
    } else if (std::count(e.begin(), e.end(), ':') == 1) {
      const auto colon = e.find(':');
      if ((entry_port = port_of(std::string_view(e).substr(colon + 1))) == 0) continue;
      e.resize(colon);
    }
    if (entry_port != 0 && entry_port != port) continue;
    if (const auto slash = e.find('/'); slash != std::string::npos) {  // a CIDR range
      const auto net = ip_bytes(e.substr(0, slash));
      const std::string bits_text = e.substr(slash + 1);
      if (!net || !host_ip || net->size() != host_ip->size() || bits_text.empty() || bits_text.size() > 3 ||
          bits_text.find_first_not_of("0123456789") != std::string::npos)
        continue;
      const auto bits = static_cast<std::size_t>(std::stoi(bits_text));
      if (bits > net->size() * 8) continue;
      bool inside = true;
      for (std::size_t b = 0; b < bits && inside; ++b) {
        const auto mask = static_cast<unsigned char>(0x80u >> (b % 8));
        inside = ((*net)[b / 8] & mask) == ((*host_ip)[b / 8] & mask);
      }
      if (inside) return true;
      continue;
    }
    while (!e.empty() && e.front() == '.') e.erase(0, 1);
    while (!e.empty() && e.back() == '.') e.pop_back();
    if (e.empty()) continue;
    if (host_ip) {  // an address matches only itself (written the same way, or the same bytes)
      const auto entry_ip = ip_bytes(e);
      if (e == host || (entry_ip && *entry_ip == *host_ip)) return true;
      continue;
    }
    if (host == e) return true;
    if (host.size() > e.size() && host.compare(host.size() - e.size(), e.size(), e) == 0 &&
        host[host.size() - e.size() - 1] == '.')
      return true;
  }
  return false;
}

REQUESTS_ENGINE_INLINE std::string proxy_for(const transport_options& o, bool https, std::string_view host, int port,
                                            std::string& from) {
  using namespace proxy_impl;
  std::string proxy;
  if (o.proxy) {
    proxy = *o.proxy;
    from = "options::proxy";
  } else {
    proxy = https ? first_env({"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}, &from)
                  : first_env({"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}, &from);
  }
  if (trim(proxy).empty()) return {};
  const std::string list = o.no_proxy ? *o.no_proxy : first_env({"no_proxy", "NO_PROXY"});
  if (!list.empty() && no_proxy_matches(list, host, port)) return {};
  return proxy;
}

class httplib_session final : public transport_session {
 public:
  explicit httplib_session(const transport_options& o) : o_(o) {}

  result<http_response> send(const http_request& req, const std::atomic<bool>& cancelled) override {
    return exchange(req, cancelled, nullptr);
  }

  result<http_response> send_streaming(const http_request& req, const std::atomic<bool>& cancelled,
                                       const std::function<bool(std::string_view)>& sink) override {
    return exchange(req, cancelled, &sink);
  }

  void abort() noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_) active_->stop();  // shuts the socket down; send() then fails at once
  }

 private:
  // With a sink, a 2xx body goes to it as it arrives; anything else is read whole.
  result<http_response> exchange(const http_request& req, const std::atomic<bool>& cancelled,
                                 const std::function<bool(std::string_view)>* sink) {
    url_parts u;
    try {
      u = parse_url(req.url);
    } catch (const std::exception& e) {
      return error{error_code::invalid_request, 0, e.what(), {}, 0, {}};
    }
    const std::string origin = u.origin();
    // httplib writes headers and the request line as given: a line break in a key read with its
    // newline, or in a model name that goes into a path, would end the line early and start
    // another. Refused, naming the header but never its value (it may be a key).
    const auto breaks_line = [](std::string_view s) {
      return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
    };
    if (breaks_line(u.path) || u.path.find(' ') != std::string::npos)
      return error{error_code::invalid_request, 0,
                   "the request's URL path holds a space, a line break or a NUL byte (a model or deployment name "
                   "with one?); not sent",
                   {}, 0, {}};
    for (const auto& kv : req.headers)
      if (breaks_line(kv.first) || breaks_line(kv.second))
        return error{error_code::invalid_request, 0,
                     "the header '" + (breaks_line(kv.first) ? std::string("(unnamed)") : kv.first) +
                         "' holds a line break or a NUL byte (a key read with its trailing newline?); not sent",
                     {}, 0, {}};

    // The proxy for this origin, if any (options::proxy, else HTTPS_PROXY / HTTP_PROXY, less NO_PROXY).
    std::string proxy_from;
    std::optional<proxy_url> proxy;
    if (const std::string setting = proxy_for(o_, u.scheme == "https", u.host, u.port, proxy_from); !setting.empty()) {
      std::string why;
      proxy = parse_proxy_url(setting, why);
      if (!proxy)
        return error{error_code::invalid_request, 0,
                     "the proxy set by " + proxy_from + " cannot be used: " + why + "; not sent", {}, 0, {}};
    }

    httplib::Request hreq;
    hreq.method = req.method;
    hreq.path = u.path;
    for (const auto& kv : req.headers) hreq.headers.emplace(kv.first, kv.second);
    if (!req.body.empty() || req.method == "POST") {
      hreq.body = req.body;
      hreq.set_header("Content-Type", req.content_type);
    }
    std::string body;
    bool too_large = false;
    bool streaming = false;   // this answer's body goes to the sink
    bool sink_refused = false;
    std::size_t received = 0;
    auto last_data = clock::now();  // a read error this long after the last bytes is a timeout
    if (sink) {
      hreq.response_handler = [&](const httplib::Response& r) {
        streaming = r.status >= 200 && r.status < 300;
        return true;
      };
    }
    hreq.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
      last_data = clock::now();
      if (received + len > o_.max_response_bytes) {
        too_large = true;
        return false;
      }
      received += len;
      if (streaming) {
        if (!(*sink)(std::string_view(data, len))) {
          sink_refused = true;
          return false;
        }
      } else {
        body.append(data, len);
      }
      return !cancelled.load(std::memory_order_relaxed);
    };
    if (proxy && u.scheme == "https") {
      bool connected = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = clients_.find(origin);
        connected = it != clients_.end() && it->second.client;
      }
      if (!connected)
        if (auto refused = proxy_preflight(*proxy, proxy_from, u.host, u.port)) return *refused;
    }
    httplib::Response hres;
    httplib::Error err = httplib::Error::Success;
    bool ok = false;
    // A kept-alive connection the server closed while it sat idle fails as soon as the request
    // is written, before the server could read it: that one is sent again, once, on a new
    // connection (not a retry: nothing reached the server). Any other failure is reported.
    for (int round = 0; round < 2; ++round) {
      httplib::Client* client = nullptr;
      std::size_t used_before = 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto& slot = clients_[origin];
        if (!slot.client) slot.client = make_client(origin, u.scheme == "https", proxy ? &*proxy : nullptr);
        client = slot.client.get();
        used_before = slot.exchanges;
        active_ = client;
      }
      client->set_read_timeout(req.read_timeout.count() > 0 ? req.read_timeout : o_.read_timeout);
      err = httplib::Error::Success;
      body.clear();
      received = 0;
      last_data = clock::now();
      ok = client->send(hreq, hres, err) && err == httplib::Error::Success;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        active_ = nullptr;
        // A failed exchange leaves the connection in an unknown state: start afresh next time.
        if (ok)
          ++clients_[origin].exchanges;
        else
          clients_.erase(origin);
      }
      if (ok || err != httplib::Error::Write || used_before == 0 || cancelled.load()) break;
    }
    if (!ok) {
      if (sink_refused) return error{error_code::connection, 0, "the stream from " + origin + " was abandoned", {}, 0, {}};
      auto timeout = req.read_timeout.count() > 0 ? req.read_timeout : o_.read_timeout;
      error e = transport_error(err, origin, too_large, cancelled.load(), clock::now() - last_data, timeout);
      if (proxy) e.message += " (through the proxy " + proxy->shown + ", set by " + proxy_from + ")";
      return e;
    }
    if (proxy && hres.status == 407)  // from the proxy, not the provider: its credentials are wrong or missing
      return proxy_refused_credentials(*proxy, proxy_from);
    http_response out;
    out.status = hres.status;
    out.headers.reserve(hres.headers.size());
    for (const auto& kv : hres.headers) out.headers.emplace_back(kv.first, kv.second);
    out.body = std::move(body);
    return out;
  }

  static error proxy_refused_credentials(const proxy_url& proxy, const std::string& proxy_from) {
    return error{error_code::authentication, 407,
                 "the proxy " + proxy.shown + " (set by " + proxy_from +
                     ") refused the request: 407 Proxy Authentication Required (its user name or password, given "
                     "in the proxy URL, is wrong or missing)",
                 {}, 0, {}};
  }

  // Before the first request to an HTTPS origin through a proxy, the tunnel is asked for once on
  // a connection of its own, and a refusal (407, 403, 502...) is reported here. cpp-httplib 0.11
  // (Debian 12's) never returns when a proxy refuses its own CONNECT and closes the connection
  // (Connection: close, or an HTTP/1.0 answer): it locks a mutex it already holds.
  std::optional<error> proxy_preflight(const proxy_url& proxy, const std::string& proxy_from, const std::string& host,
                                       int port) const {
    httplib::Client pc(proxy.host, proxy.port);
    pc.set_connection_timeout(o_.connect_timeout);
    pc.set_read_timeout(o_.read_timeout);
    pc.set_write_timeout(o_.write_timeout);
    httplib::Request creq;
    creq.method = "CONNECT";
    creq.path = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    if (!proxy.user.empty() || !proxy.password.empty())
      creq.headers.emplace("Proxy-Authorization", "Basic " + base64_encode(proxy.user + ":" + proxy.password));
    httplib::Response cres;
    httplib::Error err = httplib::Error::Success;
    const std::string through = " (through the proxy " + proxy.shown + ", set by " + proxy_from + ")";
    if (!pc.send(creq, cres, err) || err != httplib::Error::Success)
      return error{error_code::connection, 0,
                   "could not open a tunnel to " + creq.path + ": " + httplib::to_string(err) + through, {}, 0, {}};
    if (cres.status == 407)
      return proxy_refused_credentials(proxy, proxy_from);
    if (cres.status < 200 || cres.status > 299)
      return error{error_code::connection, cres.status,
                   "the proxy refused a tunnel to " + creq.path + ": HTTP " + std::to_string(cres.status) + through, {},
                   0, {}};
    return std::nullopt;
  }

  std::unique_ptr<httplib::Client> make_client(const std::string& origin, bool https, const proxy_url* proxy) const {
    auto client = std::make_unique<httplib::Client>(origin);
    if (proxy) {
      // httplib sends http:// requests to the proxy in absolute form, and opens https:// ones
      // with CONNECT, then verifies the provider's certificate through the tunnel as usual.
      client->set_proxy(proxy->host, proxy->port);
      if (!proxy->user.empty() || !proxy->password.empty())
        client->set_proxy_basic_auth(proxy->user, proxy->password);
    }
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // without it, Nagle against delayed ACKs caps a connection at ~25 req/s
    client->set_connection_timeout(o_.connect_timeout);
    client->set_read_timeout(o_.read_timeout);
    client->set_write_timeout(o_.write_timeout);
    client->set_follow_location(false);
    if (https) {
      client->enable_server_certificate_verification(o_.verify_tls);
      if (!o_.ca_cert_file.empty() || !o_.ca_cert_dir.empty())
        client->set_ca_cert_path(o_.ca_cert_file, o_.ca_cert_dir);
    }
    return client;
  }

  error transport_error(httplib::Error err, const std::string& origin, bool too_large,
                        bool was_cancelled, clock::duration elapsed,
                        std::chrono::milliseconds read_timeout) const {
    error e;
    if (too_large) {
      e.code = error_code::response_too_large;
      e.message = "response from " + origin + " is larger than max_response_bytes (" +
                  std::to_string(o_.max_response_bytes) + ")";
      return e;
    }
    if (was_cancelled) {
      e.code = error_code::cancelled;
      e.message = "cancelled while receiving the response from " + origin;
      return e;
    }
    switch (err) {
      case httplib::Error::Connection:
        e.code = error_code::connection;
        e.message = "could not connect to " + origin;
        break;
      case httplib::Error::ConnectionTimeout:
        e.code = error_code::timeout;
        e.message = "timed out connecting to " + origin;
        break;
      case httplib::Error::SSLConnection:
        e.code = error_code::tls;
        e.message = "TLS handshake with " + origin + " failed";
        break;
      case httplib::Error::SSLLoadingCerts:
        e.code = error_code::tls;
        e.message = "could not load the CA certificates from '" + o_.ca_cert_file + "'" +
                    (o_.ca_cert_dir.empty() ? std::string() : " / '" + o_.ca_cert_dir + "'") +
                    " (options::ca_cert_file / ca_cert_dir, the CLI's --ca-cert): not PEM certificates?";
        break;
      case httplib::Error::SSLServerVerification:
        e.code = error_code::tls;
        e.message = "the certificate of " + origin +
                    " could not be verified (a server behind a private CA: trust that CA with --ca-cert FILE on "
                    "the command line, SSL_CERT_FILE in the environment, or options::ca_cert_file in code)";
        break;
      case httplib::Error::Read:
        if (elapsed + std::chrono::milliseconds(50) >= read_timeout) {
          e.code = error_code::timeout;
          e.message = "no data from " + origin + " within the read timeout";
        } else {
          e.code = error_code::connection;
          e.message = "connection to " + origin + " closed or reset while reading the response";
        }
        break;
      case httplib::Error::Write:
        e.code = error_code::connection;
        e.message = "connection to " + origin + " failed while sending the request";
        break;
      default:
        e.code = error_code::connection;
        e.message = "request to " + origin + " failed: " + httplib::to_string(err);
        break;
    }
    return e;
  }

  struct pooled {
    std::unique_ptr<httplib::Client> client;
    std::size_t exchanges = 0;  // answered on this client's connection so far
  };
  const transport_options& o_;
  std::mutex mutex_;  // guards clients_ and active_ against abort() from another thread
  std::map<std::string, pooled> clients_;
  httplib::Client* active_ = nullptr;
};

}  // namespace detail

REQUESTS_ENGINE_INLINE std::unique_ptr<transport_session> httplib_transport::open_session() {
  return std::make_unique<detail::httplib_session>(options_);
}

REQUESTS_ENGINE_NAMESPACE_END
