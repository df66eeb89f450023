// cost.ipp: the definitions of cost.hpp (the implementation half of requests_engine.hpp).
// In the compiled mode they are compiled once, in the file that defines REQUESTS_ENGINE_IMPLEMENTATION.
#pragma once

#include "cost.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

namespace detail {

// The built-in prices, in dollars per million tokens, in the shape price_table::merge_json
// takes (and so the shape of an override file). Read on 2026-11-22 from the stored copies of:
//   OpenAI     https://developers.openai.com/api/docs/pricing and the model pages under
//              https://developers.openai.com/api/docs/models/ (gpt-5-mini, gpt-5-nano,
//              gpt-4.1-nano, gpt-4o-audio-preview read there; the other OpenAI rows are the
//              list prices as published since mid-2025, the same in third-party tables
//              dated 2026). Batch API: half price.
//   Anthropic  https://platform.claude.com/docs/en/about-claude/pricing (model table: base
//              input, 5-minute cache writes, cache hits, output; batch processing: half price;
//              long context: Sonnet 4 and 4.5 above 200K prompt tokens; Sonnet/Opus 4.6 have
//              no surcharge). Bedrock and Vertex AI list the same on-demand prices for the
//              global endpoints; their regional endpoints of models from Sonnet 4.5 on cost
//              about 10% more (not modelled: override if you use them).
//   Google     https://ai.google.dev/gemini-api/docs/pricing (paid tier, text/image/video
//              input; audio input costs more and is not modelled). Vertex AI lists the same.
//              Batch: half price. Context-cache reads are 10% of input for the 2.5 and 3
//              models and 25% for 2.0 (uncertain: Google has changed these more than once).
// Uncertain (not found in the stored copies; from the hosts' pricing pages as last known,
// groq.com/pricing and together.ai/pricing): the Groq and Together rows. Cerebras retired
// its Llama ids during 2026 and no current price was found: add its models by override.
// Rows for models whose ids could not be confirmed (newer Claude and GPT releases in the
// stored pages) are left out on purpose: they report "unknown" rather than a guess.
// Kept under MSVC's 16 KB limit for one string literal.
REQUESTS_ENGINE_INLINE const char* builtin_prices_json() noexcept {
  return R"json({
"read_on": "2026-11-22",
"sources": ["https://developers.openai.com/api/docs/pricing",
            "https://platform.claude.com/docs/en/about-claude/pricing",
            "https://ai.google.dev/gemini-api/docs/pricing",
            "https://groq.com/pricing", "https://www.together.ai/pricing"],
"models": {
"gpt-5":        {"input": 1.25, "cached_input": 0.125, "output": 10},
"gpt-5-mini":   {"input": 0.25, "cached_input": 0.025, "output": 2},
"gpt-5-nano":   {"input": 0.05, "cached_input": 0.005, "output": 0.4},
"gpt-4.1":      {"input": 2,    "cached_input": 0.5,   "output": 8},
"gpt-4.1-mini": {"input": 0.4,  "cached_input": 0.1,   "output": 1.6},
"gpt-4.1-nano": {"input": 0.1,  "cached_input": 0.025, "output": 0.4},
"gpt-4o":       {"input": 2.5,  "cached_input": 1.25,  "output": 10},
"gpt-4o-2024-05-13": {"input": 5, "output": 15, "note": "the first gpt-4o snapshot kept its launch price"},
"gpt-4o-mini":  {"input": 0.15, "cached_input": 0.075, "output": 0.6},
"o1":           {"input": 15,   "cached_input": 7.5,   "output": 60},
"o3":           {"input": 2,    "cached_input": 0.5,   "output": 8},
"o3-mini":      {"input": 1.1,  "cached_input": 0.55,  "output": 4.4},
"o4-mini":      {"input": 1.1,  "cached_input": 0.275, "output": 4.4},
"o1-pro":       {"input": 150,  "output": 600, "note": "Responses API only"},
"o3-pro":       {"input": 20,   "output": 80,  "note": "Responses API only"},
"gpt-5-pro":    {"input": 15,   "output": 120, "note": "Responses API only"},
"text-embedding-3-small": {"input": 0.02, "output": 0},
"text-embedding-3-large": {"input": 0.13, "output": 0},
"text-embedding-ada-002": {"input": 0.1,  "output": 0},

"claude-opus-4-6":   {"input": 5,  "cache_write": 6.25,  "cached_input": 0.5,  "output": 25},
"claude-opus-4-5":   {"input": 5,  "cache_write": 6.25,  "cached_input": 0.5,  "output": 25,
                      "aliases": ["anthropic.claude-opus-4-5-20251101-v1:0"]},
"claude-opus-4-1":   {"input": 15, "cache_write": 18.75, "cached_input": 1.5,  "output": 75,
                      "aliases": ["anthropic.claude-opus-4-1-20250805-v1:0"]},
"claude-opus-4":     {"input": 15, "cache_write": 18.75, "cached_input": 1.5,  "output": 75,
                      "aliases": ["claude-opus-4-0", "anthropic.claude-opus-4-20250514-v1:0"]},
"claude-3-opus":     {"input": 15, "cache_write": 18.75, "cached_input": 1.5,  "output": 75,
                      "aliases": ["claude-3-opus-latest", "anthropic.claude-3-opus-20240229-v1:0"]},
"claude-sonnet-4-6": {"input": 3,  "cache_write": 3.75,  "cached_input": 0.3,  "output": 15},
"claude-sonnet-4-5": {"input": 3,  "cache_write": 3.75,  "cached_input": 0.3,  "output": 15,
                      "long_context": {"above_input_tokens": 200000, "input": 6, "cache_write": 7.5,
                                       "cached_input": 0.6, "output": 22.5},
                      "aliases": ["anthropic.claude-sonnet-4-5-20250929-v1:0"]},
"claude-sonnet-4":   {"input": 3,  "cache_write": 3.75,  "cached_input": 0.3,  "output": 15,
                      "long_context": {"above_input_tokens": 200000, "input": 6, "cache_write": 7.5,
                                       "cached_input": 0.6, "output": 22.5},
                      "aliases": ["claude-sonnet-4-0", "anthropic.claude-sonnet-4-20250514-v1:0"]},
"claude-3-7-sonnet": {"input": 3,  "cache_write": 3.75,  "cached_input": 0.3,  "output": 15,
                      "aliases": ["claude-3-7-sonnet-latest", "anthropic.claude-3-7-sonnet-20250219-v1:0"]},
"claude-3-5-sonnet": {"input": 3,  "cache_write": 3.75,  "cached_input": 0.3,  "output": 15,
                      "aliases": ["claude-3-5-sonnet-latest", "claude-3-5-sonnet-v2",
                                  "anthropic.claude-3-5-sonnet-20241022-v2:0",
                                  "anthropic.claude-3-5-sonnet-20240620-v1:0"]},
"claude-haiku-4-5":  {"input": 1,  "cache_write": 1.25,  "cached_input": 0.1,  "output": 5,
                      "aliases": ["anthropic.claude-haiku-4-5-20251001-v1:0"]},
"claude-3-5-haiku":  {"input": 0.8, "cache_write": 1,    "cached_input": 0.08, "output": 4,
                      "aliases": ["claude-3-5-haiku-latest", "anthropic.claude-3-5-haiku-20241022-v1:0"]},
"claude-3-haiku":    {"input": 0.25, "cache_write": 0.3, "cached_input": 0.03, "output": 1.25,
                      "aliases": ["anthropic.claude-3-haiku-20240307-v1:0"]},

"gemini-3-pro-preview":  {"input": 2,    "cached_input": 0.2,   "output": 12,
                          "long_context": {"above_input_tokens": 200000, "input": 4, "cached_input": 0.4, "output": 18}},
"gemini-2.5-pro":        {"input": 1.25, "cached_input": 0.125, "output": 10,
                          "long_context": {"above_input_tokens": 200000, "input": 2.5, "cached_input": 0.25, "output": 15}},
"gemini-2.5-flash":      {"input": 0.3,  "cached_input": 0.03,  "output": 2.5},
"gemini-2.5-flash-lite": {"input": 0.1,  "cached_input": 0.01,  "output": 0.4},
"gemini-2.0-flash":      {"input": 0.1,  "cached_input": 0.025, "output": 0.4},
"gemini-2.0-flash-lite": {"input": 0.075, "output": 0.3},
"gemini-embedding-001":  {"input": 0.15, "output": 0},

"llama-3.3-70b-versatile": {"input": 0.59, "output": 0.79, "note": "Groq; uncertain"},
"llama-3.1-8b-instant":    {"input": 0.05, "output": 0.08, "note": "Groq; uncertain"},
"meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input": 0.88, "output": 0.88, "note": "Together; uncertain"}
}})json";
}

