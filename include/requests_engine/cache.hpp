// cache.hpp: the content-addressed cache: keys (request hash, sample), the disk, memory and
// null caches, the entry format, folder maintenance, and the request hash.
#pragma once

#include "provider.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// Where one answer is stored: the request hash and the sample index (0, 1, ...).
struct cache_key {
  std::string hash;
  std::size_t sample = 0;
  [[nodiscard]] std::string name() const { return hash + "-" + std::to_string(sample); }
};

/// Counts kept by the engine about its cache.
struct cache_stats {
  std::size_t hits = 0;          ///< answers served from the cache (requests that skipped the network)
  std::size_t misses = 0;        ///< lookups that found nothing usable
  std::size_t writes = 0;        ///< answers stored
  std::size_t write_errors = 0;  ///< answers that could not be stored (reported through on_log)
  std::size_t corrupt = 0;       ///< entries found unreadable and treated as missing
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
};

// A cache is a type with these members, all safe to call from several threads at once (the
// engine holds it through a shared_ptr: pass one to share a cache, or to use a type that
// cannot be moved):
//   explicit Cache(const options&);                              // or default-constructible
//   std::optional<std::string> load(const cache_key&);             // the stored entry, or none
//   void store(const cache_key&, const std::string& entry);        // throws on failure
// Entries are opaque text written by the engine; a cache stores and returns them verbatim.

/// The default cache: one file per (hash, sample) under options::cache_dir, sharded by the
/// first byte of the hash (`ab/abcdef...-0.json`), written to a temporary file in the same
/// folder and renamed into place: a reader never sees a torn entry, and several processes
/// (or machines sharing the folder) may use one directory. Off when cache_dir is empty.
class disk_cache {
 public:
  disk_cache() = default;
  /// Creates the folder if needed; throws std::runtime_error if it cannot be written.
  REQUESTS_ENGINE_INLINE explicit disk_cache(const std::string& dir);
  REQUESTS_ENGINE_INLINE explicit disk_cache(const class options& o);

  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::string> load(const cache_key& k) const;
  REQUESTS_ENGINE_INLINE void store(const cache_key& k, const std::string& entry) const;
  [[nodiscard]] bool enabled() const noexcept { return !dir_.empty(); }
  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string path(const cache_key& k) const;

 private:
  std::string dir_;
};

/// An in-process cache (lost at exit): for tests, and for algorithms that only need
/// deduplication and stable samples within one run. Copies share one store.
class memory_cache {
 public:
  memory_cache() = default;
  explicit memory_cache(const class options&) {}
  [[nodiscard]] std::optional<std::string> load(const cache_key& k) const {
    std::lock_guard<std::mutex> lock(state_->m);
    auto it = state_->entries.find(k.name());
    if (it == state_->entries.end()) return std::nullopt;
    return it->second;
  }
  void store(const cache_key& k, const std::string& entry) {
    std::lock_guard<std::mutex> lock(state_->m);
    state_->entries[k.name()] = entry;
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard<std::mutex> lock(state_->m);
    return state_->entries.size();
  }

