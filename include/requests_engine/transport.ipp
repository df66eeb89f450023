// transport.ipp: the definitions of transport.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "transport.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

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
        if (!slot.client) slot.client = make_client(origin, u.scheme == "https");
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
      return transport_error(err, origin, too_large, cancelled.load(), clock::now() - last_data, timeout);
    }
    http_response out;
    out.status = hres.status;
    out.headers.reserve(hres.headers.size());
    for (const auto& kv : hres.headers) out.headers.emplace_back(kv.first, kv.second);
    out.body = std::move(body);
    return out;
  }

  std::unique_ptr<httplib::Client> make_client(const std::string& origin, bool https) const {
    auto client = std::make_unique<httplib::Client>(origin);
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
