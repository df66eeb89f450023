// cache.ipp: the definitions of cache.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "cache.hpp"
#include "options.hpp"  // disk_cache(const options&)

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE std::string request_hash(const json& provider_identity, const json& body) {
  return detail::request_hash_dumped(provider_identity.dump(), body, body.dump());
}

namespace detail {

// Prompt-cache breakpoints do not change the answer: every "cache_control" member goes, and a
// "system" or "content" list of one text block that lost one becomes that text, the form an
// unmarked prompt has. True when something was removed.
inline bool strip_cache_control(json& j) {
  bool changed = false;
  if (j.is_object()) {
    changed = j.erase("cache_control") > 0;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!strip_cache_control(*it)) continue;
      changed = true;
      if ((it.key() == "system" || it.key() == "content") && it->is_array() && it->size() == 1) {
        const json& block = it->front();
        if (block.is_object() && block.size() == 2 && block.contains("text") && block["text"].is_string() &&
            block.value("type", std::string()) == "text") {
          json text = block["text"];
          *it = std::move(text);
        }
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) changed = strip_cache_control(e) || changed;
  }
  return changed;
}

REQUESTS_ENGINE_INLINE std::string request_hash_dumped(const std::string& identity_dump, const json& body,
                                                       const std::string& body_dump) {
  // The canonical text is {"body":BODY,"provider":IDENTITY,"v":1}: nlohmann's object is a
  // std::map, so dump() writes keys sorted and without whitespace, and so does this.
  bool strip = false;
  if (body.is_object())
    for (const auto& f : fields_ignored_by_hash()) strip = strip || body.contains(f);
  const bool marked = body_dump.find("\"cache_control\"") != std::string::npos;
  std::string canonical = "{\"body\":";
  if (strip || marked) {
    json stripped = body;
    for (const auto& f : fields_ignored_by_hash()) stripped.erase(f);
    if (marked) strip_cache_control(stripped);
    canonical += stripped.dump();
  } else {
    canonical += body_dump;
  }
  canonical += ",\"provider\":";
  canonical += identity_dump;
  canonical += ",\"v\":1}";
  return sha256_hex(canonical);
}

constexpr const char* cache_format = "requests_engine.cache.v1";

REQUESTS_ENGINE_INLINE std::string encode_cache_entry(const cache_key& k, const json& identity,
                                                      const std::string& name_space,
                                                      const std::string& response_body,
                                                      const std::string* request_body) {
  json meta = {{"format", cache_format},
               {"hash", k.hash},
               {"sample", k.sample},
               {"created", static_cast<std::int64_t>(std::time(nullptr))},
               {"namespace", name_space},
               {"provider", identity},
               {"body_bytes", response_body.size()}};
  if (request_body) {
    json req = detail::parse_json(*request_body);
    if (!req.is_discarded()) meta["request"] = std::move(req);
  }
  std::string out = meta.dump();
  out.push_back('\n');
  out += response_body;
  return out;
}

// The hit path's check, without parsing JSON: the metadata line is written by dump(), keys
// sorted, so it starts {"body_bytes":N,"created":N,"format":"...","hash":"..." and ends
// "sample":N}. Anything unexpected falls back to the full parse.
REQUESTS_ENGINE_INLINE bool quick_entry_check(const std::string& text, std::size_t nl, const cache_key& expect) {
  std::size_t pos = 0;
  auto literal = [&](std::string_view lit) {
    if (text.compare(pos, lit.size(), lit.data(), lit.size()) != 0) return false;
    pos += lit.size();
    return true;
  };
  auto number = [&](std::uint64_t& v) {
    std::size_t start = pos;
    v = 0;
    while (pos < nl && text[pos] >= '0' && text[pos] <= '9' && pos - start < 19)
      v = v * 10 + static_cast<std::uint64_t>(text[pos++] - '0');
    return pos > start;
  };
  std::uint64_t body_bytes = 0, created = 0;
  if (!literal("{\"body_bytes\":") || !number(body_bytes) || !literal(",\"created\":") || !number(created) ||
      !literal(",\"format\":\"") || !literal(cache_format) || !literal("\",\"hash\":\"") || !literal(expect.hash) ||
      !literal("\","))
    return false;
  if (body_bytes != text.size() - nl - 1) return false;
  const std::string tail = ",\"sample\":" + std::to_string(expect.sample) + "}";
  return nl >= tail.size() && text.compare(nl - tail.size(), tail.size(), tail) == 0;
}