[[nodiscard]] REQUESTS_ENGINE_INLINE bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The model id without a dated-snapshot suffix, for each suffix form that matches (at most
// one per form; empty views for the others).
struct snapshot_bases {
  std::string_view base[3];
};
[[nodiscard]] REQUESTS_ENGINE_INLINE snapshot_bases snapshot_bases_of(std::string_view m) noexcept {
  snapshot_bases out;
  const std::size_t n = m.size();
  // -YYYY-MM-DD
  if (n > 11 && m[n - 11] == '-' && m[n - 6] == '-' && m[n - 3] == '-' && all_digits(m.substr(n - 10, 4)) &&
      all_digits(m.substr(n - 5, 2)) && all_digits(m.substr(n - 2, 2)))
    out.base[0] = m.substr(0, n - 11);
  // -YYYYMMDD (Anthropic, OpenAI) and @YYYYMMDD (Vertex AI)
  if (n > 9 && (m[n - 9] == '-' || m[n - 9] == '@') && all_digits(m.substr(n - 8))) out.base[1] = m.substr(0, n - 9);
  // -00N (Gemini versions)
  if (n > 4 && m.compare(n - 4, 3, "-00") == 0 && all_digits(m.substr(n - 1))) out.base[2] = m.substr(0, n - 4);
  return out;
}

[[noreturn]] REQUESTS_ENGINE_INLINE void price_table_error(const std::string& what) {
  throw std::invalid_argument("requests_engine: price table: " + what);
}

[[nodiscard]] REQUESTS_ENGINE_INLINE std::string format_dollars(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "$%.6f", v);
  return buf;
}