 private:
  struct state {
    std::mutex m;
    std::map<std::string, std::string> entries;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

/// No cache at all: every request goes to the network.
class no_cache {
 public:
  no_cache() = default;
  explicit no_cache(const class options&) {}
  [[nodiscard]] std::optional<std::string> load(const cache_key&) const { return std::nullopt; }
  void store(const cache_key&, const std::string&) const {}
  [[nodiscard]] static constexpr bool enabled() noexcept { return false; }
};

/// Maintenance of a disk cache folder (used by `requests-engine cache ...`).
struct cache_report {
  std::size_t entries = 0;
  std::uint64_t bytes = 0;
  std::size_t bad = 0;        ///< unreadable entries (verify)
  std::size_t removed = 0;    ///< files removed (verify with remove, prune)
  std::size_t temporary = 0;  ///< stray temporary files left by a crash
  std::map<std::string, std::size_t> by_namespace;  ///< entries per namespace that created them
  std::vector<std::string> problems;  ///< one line per bad entry: path and reason
};
namespace cache_maintenance {
/// Counts entries, bytes and stray temporary files, and entries per namespace.
[[nodiscard]] REQUESTS_ENGINE_INLINE cache_report stats(const std::string& dir);
/// Reads and checks every entry; with `remove`, deletes bad entries and temporary files older
/// than `temp_age` (a younger one may belong to a writer at work).
[[nodiscard]] REQUESTS_ENGINE_INLINE cache_report verify(const std::string& dir, bool remove,
                                                         std::chrono::seconds temp_age = std::chrono::seconds(600));
/// Removes entries created before `older_than` ago (0 = any age) and, if `name_space` is
/// set, only those created under that namespace; plus temporary files older than `temp_age`.
[[nodiscard]] REQUESTS_ENGINE_INLINE cache_report prune(const std::string& dir, std::chrono::seconds older_than,
                                                        const std::optional<std::string>& name_space,
                                                        std::chrono::seconds temp_age = std::chrono::seconds(600));
/// Writes every good entry as one JSON line: hash, sample, created, namespace, provider,
/// response (and request when it was stored). Returns the number of lines.
REQUESTS_ENGINE_INLINE std::size_t export_jsonl(const std::string& dir, std::ostream& out);
}  // namespace cache_maintenance

/// The request fields left out of the request hash because they do not change the answer.
inline const std::vector<std::string>& fields_ignored_by_hash() {
  static const std::vector<std::string> fields = {"stream", "stream_options", "user", "metadata", "store"};
  return fields;
}

/// SHA-256 (hex) of the canonical JSON (keys sorted, no whitespace) of the provider's cache
/// identity and the body without the fields above and without prompt-cache breakpoints
/// ("cache_control": they do not change the answer).
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string request_hash(const json& provider_identity, const json& body);
namespace detail {
/// The same hash, from `body` already dumped (`body_dump` == body.dump()) and the identity
/// dumped once: no copy of the body unless it holds an ignored field.
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string request_hash_dumped(const std::string& identity_dump,
                                                                     const json& body, const std::string& body_dump);
}  // namespace detail

namespace detail {

/// The cache, type-erased like the provider.
class cache_ops {
 public:
  virtual ~cache_ops() = default;
  virtual std::optional<std::string> load(const cache_key& k) = 0;
  virtual void store(const cache_key& k, const std::string& entry) = 0;
};

template <class C, class = void>
struct has_enabled : std::false_type {};
template <class C>
struct has_enabled<C, std::void_t<decltype(std::declval<const C&>().enabled())>> : std::true_type {};

template <class Cache>
class cache_adapter final : public cache_ops {
 public:
  explicit cache_adapter(Cache& c) : c_(c) {}
  std::optional<std::string> load(const cache_key& k) override { return c_.load(k); }
  void store(const cache_key& k, const std::string& entry) override { c_.store(k, entry); }

 private:
  Cache& c_;
};

/// Null when the cache is switched off (no_cache, or a disk cache without a folder).
template <class Cache>
std::unique_ptr<cache_ops> make_cache_ops(Cache& c) {
  if constexpr (has_enabled<Cache>::value) {
    if (!c.enabled()) return nullptr;
  }
  return std::make_unique<cache_adapter<Cache>>(c);
}

/// A cache entry: one line of JSON metadata, then the provider's response body verbatim.
struct cache_entry {
  json meta;
  std::string body;
};
[[nodiscard]] REQUESTS_ENGINE_INLINE std::string encode_cache_entry(const cache_key& k, const json& identity,
                                                                    const std::string& name_space,
                                                                    const std::string& response_body,
                                                                    const std::string* request_body);
/// Checks the format, the key and the body length; on failure says why in `why`.
/// With `body_only`, a well-formed entry may come back with `meta` left empty (the fast path).
[[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<cache_entry> decode_cache_entry(const std::string& text,
                                                                                 const cache_key* expect,
                                                                                 std::string& why,
                                                                                 bool body_only = false);
/// The fast path's check of an entry's metadata line (the text before `nl`), without a parse.
[[nodiscard]] bool quick_entry_check(const std::string& text, std::size_t nl, const cache_key& expect);

}  // namespace detail

REQUESTS_ENGINE_NAMESPACE_END
