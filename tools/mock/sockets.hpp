// requests_engine mock: socket helpers around cpp-httplib, to count connections, find the one
// that carries a request (to drop it on purpose), and wake idle keep-alive workers on stop().
#pragma once

#include "common.hpp"

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#ifdef __linux__
#include <dirent.h>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>

namespace requests_engine_mock {
namespace detail {

// Exposes the listening socket of httplib::Server / httplib::SSLServer
// (svr_sock_ is protected).
template <class Base>
class listener final : public Base {
 public:
  using Base::Base;
  int listen_socket() const { return static_cast<int>(this->svr_sock_.load()); }
};

// Wraps httplib's ThreadPool; every enqueue is one accepted TCP connection.
class counting_task_queue final : public httplib::TaskQueue {
 public:
  counting_task_queue(std::size_t threads, std::atomic<std::size_t>& counter)
      : pool_(threads == 0 ? 1 : threads), counter_(counter) {}
  void enqueue(std::function<void()> fn) override {
    counter_.fetch_add(1, std::memory_order_relaxed);
    pool_.enqueue(std::move(fn));
  }
  void shutdown() override { pool_.shutdown(); }
  void on_idle() override { pool_.on_idle(); }

 private:
  httplib::ThreadPool pool_;
  std::atomic<std::size_t>& counter_;
};

// cpp-httplib 0.11.4 worker threads wait for the next request on an idle
// keep-alive connection for the full keep-alive timeout without looking at
// stop(); so stop() would block that long while any client keeps a connection
// open. This shuts down (not closes: the worker still owns the fd) every
// accepted socket whose local address is the listening address, which wakes
// the workers up at once. Linux only (/proc/self/fd); elsewhere a no-op.
inline std::uint16_t sockaddr_port(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

inline bool sockaddr_is_wildcard(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr == htonl(INADDR_ANY);
  if (a.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
    return std::memcmp(&in6, &in6addr_any, sizeof in6) == 0;
  }
  return false;
}

inline bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  if (a.ss_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, sizeof(in6_addr)) == 0;
  return false;
}

inline void shutdown_accepted_connections(const sockaddr_storage& listen_addr) {
#ifdef __linux__
  const std::uint16_t port = sockaddr_port(listen_addr);
  if (port == 0) return;
  const bool wildcard = sockaddr_is_wildcard(listen_addr);
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return;
  const int self_fd = dirfd(d);
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || v < 0 || v > INT32_MAX) continue;
    const int fd = static_cast<int>(v);
    if (fd == self_fd) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;  // not a socket
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    if (sockaddr_port(local) != port) continue;
    if (!wildcard && !same_address(local, listen_addr)) continue;
    sockaddr_storage peer{};
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;  // listener / unconnected
    ::shutdown(fd, SHUT_RDWR);
  }
  closedir(d);
#else
  (void)listen_addr;
#endif
}

// The accepted socket that carries `req`. A TLS connection names it; for plain HTTP it is the
// socket whose local and peer ports are the request's (unique while the handler runs, since
// this thread owns that connection). Linux only (/proc/self/fd) for plain HTTP.
inline int request_socket(const httplib::Request& req) {
  if (req.ssl != nullptr) return SSL_get_fd(req.ssl);
#ifdef __linux__
  if (req.local_port <= 0 || req.remote_port <= 0) return -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  const int self_fd = dirfd(d);
  int found = -1;
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || v < 0 || v > INT32_MAX) continue;
    const int fd = static_cast<int>(v);
    if (fd == self_fd) continue;
    sockaddr_storage local{}, peer{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    if (sockaddr_port(local) != req.local_port) continue;
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    if (sockaddr_port(peer) != req.remote_port) continue;
    char host[INET6_ADDRSTRLEN] = {};
    const void* addr = peer.ss_family == AF_INET
                           ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in&>(peer).sin_addr)
                           : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr);
    if (inet_ntop(peer.ss_family, addr, host, sizeof host) == nullptr || req.remote_addr != host) continue;
    found = fd;
    break;
  }
  closedir(d);
  return found;
#else
  return -1;
#endif
}

// Ends the connection before a byte of the answer is written: the client sees the peer close
// (and, with SO_LINGER 0, a reset once httplib closes the socket). httplib's own write of the
// response then fails, which it treats as a broken connection. Shut down, not closed: httplib
// still owns the descriptor.
inline bool drop_connection(const httplib::Request& req) {
  const int fd = request_socket(req);
  if (fd < 0) return false;
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, static_cast<socklen_t>(sizeof lg));
  return ::shutdown(fd, SHUT_RDWR) == 0;
}

}  // namespace detail
}  // namespace requests_engine_mock
