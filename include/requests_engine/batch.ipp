// batch.ipp: the definitions of batch.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "batch.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

REQUESTS_ENGINE_INLINE std::string_view to_string(batch_status s) noexcept {
  switch (s) {
    case batch_status::validating: return "validating";
    case batch_status::in_progress: return "in_progress";
    case batch_status::finalizing: return "finalizing";
    case batch_status::completed: return "completed";
    case batch_status::failed: return "failed";
    case batch_status::expired: return "expired";
    case batch_status::cancelling: return "cancelling";
    case batch_status::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace detail {
// Case and underscores aside: Azure has been seen to write "Completed" or "InProgress".
inline std::optional<batch_status> batch_status_from(std::string_view s) {
  // Gemini's BATCH_STATE_* and Vertex AI's JOB_STATE_* (the Google SDKs' names for both).
  for (std::string_view prefix : {std::string_view("BATCH_STATE_"), std::string_view("JOB_STATE_")}) {
    if (s.substr(0, prefix.size()) != prefix) continue;
    const std::string_view rest = s.substr(prefix.size());
    if (rest == "PENDING" || rest == "QUEUED") return batch_status::validating;
    if (rest == "RUNNING" || rest == "UPDATING" || rest == "PAUSED") return batch_status::in_progress;
    if (rest == "SUCCEEDED" || rest == "PARTIALLY_SUCCEEDED") return batch_status::completed;
    if (rest == "FAILED") return batch_status::failed;
    if (rest == "CANCELLING") return batch_status::cancelling;
    if (rest == "CANCELLED") return batch_status::cancelled;
    if (rest == "EXPIRED") return batch_status::expired;
    return std::nullopt;
  }
  auto folded = [](std::string_view in) {
    std::string out;
    for (char ch : in)
      if (ch != '_') out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    return out;
  };
  const std::string wanted = folded(s);
  for (int i = 0; i <= static_cast<int>(batch_status::cancelled); ++i)
    if (folded(to_string(static_cast<batch_status>(i))) == wanted) return static_cast<batch_status>(i);
  return std::nullopt;
}
inline std::string batch_str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}
inline std::size_t batch_count(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_number_unsigned() ? it->get<std::size_t>() : 0;
}
constexpr const char* batch_format = "requests_engine.batch.v1";
// The HTTP status of a google.rpc.Code name (google/rpc/code.proto's mapping).
inline int http_status_of_google(std::string_view status) {
  static const std::pair<std::string_view, int> table[] = {
      {"INVALID_ARGUMENT", 400}, {"FAILED_PRECONDITION", 400}, {"OUT_OF_RANGE", 400}, {"UNAUTHENTICATED", 401},
      {"PERMISSION_DENIED", 403}, {"NOT_FOUND", 404},          {"ABORTED", 409},      {"ALREADY_EXISTS", 409},
      {"RESOURCE_EXHAUSTED", 429}, {"CANCELLED", 499},         {"UNIMPLEMENTED", 501}, {"UNAVAILABLE", 503},
      {"DEADLINE_EXCEEDED", 504}};
  for (const auto& [name, code] : table)
    if (name == status) return code;
  return 500;
}
constexpr std::string_view batch_id_prefix = "request-";
}  // namespace detail

REQUESTS_ENGINE_INLINE batch_status batch_job::status() const noexcept {
  std::optional<batch_status> least;
  bool all_completed = true;
  for (const auto& p : parts) {
    if (!is_final(p.status) && (!least || p.status < *least)) least = p.status;
    all_completed = all_completed && p.status == batch_status::completed;
  }
  if (least) return *least;
  if (all_completed) return batch_status::completed;
  for (batch_status s : {batch_status::failed, batch_status::expired, batch_status::cancelled})
    for (const auto& p : parts)
      if (p.status == s) return s;
  return batch_status::completed;
}

REQUESTS_ENGINE_INLINE std::size_t batch_job::succeeded() const noexcept {
  std::size_t n = 0;
  for (const auto& p : parts) n += p.succeeded;
  return n;
}

REQUESTS_ENGINE_INLINE std::size_t batch_job::failed() const noexcept {
  std::size_t n = 0;
  for (const auto& p : parts) n += p.failed;
  return n;
}

REQUESTS_ENGINE_INLINE json batch_job::to_json() const {
  json ps = json::array();
  for (const auto& p : parts)
    ps.push_back({{"id", p.id}, {"first", p.first}, {"count", p.count}, {"status", std::string(to_string(p.status))},
                  {"succeeded", p.succeeded}, {"failed", p.failed}, {"input_file_id", p.input_file_id},
                  {"output_file_id", p.output_file_id}, {"error_file_id", p.error_file_id},
                  {"results_url", p.results_url}, {"message", p.message}});
  json j = {{"format", detail::batch_format}, {"api", api}, {"endpoint", endpoint}, {"identity", identity},
            {"namespace", name_space}, {"hashes", hashes}, {"samples", samples}, {"parts", std::move(ps)},
            {"cached", cached}, {"user", user}};
  if (offline) j["offline"] = true;
  return j;
}

REQUESTS_ENGINE_INLINE batch_job batch_job::from_json(const json& j) {
  auto bad = [](const std::string& what) {
    return std::invalid_argument("requests_engine: batch job: " + what);
  };
  if (!j.is_object() || detail::batch_str(j, "format") != detail::batch_format)
    throw bad("not a batch job (\"format\" is not \"" + std::string(detail::batch_format) + "\")");
  batch_job b;
  try {
    b.api = j.at("api").get<std::string>();
    b.endpoint = j.at("endpoint").get<std::string>();
    b.identity = j.at("identity");
    b.name_space = j.at("namespace").get<std::string>();
    b.hashes = j.at("hashes").get<std::vector<std::string>>();
    b.samples = j.at("samples").get<std::vector<std::size_t>>();
    b.user = j.value("user", json());
    b.cached = j.value("cached", std::vector<std::size_t>());  // absent in files written before it existed
    b.offline = j.value("offline", false);
    for (const json& p : j.at("parts")) {
      batch_part part;
      part.id = p.at("id").get<std::string>();
      part.first = p.at("first").get<std::size_t>();
      part.count = p.at("count").get<std::size_t>();
      auto st = detail::batch_status_from(p.at("status").get<std::string>());
      if (!st) throw bad("unknown status \"" + p.at("status").get<std::string>() + "\"");
      part.status = *st;
      part.succeeded = p.value("succeeded", std::size_t(0));
      part.failed = p.value("failed", std::size_t(0));
      part.input_file_id = p.value("input_file_id", std::string());
      part.output_file_id = p.value("output_file_id", std::string());
      part.error_file_id = p.value("error_file_id", std::string());
      part.results_url = p.value("results_url", std::string());
      part.message = p.value("message", std::string());
      if (part.first + part.count > b.hashes.size()) throw bad("part " + part.id + " is outside the job");
      b.parts.push_back(std::move(part));
    }
  } catch (const json::exception& e) {
    throw bad(std::string("malformed: ") + e.what());
  }
  if (b.samples.size() != b.hashes.size()) throw bad("\"samples\" and \"hashes\" differ in length");
  for (std::size_t c : b.cached)
    if (c >= b.hashes.size()) throw bad("cached request " + std::to_string(c) + " is outside the job");
  if (b.api != "openai" && b.api != "anthropic" && b.api != "gemini") throw bad("unknown api \"" + b.api + "\"");
  return b;
}

REQUESTS_ENGINE_INLINE void batch_job::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << to_json().dump(1) << '\n';
    if (!out.flush()) throw std::runtime_error("requests_engine: cannot write the batch job file " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("requests_engine: cannot rename " + tmp + " to " + path + ": " + ec.message());
}

REQUESTS_ENGINE_INLINE batch_job batch_job::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("requests_engine: cannot read the batch job file " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json j = detail::parse_json(text);
  if (j.is_discarded()) throw std::invalid_argument("requests_engine: batch job file " + path + " is not JSON");
  return from_json(j);
}

// --- batch_client ---

REQUESTS_ENGINE_INLINE batch_client::batch_client(openai_compatible p, options o, batch_settings s)
    : provider_(std::move(p)), api_("openai"), options_(std::move(o)), settings_(std::move(s)) {
  init(std::get<openai_compatible>(provider_).endpoint());
}

REQUESTS_ENGINE_INLINE batch_client::batch_client(openai_responses p, options o, batch_settings s)
    : provider_(std::move(p)), api_("openai"), options_(std::move(o)), settings_(std::move(s)) {
  init(std::get<openai_responses>(provider_).endpoint());
}

REQUESTS_ENGINE_INLINE batch_client::batch_client(openai_embeddings p, options o, batch_settings s)
    : provider_(std::move(p)), api_("openai"), options_(std::move(o)), settings_(std::move(s)) {
  shared_samples_ = true;
  init(std::get<openai_embeddings>(provider_).endpoint());
}

REQUESTS_ENGINE_INLINE batch_client::batch_client(anthropic p, options o, batch_settings s)
    : provider_(std::move(p)), api_("anthropic"), options_(std::move(o)), settings_(std::move(s)) {
  init(std::get<anthropic>(provider_).endpoint());
}

REQUESTS_ENGINE_INLINE batch_client::batch_client(gemini p, options o, batch_settings s)
    : provider_(std::move(p)), api_("gemini"), options_(std::move(o)), settings_(std::move(s)) {
  init(std::get<gemini>(provider_).endpoint());
}

REQUESTS_ENGINE_INLINE void batch_client::init(const std::string& endpoint) {
  endpoint_ = endpoint;
  bool azure = false;  // Azure OpenAI's Batch API
  if (api_ == "openai") {
    // The provider made sure its endpoint ends in /chat/completions, /responses or /embeddings:
    // the base (.../v1) is what precedes it.
    const std::string_view suffix = std::holds_alternative<openai_compatible>(provider_)  ? "/chat/completions"
                                    : std::holds_alternative<openai_responses>(provider_) ? "/responses"
                                                                                          : "/embeddings";
    azure = std::visit(
        [](const auto& p) {
          if constexpr (std::is_base_of_v<detail::openai_connection, std::decay_t<decltype(p)>>) return p.is_azure();
          else return false;
        },
        provider_);
    // Azure's classic routes carry ?api-version=, which every batch call then carries too.
    std::string path = endpoint;
    if (const auto q = endpoint.find('?'); azure && q != std::string::npos) {
      path = endpoint.substr(0, q);
      query_ = endpoint.substr(q);
    }
    if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
      throw std::invalid_argument("requests_engine: batch_client: the endpoint " + endpoint + " does not end in " +
                                  std::string(suffix));
    base_ = path.substr(0, path.size() - suffix.size());
    line_url_ = parse_url(path).path;
    if (azure) {
      // {endpoint}/openai/v1 (v1), or {endpoint}/openai for the classic deployment routes; the
      // lines and the batch name the API alone ("/chat/completions"), as Azure documents.
      if (const auto at = base_.find("/openai/deployments/"); at != std::string::npos) base_ = base_.substr(0, at) + "/openai";
      line_url_ = std::string(suffix);
    }
  } else if (api_ == "gemini") {
    // {host}/v1beta/models/{model}:generateContent: batches live at {host}/v1beta/batches/{id},
    // uploads at {host}/upload/v1beta/files, downloads at {host}/download/v1beta/files/{id}.
    const auto at = endpoint.rfind("/v1beta/models/");
    const std::string_view method = ":generateContent";
    if (at == std::string::npos || endpoint.size() < method.size() ||
        endpoint.compare(endpoint.size() - method.size(), method.size(), method) != 0)
      throw std::invalid_argument("requests_engine: batch_client: the endpoint " + endpoint +
                                  " is not a Gemini API generateContent URL");
    host_ = endpoint.substr(0, at);
    base_ = host_ + "/v1beta";
    create_url_ = endpoint.substr(0, endpoint.size() - method.size()) + ":batchGenerateContent";
  } else {
    base_ = endpoint + "/batches";
  }
  limits_ = settings_.limits().value_or(api_ == "gemini"  ? batch_limits::gemini()
                                        : api_ != "openai" ? batch_limits::anthropic()
                                        : azure            ? batch_limits::azure()
                                                           : batch_limits::openai());
  if (limits_.max_requests == 0 || limits_.max_bytes == 0)
    throw std::invalid_argument("requests_engine: batch_limits must allow at least one request and one byte");
  transport_ = std::make_unique<httplib_transport>(options_.transport());
  transport_options big = options_.transport();
  big.max_response_bytes = settings_.max_download_bytes();
  download_transport_ = std::make_unique<httplib_transport>(big);
  session_ = transport_->open_session();
  download_session_ = download_transport_->open_session();
  secrets_ = std::visit([](const auto& p) { return p.secrets(); }, provider_);
  if (!options_.cache_dir().empty()) {
    disk_ = std::make_shared<disk_cache>(options_);
    cache_ = detail::make_cache_ops(*disk_);
  }
}

REQUESTS_ENGINE_INLINE void batch_client::log(const std::string& line) const {
  const std::string clean = detail::redact(line, secrets_);
  if (options_.on_log()) {
    try {
      options_.on_log()(clean);
      return;
    } catch (...) {
    }
  }
  std::fprintf(stderr, "requests_engine: %s\n", clean.c_str());
}

REQUESTS_ENGINE_INLINE error batch_client::scrub(error e) const {
  e.message = detail::redact(std::move(e.message), secrets_);
  return e;
}

REQUESTS_ENGINE_INLINE std::optional<error> batch_client::check_job(const batch_job& job, bool offline) const {
  if (job.offline != offline)
    return error{error_code::invalid_request, 0,
                 job.offline ? "this batch job was exported for an offline runner: its answers come back through "
                               "import_results, not from the provider"
                             : "this batch job was submitted to the provider: poll and fetch it (import_results is "
                               "for exported jobs)",
                 {}, 0, {}};
  const json identity = std::visit([](const auto& p) { return p.cache_identity(); }, provider_);
  if (job.api != api_ || job.endpoint != endpoint_ || job.identity != identity)
    return error{error_code::invalid_request, 0,
                 "this batch job was submitted to " + job.api + " at " + job.endpoint + " (identity " +
                     job.identity.dump() + "), not to this client's " + api_ + " at " + endpoint_ + " (identity " +
                     identity.dump() + ")",
                 {}, 0, {}};
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE result<http_response> batch_client::call(const std::string& method, const std::string& url,
                                                                std::string body, std::string content_type,
                                                                bool download, const header_list& extra) {
  // The provider's own request gives the auth headers (and anthropic-version / -beta).
  http_request req = std::visit([](const auto& p) { return http_request(p.make_request(std::string())); }, provider_);
  req.headers.insert(req.headers.end(), extra.begin(), extra.end());
  req.method = method;
  req.url = query_.empty() || url.find('?') != std::string::npos ? url : url + query_;
  req.body = std::move(body);
  req.content_type = std::move(content_type);
  static const std::atomic<bool> never{false};
  transport_session& s = download ? *download_session_ : *session_;
  const std::string what = method + " " + parse_url(url).path;
  for (int attempt = 1;; ++attempt) {
    result<http_response> r = s.send(req, never);
    std::optional<std::chrono::milliseconds> wait;
    bool retryable;
    if (r) {
      if (r->status >= 200 && r->status < 300) return r;
      const int st = r->status;
      retryable = st == 408 || st == 409 || st == 429 || st >= 500;
      wait = detail::parse_retry_after(r->headers);
    } else {
      retryable = r.error().code == error_code::connection || r.error().code == error_code::timeout;
    }
    if (!retryable || (options_.max_retries() >= 0 && attempt > options_.max_retries())) {
      error e = r ? detail::error_from_response(*r) : r.error();
      e.attempts = attempt;
      e.message = what + ": " + e.message;
      return scrub(std::move(e));
    }
    if (!wait) {
      const double base = static_cast<double>(options_.initial_backoff().count());
      const double ceiling = std::min(base * std::pow(2.0, std::min(attempt - 1, 30)),
                                      static_cast<double>(options_.max_backoff().count()));
      wait = std::chrono::milliseconds(
          static_cast<std::int64_t>(ceiling * std::uniform_real_distribution<double>(0.75, 1.0)(rng_)));
    }
    std::this_thread::sleep_for(*wait);
  }
}

REQUESTS_ENGINE_INLINE result<json> batch_client::call_json(const std::string& method, const std::string& url,
                                                            const std::string& body, const std::string& content_type) {
  auto r = call(method, url, body, content_type, false);
  if (!r) return r.error();
  json j = detail::parse_json(r->body);
  if (!j.is_object())
    return error{error_code::invalid_response, r->status,
                 method + " " + parse_url(url).path + ": the answer is not a JSON object", {}, 1, {}};
  return j;
}

REQUESTS_ENGINE_INLINE void batch_client::update_part(batch_part& part, const json& o) const {
  if (!detail::batch_str(o, "id").empty()) part.id = detail::batch_str(o, "id");
  const json counts = o.value("request_counts", json::object());
  if (api_ == "gemini") {
    // An Operation: its name is the batch's (batches/{id}); the batch is its metadata; when done,
    // the output is in response (and in metadata.output).
    const json md = o.contains("metadata") && o["metadata"].is_object() ? o["metadata"] : o;
    if (!detail::batch_str(o, "name").empty()) part.id = detail::batch_str(o, "name");
    const json stats = md.value("batchStats", json::object());
    auto count = [&stats](const char* key) -> std::size_t {  // int64 counts come as strings
      const auto it = stats.is_object() ? stats.find(key) : stats.end();
      if (it == stats.end()) return 0;
      if (it->is_number_unsigned()) return it->get<std::size_t>();
      return it->is_string() ? static_cast<std::size_t>(std::strtoull(it->get<std::string>().c_str(), nullptr, 10)) : 0;
    };
    part.succeeded = count("successfulRequestCount");
    part.failed = count("failedRequestCount");
    std::string file;
    for (const char* where : {"output", "response"}) {
      const json holder = (std::string(where) == "output" ? md : o).value(where, json::object());
      if (file.empty() && holder.is_object()) file = detail::batch_str(holder, "responsesFile");
    }
    part.output_file_id = file;
    if (auto st = detail::batch_status_from(detail::batch_str(md, "state"))) {
      part.status = *st;
      // A file batch can say SUCCEEDED a moment before its responses file is named.
      if (*st == batch_status::completed && !part.input_file_id.empty() && file.empty())
        part.status = batch_status::finalizing;
    }
    const json err = o.value("error", json());
    if (err.is_object()) part.message = detail::batch_str(err, "message");
    return;
  }
  if (api_ == "openai") {
    if (auto st = detail::batch_status_from(detail::batch_str(o, "status"))) part.status = *st;
    part.succeeded = detail::batch_count(counts, "completed");
    part.failed = detail::batch_count(counts, "failed");
    part.input_file_id = detail::batch_str(o, "input_file_id");
    part.output_file_id = detail::batch_str(o, "output_file_id");
    part.error_file_id = detail::batch_str(o, "error_file_id");
    const json errors = o.value("errors", json());
    if (errors.is_object() && errors.contains("data") && errors["data"].is_array() && !errors["data"].empty() &&
        errors["data"][0].is_object())
      part.message = detail::batch_str(errors["data"][0], "message");
  } else {
    const std::string st = detail::batch_str(o, "processing_status");
    if (st == "in_progress") part.status = batch_status::in_progress;
    else if (st == "canceling") part.status = batch_status::cancelling;
    else if (st == "ended") {
      const bool cancelled = o.contains("cancel_initiated_at") && !o["cancel_initiated_at"].is_null();
      part.status = cancelled ? batch_status::cancelled
                    : detail::batch_count(counts, "expired") > 0 ? batch_status::expired
                                                                 : batch_status::completed;
    }
    part.succeeded = detail::batch_count(counts, "succeeded");
    part.failed = detail::batch_count(counts, "errored") + detail::batch_count(counts, "canceled") +
                  detail::batch_count(counts, "expired");
    part.results_url = detail::batch_str(o, "results_url");
  }
}

// Uploads lines[lo, hi); the caller sets the part's range in the job.
REQUESTS_ENGINE_INLINE result<batch_part> batch_client::create_part(const std::vector<std::string>& lines,
                                                                    std::size_t lo, std::size_t hi) {
  batch_part part;
  result<json> created = json();
  if (api_ == "gemini") {
    created = create_gemini_part(lines, lo, hi, part);
  } else if (api_ == "openai") {
    std::string boundary = "requests-engine-";
    for (int i = 0; i < 4; ++i) boundary += std::to_string(rng_());
    std::string form = "--" + boundary +
                       "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--" + boundary +
                       "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"requests.jsonl\"\r\n"
                       "Content-Type: application/jsonl\r\n\r\n";
    for (std::size_t i = lo; i < hi; ++i) {
      form += lines[i];
      form += '\n';
    }
    form += "\r\n--" + boundary + "--\r\n";
    auto file = call_json("POST", base_ + "/files", form, "multipart/form-data; boundary=" + boundary);
    if (!file) return file.error();
    part.input_file_id = detail::batch_str(*file, "id");
    if (part.input_file_id.empty())
      return error{error_code::invalid_response, 200, "POST /files: the answer has no file id", {}, 1, {}};
    json create = {{"input_file_id", part.input_file_id},
                   {"endpoint", line_url_},
                   {"completion_window", settings_.completion_window()}};
    if (!settings_.metadata().is_null()) create["metadata"] = settings_.metadata();
    created = call_json("POST", base_ + "/batches", create.dump());
  } else {
    std::string body = "{\"requests\":[";
    for (std::size_t i = lo; i < hi; ++i) {
      if (i != lo) body += ',';
      body += lines[i];
    }
    body += "]}";
    created = call_json("POST", base_, body);
  }
  if (!created) return created.error();
  update_part(part, *created);
  if (part.id.empty()) return error{error_code::invalid_response, 200, "the created batch has no id", {}, 1, {}};
  return part;
}

REQUESTS_ENGINE_INLINE result<json> batch_client::create_gemini_part(const std::vector<std::string>& lines,
                                                                   std::size_t lo, std::size_t hi, batch_part& part) {
  std::uint64_t total = 0;
  for (std::size_t i = lo; i < hi; ++i) total += lines[i].size() + 1;
  std::string config;
  if (total <= settings_.inline_bytes()) {
    // Inline: each line {"key":K,"request":R} becomes {"metadata":{"key":K},"request":R}.
    config = "{\"requests\":{\"requests\":[";
    for (std::size_t i = lo; i < hi; ++i) {
      const std::string& l = lines[i];
      const std::size_t comma = l.find(',');
      if (i != lo) config += ',';
      config += "{\"metadata\":{" + l.substr(1, comma - 1) + "}," + l.substr(comma + 1);
    }
    config += "]}}";
  } else {
    // A JSONL file through the Files API's resumable upload: start, then upload and finalize.
    std::string file;
    file.reserve(static_cast<std::size_t>(total));
    for (std::size_t i = lo; i < hi; ++i) {
      file += lines[i];
      file += '\n';
    }
    const header_list start = {{"X-Goog-Upload-Protocol", "resumable"},
                               {"X-Goog-Upload-Command", "start"},
                               {"X-Goog-Upload-Header-Content-Length", std::to_string(file.size())},
                               {"X-Goog-Upload-Header-Content-Type", "application/jsonl"}};
    auto started = call("POST", host_ + "/upload/v1beta/files",
                        json{{"file", {{"display_name", "requests-engine batch input"}}}}.dump(), "application/json",
                        false, start);
    if (!started) return started.error();
    std::string upload = started->header("x-goog-upload-url");
    const std::size_t scheme = upload.find("://");
    const std::size_t path = scheme == std::string::npos ? std::string::npos : upload.find('/', scheme + 3);
    if (path == std::string::npos)
      return error{error_code::invalid_response, started->status,
                   "POST /upload/v1beta/files: the answer has no X-Goog-Upload-URL", {}, 1, {}};
    // The key goes with the upload: to the API's own origin only (as Google's SDKs do).
    upload = host_ + upload.substr(path);
    auto up = call("POST", upload, std::move(file), "application/jsonl", false,
                   {{"X-Goog-Upload-Command", "upload, finalize"}, {"X-Goog-Upload-Offset", "0"}});
    if (!up) return up.error();
    const json uploaded = detail::parse_json(up->body);
    const json f = uploaded.is_object() ? uploaded.value("file", json::object()) : json::object();
    part.input_file_id = f.is_object() ? detail::batch_str(f, "name") : std::string();
    if (part.input_file_id.empty())
      return error{error_code::invalid_response, up->status, "the file upload's answer names no file", {}, 1, {}};
    config = "{\"file_name\":" + json(part.input_file_id).dump() + "}";
  }
  return call_json("POST", create_url_,
                   "{\"batch\":{\"display_name\":\"requests-engine\",\"input_config\":" + config + "}}");
}

REQUESTS_ENGINE_INLINE result<std::string> batch_client::gemini_results(const batch_job& job, const batch_part& part) {
  if (!part.output_file_id.empty()) {
    auto r = call("GET", host_ + "/download/v1beta/" + part.output_file_id + ":download?alt=media", std::string(),
                  "application/json", true);
    if (!r) return r.error();
    return std::move(r->body);
  }
  auto o = call_json("GET", batch_url(part, ""));
  if (!o) return o.error();
  const json md = o->contains("metadata") && (*o)["metadata"].is_object() ? (*o)["metadata"] : json::object();
  json items;
  const json& op = *o;
  for (const json* holder : {&op, &md}) {
    const json box = holder->value(holder == &md ? "output" : "response", json::object());
    const json inner = box.is_object() ? box.value("inlinedResponses", json::object()) : json::object();
    if (items.is_null() && inner.is_object() && inner.contains("inlinedResponses") && inner["inlinedResponses"].is_array())
      items = inner["inlinedResponses"];
  }
  // The part's requests that were sent, in order: an answer without its key is matched by its
  // position (responses come in the order of the requests).
  std::vector<std::size_t> sent;
  for (std::size_t i = part.first; i < part.first + part.count; ++i)
    if (!std::binary_search(job.cached.begin(), job.cached.end(), i)) sent.push_back(i);
  std::string text;
  for (std::size_t k = 0; items.is_array() && k < items.size(); ++k) {
    const json& item = items[k];
    if (!item.is_object()) continue;
    const json meta = item.value("metadata", json::object());
    std::string key = meta.is_object() ? detail::batch_str(meta, "key") : std::string();
    if (key.empty() && k < sent.size()) key = std::string(detail::batch_id_prefix) + std::to_string(sent[k]);
    json line = {{"key", key}};
    for (const char* field : {"response", "error"})
      if (item.contains(field)) line[field] = item[field];
    text += line.dump() + "\n";
  }
  return text;
}

REQUESTS_ENGINE_INLINE result<batch_job> batch_client::submit(const std::vector<conversation>& batch,
                                                              const params& p, const std::string& name_space) {
  return submit_with(batch, &p, nullptr, name_space);
}

REQUESTS_ENGINE_INLINE result<batch_job> batch_client::submit(const std::vector<conversation>& batch,
                                                              const std::vector<params>& per_request,
                                                              const std::string& name_space) {
  return submit_with(batch, nullptr, &per_request, name_space);
}

REQUESTS_ENGINE_INLINE result<batch_client::prepared> batch_client::prepare(const std::vector<conversation>& batch,
                                                                         const params* one,
                                                                         const std::vector<params>* many,
                                                                         const std::string& name_space,
                                                                         bool check_size) {
  if (batch.empty()) return error{error_code::invalid_request, 0, "batch: no requests to submit", {}, 0, {}};
  if (many && many->size() != batch.size())
    return error{error_code::invalid_request, 0,
                 "batch: " + std::to_string(batch.size()) + " conversations but " + std::to_string(many->size()) +
                     " params",
                 {}, 0, {}};
  prepared out;
  batch_job& job = out.job;
  job.api = api_;
  job.endpoint = endpoint_;
  job.identity = std::visit([](const auto& pr) { return pr.cache_identity(); }, provider_);
  job.name_space = name_space;
  job.user = settings_.user_data();
  const std::string identity_dump = job.identity.dump();
  const std::string url_field = json(line_url_).dump();
  std::unordered_map<std::string, std::size_t> seen;
  std::vector<std::string>& lines = out.lines;
  std::vector<std::size_t>& sent = out.sent;
  lines.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const params& p = one ? *one : (*many)[i];
    if (p.n() && *p.n() > 1)
      return error{error_code::invalid_request, 0,
                   "batch: request " + std::to_string(i) +
                       ": params::n > 1 is not supported (send n copies of the conversation instead)",
                   {}, 0, {}};
    result<json> body = error{error_code::internal, 0, {}, {}, 0, {}};
    try {
      body = std::visit([&](const auto& pr) { return pr.make_body(batch[i], p); }, provider_);
    } catch (const std::exception& e) {
      body = error{error_code::invalid_request, 0, std::string("provider failed to build the request: ") + e.what(),
                   {}, 0, {}};
    }
    if (!body) {
      error e = body.error();
      e.message = "batch: request " + std::to_string(i) + ": " + e.message;
      return scrub(std::move(e));
    }
    result<std::string> dumped = detail::dump_body(*body);
    if (!dumped) {
      error e = dumped.error();
      e.message = "batch: request " + std::to_string(i) + ": " + e.message;
      return scrub(std::move(e));
    }
    const std::string& dump = *dumped;
    job.hashes.push_back(detail::request_hash_dumped(identity_dump, *body, dump));
    std::size_t& copies = seen[job.hashes.back()];
    // Embeddings: an input already in this job is sent once; fetch() gives its answer to both.
    const bool repeat = shared_samples_ && copies > 0;
    job.samples.push_back(options_.distinct_samples() && !shared_samples_ ? copies : 0);
    ++copies;
    // As an engine would: an answer already cached is not paid for again (nor overwritten).
    if (from_cache(job, i)) {
      job.cached.push_back(i);
      continue;
    }
    if (repeat) continue;
    sent.push_back(i);
    const std::string key = "\"" + std::string(detail::batch_id_prefix) + std::to_string(i) + "\"";
    lines.push_back(api_ == "openai"   ? "{\"custom_id\":" + key + ",\"method\":\"POST\",\"url\":" + url_field + ",\"body\":" + dump + "}"
                    : api_ == "gemini" ? "{\"key\":" + key + ",\"request\":" + dump + "}"
                                       : "{\"custom_id\":" + key + ",\"params\":" + dump + "}");
    if (check_size && lines.back().size() + 1 > limits_.max_bytes)
      return error{error_code::invalid_request, 0,
                   "batch: request " + std::to_string(i) + " alone (" + std::to_string(lines.back().size()) +
                       " bytes) is larger than the batch size limit (" + std::to_string(limits_.max_bytes) + ")",
                   {}, 0, {}};
  }
  return out;
}

REQUESTS_ENGINE_INLINE result<batch_job> batch_client::submit_with(const std::vector<conversation>& batch,
                                                                   const params* one, const std::vector<params>* many,
                                                                   const std::string& name_space) {
  auto ready = prepare(batch, one, many, name_space, /*check_size=*/true);
  if (!ready) return ready.error();
  batch_job& job = ready->job;
  const std::vector<std::string>& lines = ready->lines;
  const std::vector<std::size_t>& sent = ready->sent;
  auto flush = [&](std::size_t lo, std::size_t hi) -> std::optional<error> {
    auto part = create_part(lines, lo, hi);
    if (!part) {
      error e = part.error();
      if (!job.parts.empty()) {
        // A half-submitted job would be paid for and never fetched: take it back.
        batch_job partial = job;
        (void)cancel(partial);
        e.message += " (the " + std::to_string(job.parts.size()) + " batch(es) of this job already created were cancelled)";
      }
      return e;
    }
    part->first = sent[lo];
    part->count = sent[hi - 1] + 1 - sent[lo];
    job.parts.push_back(std::move(*part));
    if (!settings_.state_file().empty()) job.save(settings_.state_file());
    return std::nullopt;
  };
  if (lines.empty()) {  // the cache answered everything: a job with no batch, already completed
    if (!settings_.state_file().empty()) job.save(settings_.state_file());
    return job;
  }
  std::size_t first = 0;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::uint64_t size = lines[i].size() + 1;
    if (i > first && (i - first == limits_.max_requests || bytes + size > limits_.max_bytes)) {
      if (auto e = flush(first, i)) return *e;
      first = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (auto e = flush(first, lines.size())) return *e;
  return std::move(job);
}

REQUESTS_ENGINE_INLINE result<batch_export> batch_client::export_requests(const std::vector<conversation>& batch,
                                                                         const params& p,
                                                                         const std::string& name_space) {
  return export_with(batch, &p, nullptr, name_space);
}

REQUESTS_ENGINE_INLINE result<batch_export> batch_client::export_requests(const std::vector<conversation>& batch,
                                                                         const std::vector<params>& per_request,
                                                                         const std::string& name_space) {
  return export_with(batch, nullptr, &per_request, name_space);
}

REQUESTS_ENGINE_INLINE result<batch_export> batch_client::export_with(const std::vector<conversation>& batch,
                                                                     const params* one,
                                                                     const std::vector<params>* many,
                                                                     const std::string& name_space) {
  if (api_ != "openai")
    return error{error_code::invalid_request, 0,
                 "batch: export writes OpenAI Batch input files: use an OpenAI-compatible provider (Anthropic's "
                 "batch lines have no offline runner)",
                 {}, 0, {}};
  auto ready = prepare(batch, one, many, name_space, /*check_size=*/false);
  if (!ready) return ready.error();
  batch_export out;
  out.job = std::move(ready->job);
  out.job.offline = true;
  if (!ready->sent.empty()) {
    batch_part part;
    part.id = "offline";
    part.first = ready->sent.front();
    part.count = ready->sent.back() + 1 - part.first;
    out.job.parts.push_back(std::move(part));
  }
  out.lines = std::move(ready->lines);
  if (!settings_.state_file().empty()) out.job.save(settings_.state_file());
  return out;
}

REQUESTS_ENGINE_INLINE result<batch_import> batch_client::import_results(const batch_job& job, std::string_view text) {
  if (auto e = check_job(job, /*offline=*/true)) return *e;
  batch_import in;
  in.results.resize(job.size());
  in.answered = map_lines(text, job, 0, job.size(), in.results, &in.problems, &in.lines);
  for (std::size_t i : job.cached)
    if (!in.results[i])
      if (auto hit = from_cache(job, i)) in.results[i] = std::move(*hit);
  share_repeats(job, in.results);
  for (std::size_t i = 0; i < in.results.size(); ++i)
    if (in.results[i] && *in.results[i]) (*in.results[i])->request_hash = job.hashes[i];
  return in;
}

REQUESTS_ENGINE_INLINE std::string batch_client::batch_url(const batch_part& part, std::string_view action) const {
  if (api_ == "gemini") return base_ + "/" + part.id + (action.empty() ? "" : ":" + std::string(action));  // batches/{id}
  return base_ + (api_ == "openai" ? "/batches/" : "/") + part.id + (action.empty() ? "" : "/" + std::string(action));
}

REQUESTS_ENGINE_INLINE result<std::size_t> batch_client::remove(const batch_job& job) {
  if (auto e = check_job(job)) return *e;
  if (api_ != "gemini")
    return error{error_code::invalid_request, 0, "batch: remove() deletes Gemini batches and files only", {}, 0, {}};
  if (!is_final(job.status()))
    return error{error_code::invalid_request, 0,
                 "batch: the job is still " + std::string(to_string(job.status())) + ": cancel it or wait() first", {},
                 0, {}};
  std::size_t removed = 0;
  for (const auto& part : job.parts) {
    for (const std::string* name : {&part.input_file_id, &part.output_file_id, &part.id}) {
      if (name->empty()) continue;
      auto r = call("DELETE", base_ + "/" + *name, std::string(), "application/json", false);
      if (!r && r.error().http_status != 404) return r.error();
      ++removed;
    }
  }
  return removed;
}

REQUESTS_ENGINE_INLINE result<batch_status> batch_client::poll(batch_job& job) {
  if (auto e = check_job(job)) return *e;
  for (auto& part : job.parts) {
    if (is_final(part.status)) continue;
    auto o = call_json("GET", batch_url(part, ""));
    if (!o) return o.error();
    update_part(part, *o);
  }
  if (!settings_.state_file().empty()) job.save(settings_.state_file());
  return job.status();
}

REQUESTS_ENGINE_INLINE result<batch_status> batch_client::wait(batch_job& job, const progress_fn& on_progress,
                                                               std::chrono::milliseconds timeout) {
  const auto start = detail::clock::now();
  for (;;) {
    auto st = poll(job);
    if (!st) return st;
    if (on_progress) {
      try {
        on_progress(job);
      } catch (const std::exception& e) {
        log(std::string("batch progress callback threw: ") + e.what());
      } catch (...) {
        log("batch progress callback threw a non-standard exception");
      }
    }
    if (is_final(*st)) return st;
    auto pause = settings_.poll_interval();
    if (timeout.count() > 0) {
      const auto left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(detail::clock::now() - start);
      if (left.count() <= 0)
        return error{error_code::deadline_exceeded, 0,
                     "batch: still " + std::string(to_string(*st)) + " when the wait timed out", {}, 0, {}};
      pause = std::min(pause, left);
    }
    std::this_thread::sleep_for(pause);
  }
}

REQUESTS_ENGINE_INLINE result<batch_status> batch_client::cancel(batch_job& job) {
  if (auto e = check_job(job)) return *e;
  for (auto& part : job.parts) {
    if (is_final(part.status)) continue;
    auto o = call_json("POST", batch_url(part, "cancel"), api_ == "gemini" ? "{}" : std::string());
    if (!o) return o.error();
    if (api_ == "gemini") o = call_json("GET", batch_url(part, ""));  // cancel answers {}: ask where it stands
    if (!o) return o.error();
    update_part(part, *o);
  }
  if (!settings_.state_file().empty()) job.save(settings_.state_file());
  return job.status();
}

REQUESTS_ENGINE_INLINE result<completion> batch_client::parse(int status, const std::string& body) const {
  http_response r;
  r.status = status;
  r.body = body;
  result<completion> c = std::visit([&](const auto& p) { return p.parse_response(r); }, provider_);
  if (c) {
    c->attempts = 1;
    return c;
  }
  error e = c.error();
  if (e.http_status == 0 && (status < 200 || status >= 300)) e.http_status = status;
  e.attempts = 1;
  return scrub(std::move(e));
}

REQUESTS_ENGINE_INLINE void batch_client::store(const batch_job& job, std::size_t index, const std::string& body) {
  if (!cache_) return;
  const cache_key key{job.hashes[index], job.samples[index]};
  try {
    cache_->store(key, detail::encode_cache_entry(key, job.identity, job.name_space, body, nullptr));
  } catch (const std::exception& e) {
    log(std::string("could not store a batch answer in the cache: ") + e.what());
  }
}

REQUESTS_ENGINE_INLINE std::optional<completion> batch_client::from_cache(const batch_job& job,
                                                                         std::size_t index) const {
  if (!cache_) return std::nullopt;
  const cache_key key{job.hashes[index], job.samples[index]};
  std::optional<std::string> text;
  std::string why;
  try {
    text = cache_->load(key);
  } catch (const std::exception& e) {
    why = std::string("cannot be read: ") + e.what();
  }
  if (text) {
    if (auto entry = detail::decode_cache_entry(*text, &key, why, /*body_only=*/true)) {
      result<completion> c = parse(200, entry->body);
      if (c) {
        c->from_cache = true;
        c->attempts = 0;
        c->request_hash = key.hash;
        return std::move(*c);
      }
      why = "the stored response does not parse: " + c.error().message;
    }
  }
  // An unusable entry is a miss, as for an engine: the request is sent and its answer replaces it.
  if (!why.empty()) log("cache entry " + key.name() + " is unusable (" + why + "); treated as missing");
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE std::size_t batch_client::map_lines(std::string_view text, const batch_job& job,
                                                           std::size_t lo, std::size_t hi,
                                                           std::vector<std::optional<result<completion>>>& out,
                                                           std::vector<batch_import_problem>* problems,
                                                           std::size_t* lines_read) {
  std::size_t pos = 0, number = 0, mapped = 0;
  std::unordered_map<std::size_t, std::size_t> first_line;  // request index -> the line that answered it
  auto problem = [&](std::string message) {
    if (problems) problems->push_back({number, std::move(message)});
  };
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++number;
    if (raw.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (lines_read) ++*lines_read;
    const json line = detail::parse_json(raw);
    if (!line.is_object()) {
      problem(nl == text.size() && text.back() != '\n' ? "not a JSON object: the file ends inside this line (cut short?)"
                                                         : "not a JSON object");
      continue;
    }
    const char* const id_field = api_ == "gemini" ? "key" : "custom_id";
    const std::string id = detail::batch_str(line, id_field);
    if (id.empty()) {
      problem(std::string("no ") + id_field);
      continue;
    }
    std::size_t index = 0;
    const char* digits = id.c_str() + std::min(id.size(), detail::batch_id_prefix.size());
    char* end = nullptr;
    const bool ours = id.compare(0, detail::batch_id_prefix.size(), detail::batch_id_prefix) == 0 &&
                      std::isdigit(static_cast<unsigned char>(*digits));
    if (ours) index = static_cast<std::size_t>(std::strtoull(digits, &end, 10));
    if (!ours || *end != '\0' || index < lo || index >= hi) {
      problem(std::string(id_field) + " \"" + detail::redact(id, secrets_) + "\" is not a request of this job");
      continue;
    }
    if (out[index]) {
      const auto seen = first_line.find(index);
      problem(std::string(id_field) + " \"" + id + "\" again" +
              (seen != first_line.end() ? " (first on line " + std::to_string(seen->second) + ")" : std::string()) +
              ": this line is left out");
      continue;
    }
    if (api_ == "gemini") {
      const json resp = line.value("response", json());
      const json err = line.value("error", json());
      if (resp.is_object()) {
        const std::string body = resp.dump();
        out[index] = parse(200, body);
        if (*out[index]) store(job, index, body);
      } else if (err.is_object()) {
        // A google.rpc.Status: its code an HTTP status in batch results, else a gRPC code.
        const std::int64_t code = detail::json_count(err, "code");
        out[index] = parse(code >= 100 && code <= 599 ? static_cast<int>(code)
                                                      : detail::http_status_of_google(detail::batch_str(err, "status")),
                           json{{"error", err}}.dump());
      } else {
        problem("neither a response nor an error");
        continue;
      }
    } else if (api_ == "openai") {
      const json resp = line.value("response", json());
      const json err = line.value("error", json());
      const std::int64_t code = resp.is_object() && resp.contains("status_code") ? detail::json_count(resp, "status_code")
                                                                                 : 200;
      const int status = code >= 100 && code <= 599 ? static_cast<int>(code) : 500;  // not a status: a failure
      if (resp.is_object() && resp.contains("body") && !resp["body"].is_null()) {
        const std::string body = resp["body"].is_string() ? resp["body"].get<std::string>() : resp["body"].dump();
        out[index] = parse(status, body);
        if (*out[index]) store(job, index, body);
      } else if (err.is_object() || err.is_string()) {
        // OpenAI's error object, or vLLM's run-batch: a message string and a 400 response without a body.
        const std::string ecode = err.is_object() ? detail::batch_str(err, "code") : std::string();
        const std::string message = err.is_object() ? detail::batch_str(err, "message") : err.get<std::string>();
        if (ecode == "batch_expired" || ecode == "batch_cancelled" || status < 400)
          out[index] = scrub(error{ecode == "batch_expired"     ? error_code::deadline_exceeded
                                   : ecode == "batch_cancelled" ? error_code::cancelled
                                                                : error_code::bad_request,
                                   0, "batch: " + message, ecode, 1, {}});
        else
          out[index] = parse(status, json{{"error", {{"message", "batch: " + message}, {"code", ecode}}}}.dump());
      } else {
        problem("neither a response with a body nor an error");
        continue;
      }
    } else {
      const json res = line.value("result", json::object());
      const std::string type = detail::batch_str(res, "type");
      if (type == "succeeded" && res.contains("message")) {
        const std::string body = res["message"].dump();
        out[index] = parse(200, body);
        if (*out[index]) store(job, index, body);
      } else if (type == "errored") {
        const json inner = res.value("error", json::object());
        const std::string etype = inner.is_object() && inner.contains("error") && inner["error"].is_object()
                                      ? detail::batch_str(inner["error"], "type")
                                      : std::string();
        static const std::map<std::string, int> statuses = {
            {"invalid_request_error", 400}, {"authentication_error", 401}, {"permission_error", 403},
            {"not_found_error", 404},       {"request_too_large", 413},    {"rate_limit_error", 429},
            {"api_error", 500},             {"overloaded_error", 529}};
        auto st = statuses.find(etype);
        out[index] = parse(st == statuses.end() ? 500 : st->second, inner.dump());
      } else if (type == "canceled") {
        out[index] = error{error_code::cancelled, 0, "batch: the request was cancelled before it ran", type, 1, {}};
      } else if (type == "expired") {
        out[index] = error{error_code::deadline_exceeded, 0, "batch: the batch expired before the request ran", type,
                           1, {}};
      } else {
        problem("a result of unknown type \"" + type + "\"");
        continue;
      }
    }
    first_line.emplace(index, number);
    ++mapped;
  }
  return mapped;
}

REQUESTS_ENGINE_INLINE void batch_client::share_repeats(const batch_job& job,
                                                        std::vector<std::optional<result<completion>>>& out) const {
  if (!shared_samples_) return;
  // An input repeated in the job was sent once (submit): the repeat gets the first one's answer.
  std::unordered_map<std::string, std::size_t> first;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto [it, fresh] = first.emplace(job.hashes[i], i);
    if (fresh || out[i] || !out[it->second]) continue;
    out[i] = *out[it->second];
    if (*out[i]) (*out[i])->deduplicated = true;
  }
}

REQUESTS_ENGINE_INLINE result<std::vector<result<completion>>> batch_client::fetch(const batch_job& job) {
  if (auto e = check_job(job)) return *e;
  if (!is_final(job.status()))
    return error{error_code::invalid_request, 0,
                 "batch: the job is still " + std::string(to_string(job.status())) + ": wait() for it first", {}, 0, {}};
  std::vector<std::optional<result<completion>>> out(job.size());
  for (std::size_t i : job.cached) {
    if (auto hit = from_cache(job, i)) out[i] = std::move(*hit);
    else
      out[i] = error{error_code::invalid_request, 0,
                     "batch: the cached answer this request was not sent for is gone from the cache (pruned, or "
                     "another cache given at fetch): send it again",
                     {}, 0, {}};
  }
  std::vector<std::optional<error>> failures(job.parts.size());
  for (std::size_t k = 0; k < job.parts.size(); ++k) {
    const batch_part& part = job.parts[k];
    std::optional<error>& failure = failures[k];
    if (api_ == "gemini") {
      if (part.status == batch_status::failed || part.status == batch_status::cancelled) continue;
      auto text = gemini_results(job, part);
      if (!text) failure = text.error();
      else map_lines(*text, job, part.first, part.first + part.count, out);
      continue;
    }
    std::vector<std::string> urls;
    if (api_ == "openai") {
      for (const std::string* f : {&part.output_file_id, &part.error_file_id})
        if (!f->empty()) urls.push_back(base_ + "/files/" + *f + "/content");
    } else if (part.status != batch_status::failed) {
      // results_url is trusted only on the provider's own origin: the key goes with it.
      std::string url = base_ + "/" + part.id + "/results";
      try {
        if (!part.results_url.empty() && parse_url(part.results_url).origin() == parse_url(base_).origin())
          url = part.results_url;
      } catch (const std::exception&) {
      }
      urls.push_back(url);
    }
    for (const auto& url : urls) {
      auto r = call("GET", url, std::string(), "application/json", true);
      if (!r) {
        failure = r.error();
        continue;
      }
      map_lines(r->body, job, part.first, part.first + part.count, out);
    }
  }
  share_repeats(job, out);
  for (std::size_t k = 0; k < job.parts.size(); ++k) {
    const batch_part& part = job.parts[k];
    const std::optional<error>& failure = failures[k];
    for (std::size_t i = part.first; i < part.first + part.count; ++i) {
      if (out[i]) continue;
      if (failure) out[i] = *failure;
      else if (part.status == batch_status::expired)
        out[i] = error{error_code::deadline_exceeded, 0, "batch: the batch expired before the request ran",
                       "batch_expired", 0, {}};
      else if (part.status == batch_status::cancelled)
        out[i] = error{error_code::cancelled, 0, "batch: the batch was cancelled before the request ran",
                       "batch_cancelled", 0, {}};
      else if (part.status == batch_status::failed)
        out[i] = error{error_code::bad_request, 0, "batch: the provider failed the batch: " + part.message,
                       "batch_failed", 0, {}};
      else
        out[i] = error{error_code::invalid_response, 0, "batch: the request is missing from the batch results", {},
                       0, {}};
    }
  }
  std::vector<result<completion>> results;
  results.reserve(out.size());
  for (auto& r : out)
    results.push_back(r ? std::move(*r)
                        : result<completion>(error{error_code::internal, 0, "batch: not in any part", {}, 0, {}}));
  for (std::size_t i = 0; i < results.size(); ++i)
    if (results[i]) results[i]->request_hash = job.hashes[i];
  return results;
}

REQUESTS_ENGINE_INLINE result<std::vector<result<completion>>> batch_client::run(const std::vector<conversation>& batch,
                                                                                const params& p,
                                                                                const std::string& name_space,
                                                                                const progress_fn& on_progress) {
  auto job = submit(batch, p, name_space);
  if (!job) return job.error();
  auto st = wait(*job, on_progress);
  if (!st) return st.error();
  return fetch(*job);
}

REQUESTS_ENGINE_NAMESPACE_END