REQUESTS_ENGINE_INLINE std::optional<cache_entry> decode_cache_entry(const std::string& text,
                                                                   const cache_key* expect, std::string& why,
                                                                   bool body_only) {
  auto nl = text.find('\n');
  if (nl == std::string::npos) {
    why = text.empty() ? "empty file" : "no metadata line (truncated?)";
    return std::nullopt;
  }
  cache_entry e;
  if (body_only && expect && quick_entry_check(text, nl, *expect)) {
    e.body = text.substr(nl + 1);
    return e;  // meta left empty: the hit path needs only the body
  }
  e.meta = detail::parse_json(std::string_view(text).substr(0, nl));
  if (e.meta.is_discarded() || !e.meta.is_object()) {
    why = "the metadata line is not a JSON object";
    return std::nullopt;
  }
  if (detail::json_string_field(e.meta, "format") != cache_format) {
    why = "unknown format '" + detail::json_string_field(e.meta, "format") + "'";
    return std::nullopt;
  }
  auto hash = e.meta.find("hash");
  auto sample = e.meta.find("sample");
  auto bytes = e.meta.find("body_bytes");
  if (hash == e.meta.end() || !hash->is_string() || sample == e.meta.end() || !sample->is_number_unsigned() ||
      bytes == e.meta.end() || !bytes->is_number_unsigned()) {
    why = "the metadata lacks hash, sample or body_bytes";
    return std::nullopt;
  }
  if (expect && (hash->get<std::string>() != expect->hash || sample->get<std::size_t>() != expect->sample)) {
    why = "it holds " + hash->get<std::string>() + "-" + std::to_string(sample->get<std::size_t>()) +
          ", not the entry its name says";
    return std::nullopt;
  }
  const std::size_t body_size = text.size() - nl - 1;
  if (bytes->get<std::size_t>() != body_size) {
    why = "the body has " + std::to_string(body_size) + " bytes, the metadata says " +
          std::to_string(bytes->get<std::size_t>()) + " (truncated?)";
    return std::nullopt;
  }
  e.body = text.substr(nl + 1);
  return e;
}

REQUESTS_ENGINE_INLINE std::string unique_suffix() {
  // Unique across threads, processes and machines sharing a folder.
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t process_salt = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  char buf[64];
#if defined(_WIN32)
  const long long pid = 0;
#else
  const long long pid = static_cast<long long>(::getpid());
#endif
  std::snprintf(buf, sizeof buf, "%lld-%016llx-%llu", pid, static_cast<unsigned long long>(process_salt),
                static_cast<unsigned long long>(counter.fetch_add(1)));
  return buf;
}

REQUESTS_ENGINE_INLINE std::optional<std::string> read_file(const std::string& path) {
#if !defined(_WIN32)
  // The cache's hit path: one open, one fstat, reads straight into a string of the right size.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  }
  struct ::stat st {};
  std::string data;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) data.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  for (;;) {
    if (got == data.size()) data.resize(data.size() + 4096);  // grown since fstat (or no size)
    const ssize_t n = ::read(fd, &data[got], data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  data.resize(got);
  return data;
#else
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (errno == ENOENT) return std::nullopt;
    throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[16384];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw std::runtime_error("cannot read " + path);
  return data;
#endif
}

// Writes `data` to a temporary file next to `path` and renames it into place.
REQUESTS_ENGINE_INLINE void write_file_atomically(const std::string& path, const std::string& data) {
  const auto slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? std::string(".") : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string tmp = folder + "/.tmp-" + name + "-" + unique_suffix();
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    f = std::fopen(tmp.c_str(), "wb");
  }
  if (!f) throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename into " + path + ": " + std::strerror(err));
  }
}