[[nodiscard]] REQUESTS_ENGINE_INLINE json usage_json(const token_usage& u) {
  return json{{"input", u.input_tokens},
              {"output", u.output_tokens},
              {"cached_input", u.cached_input_tokens},
              {"cache_write", u.cache_write_tokens},
              {"cache_write_1h", u.cache_write_1h_tokens},
              {"reasoning", u.reasoning_tokens}};
}

}  // namespace detail

REQUESTS_ENGINE_INLINE double model_price::cost(const token_usage& u, bool batch) const noexcept {
  double in = input, out = output, cached = cached_input, write = cache_write;
  if (long_context && u.input_tokens > long_context->above_input_tokens) {
    in = long_context->input;
    out = long_context->output;
    cached = long_context->cached_input;
    write = long_context->cache_write;
  }
  const std::int64_t uncached = std::max<std::int64_t>(0, u.input_tokens - u.cached_input_tokens - u.cache_write_tokens);
  // Anthropic's one-hour cache writes cost twice the input price (five-minute ones: cache_write).
  const std::int64_t hour = std::clamp<std::int64_t>(u.cache_write_1h_tokens, 0, u.cache_write_tokens);
  double dollars = (static_cast<double>(uncached) * in + static_cast<double>(u.cached_input_tokens) * cached +
                    static_cast<double>(u.cache_write_tokens - hour) * write + static_cast<double>(hour) * 2.0 * in +
                    static_cast<double>(u.output_tokens) * out) /
                   1e6;
  if (batch) dollars *= 1.0 - batch_discount;
  return dollars;
}

