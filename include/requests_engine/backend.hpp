// backend.hpp: batch_backend, a provider that is a function of yours taking a batch of
// requests (a local model's batch call), fed by the engine's collector (options::batching).
#pragma once

#include "provider.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// A model you call yourself, a batch at a time: the engine collects single requests (from
/// run(), or from submit() on many threads) into batches (see batching_options) and calls
/// `function` with each. Everything in front of it works as with an HTTP provider: the cache
/// (a stored answer never reaches the function), identical requests in flight sent once,
/// samples per namespace, params::n asking only for the missing samples, retries, cancel.
///
/// The function answers every request of its batch, in order: a completion (its `text`, or
/// `choices` when params::n asks for several; `usage` and `model` if known), or an error. An
/// error of code rate_limited, server_error, timeout or connection is retried like an HTTP one,
/// in a later batch; an exception fails the requests of that batch only; a request left
/// without an answer (a shorter vector) fails alone. It is called from the engine's collector
/// threads: up to batching_options::concurrent calls at once.
class batch_backend {
 public:
  using function = std::function<std::vector<result<completion>>(const std::vector<batch_request>&)>;

  /// `name` names the model (and whatever else makes its answers differ: a version, a
  /// checkpoint): answers stored under one name are replayed for that name only.
  REQUESTS_ENGINE_INLINE batch_backend(std::string name, function fn);

  /// The request as canonical JSON (what is hashed for the cache; the function gets the
  /// conversation and params themselves).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<json> make_body(const conversation& c, const params& p) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<result<std::string>> send_batch(
      const std::vector<batch_request>& batch, batch_context& context) const;
  /// Reads an answer in the stored form (see encode).
  [[nodiscard]] REQUESTS_ENGINE_INLINE result<completion> parse_response(const http_response& r) const;
  [[nodiscard]] json cache_identity() const { return {{"kind", "batch_backend"}, {"name", name_}}; }
  /// One single-choice answer per choice: the input tokens go to the first, the output
  /// tokens are shared out evenly (the remainder to the first).
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::vector<std::string> split_choices(const std::string& body) const;

  /// The stored form of an answer: {"object":"requests_engine.completion","model","choices":
  /// [{"text","finish_reason","tool_calls"}],"usage":{...},"raw"}. A completion with no
  /// choices stores its text as the one choice. Throws nlohmann::json's type_error on text that
  /// is not UTF-8.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE std::string encode(const completion& c);
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  function fn_;
};

REQUESTS_ENGINE_NAMESPACE_END
