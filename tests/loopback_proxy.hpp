// A forward HTTP proxy on loopback for the tests (POSIX sockets and the standard library only,
// so that both test programs can use it).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// A forward proxy on loopback, as a company's would be: CONNECT host:port opens a tunnel (HTTPS
// stays encrypted end to end); a request in absolute form ("POST http://host:port/path") is
// passed on in origin form. With credentials set, a request without the right
// Proxy-Authorization gets 407. It records each request line and the credentials it was given.
class loopback_proxy {
 public:
  /// The Proxy-Authorization value for "user:password".
  static std::string basic(const std::string& credentials) {
    static const char* const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out = "Basic ";
    std::size_t i = 0;
    for (; i + 2 < credentials.size(); i += 3) {
      const unsigned v = static_cast<unsigned>(static_cast<unsigned char>(credentials[i])) << 16 |
                         static_cast<unsigned>(static_cast<unsigned char>(credentials[i + 1])) << 8 |
                         static_cast<unsigned char>(credentials[i + 2]);
      for (int k = 18; k >= 0; k -= 6) out.push_back(digits[(v >> k) & 63u]);
    }
    if (i < credentials.size()) {
      unsigned v = static_cast<unsigned>(static_cast<unsigned char>(credentials[i])) << 16;
      if (i + 1 < credentials.size()) v |= static_cast<unsigned>(static_cast<unsigned char>(credentials[i + 1])) << 8;
      out.push_back(digits[(v >> 18) & 63u]);
      out.push_back(digits[(v >> 12) & 63u]);
      out.push_back(i + 1 < credentials.size() ? digits[(v >> 6) & 63u] : '=');
      out.push_back('=');
    }
    return out;
  }

  explicit loopback_proxy(std::string basic_credentials = {}) : credentials_(std::move(basic_credentials)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listener_ < 0) throw std::runtime_error("loopback_proxy: socket");
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("loopback_proxy: cannot listen on 127.0.0.1");
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~loopback_proxy() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  int port() const { return port_; }
  std::vector<std::string> request_lines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  std::vector<std::string> authorizations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return auths_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      open_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  static int connect_to(const std::string& host, int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (fd < 0 || ::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) ::close(fd);
      return -1;
    }
    return fd;
  }

  // Both ways until either side closes.
  static void relay(int a, int b) {
    char buf[16384];
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (::poll(fds, 2, 30000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
        if (n <= 0 || !write_all(fds[1 - i].fd, std::string_view(buf, static_cast<std::size_t>(n)))) return;
      }
    }
  }

  void serve(int client) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536 && ::recv(client, &c, 1, 0) == 1)
      head.push_back(c);
    const std::string line = head.substr(0, head.find("\r\n"));
    std::string auth;
    const std::string key = "\r\nproxy-authorization: ";
    std::string lowered = head;
    for (char& ch : lowered) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (const auto at = lowered.find(key); at != std::string::npos)
      auth = head.substr(at + key.size(), head.find("\r\n", at + key.size()) - (at + key.size()));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.push_back(line);
      auths_.push_back(auth);
    }
    if (!credentials_.empty() && auth != basic(credentials_)) {
      write_all(client, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n");
      finish(client);
      return;
    }
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    const std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    int upstream = -1;
    if (method == "CONNECT") {
      const auto colon = target.rfind(':');
      upstream = connect_to(target.substr(0, colon), std::stoi(target.substr(colon + 1)));
      if (upstream < 0) {
        write_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
      } else {
        write_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
        relay(client, upstream);
      }
    } else if (target.rfind("http://", 0) == 0) {
      const auto slash = target.find('/', 7);
      const std::string authority = target.substr(7, slash - 7);
      const auto colon = authority.rfind(':');
      upstream = connect_to(authority.substr(0, colon), colon == std::string::npos ? 80 : std::stoi(authority.substr(colon + 1)));
      // One exchange per connection: the server closes after its answer, and so does the tunnel.
      std::string rest = head.substr(head.find("\r\n"));
      rest.insert(2, "Connection: close\r\n");
      if (upstream >= 0 && write_all(upstream, method + " " + target.substr(slash) + " HTTP/1.1" + rest))
        relay(client, upstream);
    } else {
      write_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    if (upstream >= 0) ::close(upstream);
    finish(client);
  }

  // Closes the client's socket, forgetting it first (so that the destructor never shuts down a
  // number the system has handed out again).
  void finish(int client) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_.erase(std::remove(open_.begin(), open_.end(), client), open_.end());
    }
    ::shutdown(client, SHUT_RDWR);
    ::close(client);
  }

  std::string credentials_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<int> open_;
  std::vector<std::string> lines_, auths_;
};