REQUESTS_ENGINE_INLINE const price_table& price_table::builtin() {
  static const price_table table = [] {
    price_table t;
    t.merge_json(json::parse(detail::builtin_prices_json()));
    return t;
  }();
  return table;
}

REQUESTS_ENGINE_INLINE price_table price_table::from_file(const std::string& path) {
  price_table t = builtin();
  t.merge_file(path);
  return t;
}

REQUESTS_ENGINE_INLINE price_table& price_table::merge_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("requests_engine: cannot read the price file " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("requests_engine: cannot read the price file " + path);
  json table = detail::parse_json(text);
  if (table.is_discarded()) throw std::invalid_argument("requests_engine: the price file " + path + " is not valid JSON");
  try {
    merge_json(table);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + " (in " + path + ")");
  }
  return *this;
}

REQUESTS_ENGINE_INLINE price_table& price_table::merge_json(const json& table) {
  auto fail = [](const std::string& what) { detail::price_table_error(what); };
  if (!table.is_object()) fail("the table must be a JSON object with a \"models\" object");
  // Built on a copy: a malformed table leaves this one as it was.
  price_table next = *this;
  for (auto it = table.begin(); it != table.end(); ++it) {
    const std::string& key = it.key();
    if (key == "read_on") {
      if (!it->is_string()) fail("\"read_on\" must be a string (the date the prices were read)");
      next.read_on_ = it->get<std::string>();
    } else if (key == "sources") {
      if (!it->is_array()) fail("\"sources\" must be an array of strings");
      next.sources_.clear();
      for (const auto& s : *it) {
        if (!s.is_string()) fail("\"sources\" must be an array of strings");
        next.sources_.push_back(s.get<std::string>());
      }
    } else if (key != "models" && key != "note") {
      fail("unknown key \"" + key + "\" (expected read_on, sources, models, note)");
    }
  }
  const auto models = table.find("models");
  if (models == table.end()) fail("no \"models\" object");
  if (!models->is_object()) fail("\"models\" must be an object of model id to prices");

  for (auto m = models->begin(); m != models->end(); ++m) {
    const std::string& id = m.key();
    const std::string where = "model \"" + id + "\": ";
    auto number = [&](const json& v, const std::string& field) -> double {
      if (!v.is_number()) fail(where + "\"" + field + "\" must be a number (dollars per million tokens)");
      const double d = v.get<double>();
      if (!std::isfinite(d) || d < 0) fail(where + "\"" + field + "\" must be a finite number, not negative");
      return d;
    };
    auto drop_aliases_of = [&next](const std::string& row_id) {
      for (auto a = next.aliases_.begin(); a != next.aliases_.end();)
        a = a->second == row_id ? next.aliases_.erase(a) : std::next(a);
    };
    if (id.empty()) fail("a model id is empty");
    if (m->is_null()) {
      next.rows_.erase(id);
      drop_aliases_of(id);
      continue;
    }
    if (!m->is_object()) fail(where + "the prices must be an object (or null to remove the model)");
    auto found = next.rows_.find(id);
    const bool fresh = found == next.rows_.end();
    row r = fresh ? row{} : found->second;
    bool has_input = false, has_output = false, has_cached = false, has_write = false, has_aliases = false;
    for (auto f = m->begin(); f != m->end(); ++f) {
      const std::string& field = f.key();
      if (field == "input") {
        r.price.input = number(*f, field);
        has_input = true;
      } else if (field == "output") {
        r.price.output = number(*f, field);
        has_output = true;
      } else if (field == "cached_input") {
        r.price.cached_input = number(*f, field);
        has_cached = true;
      } else if (field == "cache_write") {
        r.price.cache_write = number(*f, field);
        has_write = true;
      } else if (field == "batch_discount") {
        r.price.batch_discount = number(*f, field);
        if (r.price.batch_discount > 1) fail(where + "\"batch_discount\" is a fraction from 0 to 1 (0.5 = half price)");
      } else if (field == "aliases") {
        if (!f->is_array()) fail(where + "\"aliases\" must be an array of model ids");
        r.aliases.clear();
        for (const auto& a : *f) {
          if (!a.is_string() || a.get_ref<const std::string&>().empty())
            fail(where + "\"aliases\" must be an array of non-empty model ids");
          r.aliases.push_back(a.get<std::string>());
        }
        has_aliases = true;
      } else if (field == "long_context") {
        if (f->is_null()) {
          r.price.long_context.reset();
          continue;
        }
        if (!f->is_object()) fail(where + "\"long_context\" must be an object (or null)");
        model_price::long_context_tier tier;
        bool tier_input = false, tier_output = false, tier_cached = false, tier_write = false, tier_above = false;
        for (auto t = f->begin(); t != f->end(); ++t) {
          const std::string name = "long_context." + t.key();
          if (t.key() == "above_input_tokens") {
            if (!t->is_number_integer() || t->get<std::int64_t>() <= 0)
              fail(where + "\"" + name + "\" must be a positive whole number of tokens");
            tier.above_input_tokens = t->get<std::int64_t>();
            tier_above = true;
          } else if (t.key() == "input") {
            tier.input = number(*t, name);
            tier_input = true;
          } else if (t.key() == "output") {
            tier.output = number(*t, name);
            tier_output = true;
          } else if (t.key() == "cached_input") {
            tier.cached_input = number(*t, name);
            tier_cached = true;
          } else if (t.key() == "cache_write") {
            tier.cache_write = number(*t, name);
            tier_write = true;
          } else {
            fail(where + "unknown field \"" + name + "\"");
          }
        }
        if (!tier_above || !tier_input || !tier_output)
          fail(where + "\"long_context\" needs above_input_tokens, input and output");
        if (!tier_cached) tier.cached_input = tier.input;
        if (!tier_write) tier.cache_write = tier.input;
        r.price.long_context = tier;
      } else if (field == "note") {
        if (!f->is_string()) fail(where + "\"note\" must be a string");
      } else {
        fail(where + "unknown field \"" + field +
             "\" (expected input, output, cached_input, cache_write, batch_discount, long_context, aliases, note)");
      }
    }
    if (fresh && (!has_input || !has_output)) fail(where + "a new model needs \"input\" and \"output\"");
    if (fresh && !has_cached) r.price.cached_input = r.price.input;
    if (fresh && !has_write) r.price.cache_write = r.price.input;
    if (has_aliases) {
      drop_aliases_of(id);
      for (const auto& a : r.aliases) {
        if (a == id) continue;
        if (next.rows_.count(a) != 0) fail(where + "the alias \"" + a + "\" is itself a model of the table");
        auto taken = next.aliases_.find(a);
        if (taken != next.aliases_.end()) {  // the alias moves to this row
          auto& other = next.rows_[taken->second].aliases;
          other.erase(std::remove(other.begin(), other.end(), a), other.end());
        }
        next.aliases_[a] = id;
      }
    }
    if (next.aliases_.count(id) != 0) fail(where + "the id is already an alias of \"" + next.aliases_.find(id)->second + "\"");
    next.rows_[id] = std::move(r);
  }
  *this = std::move(next);
  return *this;
}