// The key a cache file's name stands for, or nothing for files that are not entries.
REQUESTS_ENGINE_INLINE std::optional<cache_key> key_from_file_name(const std::string& name) {
  const std::string suffix = ".json";
  if (name.size() < 64 + 2 + suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  if (name[64] != '-') return std::nullopt;
  cache_key k;
  k.hash = name.substr(0, 64);
  for (char ch : k.hash)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return std::nullopt;
  std::string digits = name.substr(65, name.size() - 65 - suffix.size());
  if (digits.empty()) return std::nullopt;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return std::nullopt;
    k.sample = k.sample * 10 + static_cast<std::size_t>(ch - '0');
  }
  return k;
}

}  // namespace detail

REQUESTS_ENGINE_INLINE disk_cache::disk_cache(const std::string& dir) {
  if (dir.empty()) return;  // off
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("requests_engine: cannot create the cache directory '" + dir + "': " + ec.message());
  const std::string probe = dir + "/.probe-" + detail::unique_suffix();
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f)
    throw std::runtime_error("requests_engine: the cache directory '" + dir + "' is not writable: " + std::strerror(errno));
  std::fclose(f);
  std::remove(probe.c_str());
  dir_ = dir;
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

REQUESTS_ENGINE_INLINE disk_cache::disk_cache(const options& o) : disk_cache(o.cache_dir()) {}

REQUESTS_ENGINE_INLINE std::string disk_cache::path(const cache_key& k) const {
  return dir_ + "/" + k.hash.substr(0, 2) + "/" + k.name() + ".json";
}

REQUESTS_ENGINE_INLINE std::optional<std::string> disk_cache::load(const cache_key& k) const {
  if (dir_.empty() || k.hash.size() < 2) return std::nullopt;
  return detail::read_file(path(k));
}

REQUESTS_ENGINE_INLINE void disk_cache::store(const cache_key& k, const std::string& entry) const {
  if (dir_.empty()) return;
  if (k.hash.size() < 2) throw std::invalid_argument("requests_engine: cache key without a hash");
  detail::write_file_atomically(path(k), entry);
}

namespace cache_maintenance {
namespace fs = std::filesystem;

template <class F>
void for_each_file(const std::string& dir, F&& f) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error("requests_engine: '" + dir + "' is not a cache directory");
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    f(it->path());
  }
  if (ec) throw std::runtime_error("requests_engine: cannot list '" + dir + "': " + ec.message());
}

inline bool is_temporary(const std::string& name) { return name.rfind(".tmp-", 0) == 0 || name.rfind(".probe-", 0) == 0; }

inline bool older_than(const fs::path& p, std::chrono::seconds age) {
  std::error_code ec;
  auto t = fs::last_write_time(p, ec);
  if (ec) return false;
  return fs::file_time_type::clock::now() - t > age;
}

REQUESTS_ENGINE_INLINE cache_report stats(const std::string& dir) {
  cache_report r;
  for_each_file(dir, [&](const fs::path& p) {
    const std::string name = p.filename().string();
    if (is_temporary(name)) {
      ++r.temporary;
      return;
    }
    if (!detail::key_from_file_name(name)) return;
    std::error_code ec;
    ++r.entries;
    r.bytes += fs::file_size(p, ec);
    std::ifstream in(p, std::ios::binary);
    std::string first;
    std::getline(in, first);
    json meta = detail::parse_json(first);
    r.by_namespace[meta.is_object() ? detail::json_string_field(meta, "namespace") : std::string("?")]++;
  });
  return r;
}