REQUESTS_ENGINE_INLINE const price_table::row_map::value_type* price_table::lookup_exact(std::string_view model) const {
  auto it = rows_.find(model);
  if (it != rows_.end()) return &*it;
  auto a = aliases_.find(model);
  if (a == aliases_.end()) return nullptr;
  it = rows_.find(a->second);
  return it == rows_.end() ? nullptr : &*it;
}

REQUESTS_ENGINE_INLINE const price_table::row_map::value_type* price_table::lookup(std::string_view model) const {
  if (const auto* r = lookup_exact(model)) return r;
  // Bedrock cross-region inference profiles put the geography in front of the model id.
  for (std::string_view geo : {"us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au."}) {
    if (model.size() > geo.size() && model.compare(0, geo.size(), geo) == 0) {
      model.remove_prefix(geo.size());
      if (const auto* r = lookup_exact(model)) return r;
      break;
    }
  }
  const row_map::value_type* best = nullptr;
  std::size_t best_size = 0;
  const detail::snapshot_bases candidates = detail::snapshot_bases_of(model);
  for (std::string_view base : candidates.base) {
    if (base.empty() || base.size() <= best_size) continue;
    if (const auto* r = lookup_exact(base)) {
      best = r;
      best_size = base.size();
    }
  }
  return best;
}