REQUESTS_ENGINE_INLINE cache_report verify(const std::string& dir, bool remove, std::chrono::seconds temp_age) {
  cache_report r;
  for_each_file(dir, [&](const fs::path& p) {
    const std::string name = p.filename().string();
    std::error_code ec;
    if (is_temporary(name)) {
      ++r.temporary;
      if (remove && older_than(p, temp_age) && fs::remove(p, ec)) ++r.removed;
      return;
    }
    auto key = detail::key_from_file_name(name);
    if (!key) return;
    ++r.entries;
    r.bytes += fs::file_size(p, ec);
    std::string why;
    std::optional<std::string> text;
    try {
      text = detail::read_file(p.string());
    } catch (const std::exception& e) {
      why = e.what();
    }
    bool good = false;
    if (text) {
      auto entry = detail::decode_cache_entry(*text, &*key, why);
      if (entry && p.parent_path().filename().string() != key->hash.substr(0, 2)) {
        why = "it is in the wrong shard folder";
      } else if (entry) {
        good = !detail::parse_json(entry->body).is_discarded();
        if (!good) why = "the stored response is not JSON";
      }
    }
    if (!good) {
      ++r.bad;
      r.problems.push_back(p.string() + ": " + why);
      if (remove && fs::remove(p, ec)) ++r.removed;
    }
  });
  return r;
}

REQUESTS_ENGINE_INLINE cache_report prune(const std::string& dir, std::chrono::seconds age,
                                          const std::optional<std::string>& name_space,
                                          std::chrono::seconds temp_age) {
  if (age.count() <= 0 && !name_space)
    throw std::invalid_argument("requests_engine: prune needs an age, a namespace, or both");
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  cache_report r;
  for_each_file(dir, [&](const fs::path& p) {
    const std::string name = p.filename().string();
    std::error_code ec;
    if (is_temporary(name)) {
      ++r.temporary;
      if (older_than(p, temp_age) && fs::remove(p, ec)) ++r.removed;
      return;
    }
    if (!detail::key_from_file_name(name)) return;
    ++r.entries;
    std::ifstream in(p, std::ios::binary);
    std::string first;
    std::getline(in, first);
    in.close();
    json meta = detail::parse_json(first);
    if (!meta.is_object()) return;  // verify's business
    bool match = true;
    const std::int64_t created = detail::json_count(meta, "created");  // 0: unknown, never too old
    if (age.count() > 0) match = created > 0 && now - created >= age.count();
    if (name_space) match = match && detail::json_string_field(meta, "namespace") == *name_space;
    if (match && fs::remove(p, ec)) ++r.removed;
  });
  return r;
}

REQUESTS_ENGINE_INLINE std::size_t export_jsonl(const std::string& dir, std::ostream& out) {
  std::size_t lines = 0;
  for_each_file(dir, [&](const fs::path& p) {
    auto key = detail::key_from_file_name(p.filename().string());
    if (!key) return;
    std::optional<std::string> text;
    try {
      text = detail::read_file(p.string());
    } catch (const std::exception&) {
      return;
    }
    std::string why;
    auto entry = text ? detail::decode_cache_entry(*text, &*key, why) : std::nullopt;
    if (!entry) return;
    json response = detail::parse_json(entry->body);
    if (response.is_discarded()) return;
    // The metadata is read as found on disk: a member of the wrong type is left out, never thrown.
    const auto member = [&](const char* name, json fallback) {
      const auto it = entry->meta.find(name);
      return it != entry->meta.end() && it->type() == fallback.type() ? *it : fallback;
    };
    json line = {{"hash", key->hash},
                 {"sample", key->sample},
                 {"created", detail::json_count(entry->meta, "created")},
                 {"namespace", member("namespace", std::string())},
                 {"provider", member("provider", json::object())},
                 {"response", std::move(response)}};
    if (entry->meta.contains("request")) line["request"] = entry->meta["request"];
    out << line.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    ++lines;
  });
  return lines;
}

}  // namespace cache_maintenance

REQUESTS_ENGINE_NAMESPACE_END