REQUESTS_ENGINE_INLINE std::optional<model_price> price_table::ask_callback(std::string_view model) const {
  if (!callback_) return std::nullopt;
  try {
    return callback_(model);
  } catch (...) {
    return std::nullopt;  // documented: an exception counts as no answer
  }
}

REQUESTS_ENGINE_INLINE std::optional<model_price> price_table::find(std::string_view model) const {
  if (auto p = ask_callback(model)) return p;
  if (const auto* r = lookup(model)) return r->second.price;
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE std::optional<std::string> price_table::match(std::string_view model) const {
  if (ask_callback(model)) return std::string(model);
  if (const auto* r = lookup(model)) return r->first;
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE std::optional<double> price_table::cost(std::string_view model, const token_usage& u,
                                                               bool batch) const {
  if (callback_) {
    if (auto p = ask_callback(model)) return p->cost(u, batch);
  }
  if (const auto* r = lookup(model)) return r->second.price.cost(u, batch);
  return std::nullopt;
}

REQUESTS_ENGINE_INLINE json price_table::to_json() const {
  json models = json::object();
  for (const auto& [id, r] : rows_) {
    const model_price& p = r.price;
    json entry{{"input", p.input},
             {"output", p.output},
             {"cached_input", p.cached_input},
             {"cache_write", p.cache_write},
             {"batch_discount", p.batch_discount}};
    if (p.long_context)
      entry["long_context"] = {{"above_input_tokens", p.long_context->above_input_tokens},
                             {"input", p.long_context->input},
                             {"output", p.long_context->output},
                             {"cached_input", p.long_context->cached_input},
                             {"cache_write", p.long_context->cache_write}};
    if (!r.aliases.empty()) entry["aliases"] = r.aliases;
    models[id] = std::move(entry);
  }
  json out{{"models", std::move(models)}};
  if (!read_on_.empty()) out["read_on"] = read_on_;
  if (!sources_.empty()) out["sources"] = sources_;
  return out;
}

REQUESTS_ENGINE_INLINE void cost_report::add(const result<completion>& r, const price_table& prices) {
  if (!r) {
    ++failed;
    return;
  }
  const completion& c = *r;
  ++requests;
  tokens += c.usage;
  const bool paid = !c.from_cache && !c.deduplicated;
  if (c.from_cache) ++from_cache;
  if (paid) network_tokens += c.usage;

  auto mark_unknown = [this](model_line& l) {
    auto at = std::lower_bound(unknown_models.begin(), unknown_models.end(), l.model);
    if (at == unknown_models.end() || *at != l.model) unknown_models.insert(at, l.model);
    if (l.actual) actual -= *l.actual;
    if (l.as_if) as_if -= *l.as_if;
    l.actual.reset();
    l.as_if.reset();
    l.priced_as.clear();
  };
  auto it = std::lower_bound(models.begin(), models.end(), c.model,
                             [](const model_line& l, const std::string& m) { return l.model < m; });
  if (it == models.end() || it->model != c.model) {
    model_line fresh;
    fresh.model = c.model;
    it = models.insert(it, std::move(fresh));
    if (auto row = prices.match(c.model)) {
      it->priced_as = std::move(*row);
      it->actual = 0.0;
      it->as_if = 0.0;
    } else {
      mark_unknown(*it);
    }
  }
  model_line& line = *it;
  ++line.requests;
  line.tokens += c.usage;
  if (c.from_cache) ++line.from_cache;
  if (paid) line.network_tokens += c.usage;
  if (!line.as_if) return;
  const std::optional<double> dollars = prices.cost(c.model, c.usage, batch);
  if (!dollars) {  // a callback that stopped answering: never count this model as free
    mark_unknown(line);
    return;
  }
  *line.as_if += *dollars;
  as_if += *dollars;
  if (paid) {
    *line.actual += *dollars;
    actual += *dollars;
  }
}

REQUESTS_ENGINE_INLINE json cost_report::to_json() const {
  json lines = json::array();
  for (const auto& l : models) {
    lines.push_back({{"model", l.model},
                     {"priced_as", l.priced_as.empty() ? json(nullptr) : json(l.priced_as)},
                     {"requests", l.requests},
                     {"from_cache", l.from_cache},
                     {"tokens", detail::usage_json(l.tokens)},
                     {"network_tokens", detail::usage_json(l.network_tokens)},
                     {"actual_usd", l.actual ? json(*l.actual) : json(nullptr)},
                     {"as_if_usd", l.as_if ? json(*l.as_if) : json(nullptr)}});
  }
  return json{{"batch", batch},
              {"complete", complete()},
              {"requests", requests},
              {"from_cache", from_cache},
              {"failed", failed},
              {"tokens", detail::usage_json(tokens)},
              {"network_tokens", detail::usage_json(network_tokens)},
              {"actual_usd", actual},
              {"as_if_usd", as_if},
              {"unknown_models", unknown_models},
              {"models", std::move(lines)}};
}

REQUESTS_ENGINE_INLINE std::string cost_report::to_string() const {
  auto tokens_text = [](const token_usage& u) {
    return std::to_string(u.input_tokens) + " input (" + std::to_string(u.cached_input_tokens) + " cached, " +
           std::to_string(u.cache_write_tokens) + " cache writes), " + std::to_string(u.output_tokens) + " output" +
           (u.reasoning_tokens > 0 ? " (" + std::to_string(u.reasoning_tokens) + " reasoning)" : std::string());
  };
  std::string s = "cost: " + detail::format_dollars(actual) + " spent, " + detail::format_dollars(as_if) +
                  " as if nothing came from the cache" + (batch ? " (batch prices)" : "");
  if (!unknown_models.empty()) {
    s += "; no price for ";
    for (std::size_t i = 0; i < unknown_models.size(); ++i)
      s += (i ? ", " : "") + (unknown_models[i].empty() ? std::string("(unnamed model)") : unknown_models[i]);
    s += ": their cost is unknown and not included";
  }
  auto count = [](std::size_t n, const char* noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
  };
  s += "\ntokens: " + tokens_text(tokens) + "; " + count(requests, "request") + ", " +
       std::to_string(from_cache) + " from the cache, " + std::to_string(failed) + " failed";
  for (const auto& l : models) {
    s += "\n  " + (l.model.empty() ? std::string("(unnamed model)") : l.model);
    if (!l.priced_as.empty() && l.priced_as != l.model) s += " (priced as " + l.priced_as + ")";
    s += ": " + count(l.requests, "request") + ", " + std::to_string(l.from_cache) + " from the cache, " +
         tokens_text(l.tokens) + ", ";
    s += l.actual ? detail::format_dollars(*l.actual) + " spent, " + detail::format_dollars(*l.as_if) + " as if uncached"
                  : std::string("cost unknown");
  }
  return s;
}

REQUESTS_ENGINE_INLINE std::ostream& operator<<(std::ostream& os, const cost_report& r) { return os << r.to_string(); }

REQUESTS_ENGINE_INLINE cost_report make_cost_report(const std::vector<result<completion>>& results,
                                                    const price_table& prices, bool batch) {
  cost_report report;
  report.batch = batch;
  for (const auto& r : results) report.add(r, prices);
  return report;
}

REQUESTS_ENGINE_NAMESPACE_END
