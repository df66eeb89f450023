// cost.hpp: the price table (dollars per million tokens, batch and cached prices) and the
// spend report: actual cost and cost as if nothing came from the cache.
#pragma once

#include "model.hpp"

REQUESTS_ENGINE_NAMESPACE_BEGIN

/// Dollars per million tokens of one model: one row of the price table.
struct model_price {
  double input = 0;             ///< prompt tokens neither read from nor written to the provider's cache
  double output = 0;            ///< generated tokens (reasoning tokens included)
  double cached_input = 0;      ///< prompt tokens read from the provider's cache
  double cache_write = 0;       ///< prompt tokens written to it (Anthropic's 5-minute writes)
  double batch_discount = 0.5;  ///< fraction taken off every price for batch requests (0.5 = half price)
  /// Prices for every token of a request whose whole prompt (input_tokens: cached and
  /// written tokens included) is larger than `above_input_tokens`.
  struct long_context_tier {
    std::int64_t above_input_tokens = 0;
    double input = 0;
    double output = 0;
    double cached_input = 0;
    double cache_write = 0;
  };
  std::optional<long_context_tier> long_context;

  /// Dollars for one request. Uncached prompt tokens are input - cached - cache_write.
  [[nodiscard]] REQUESTS_ENGINE_INLINE double cost(const token_usage& u, bool batch = false) const noexcept;
};

/// Prices by model id. `builtin()` holds the providers' list prices (see the date and the
/// sources above the table in the implementation); overrides come from JSON in the same
/// shape, or from a callback. The const members are safe to call from several threads at
/// once (the callback must be too); changing a table while others read it is not.
///
/// A model id is matched exactly, then by the aliases of a row, then (for Bedrock) without
/// a cross-region prefix (`us.`, `eu.`, `apac.`, `global.`, `us-gov.`, `jp.`, `au.`), then as
/// a dated snapshot: a known id followed by `-YYYY-MM-DD`, `-YYYYMMDD`, `@YYYYMMDD` or `-00N`
/// (the longest such id wins). Never by a looser substring: an unknown model has no price.
class price_table {
 public:
  /// Asked first for every model; std::nullopt (or an exception) falls back to the table.
  using lookup_callback = std::function<std::optional<model_price>(std::string_view model)>;

  price_table() = default;  ///< empty: every model unknown
  /// The built-in prices (parsed once, on first use).
  [[nodiscard]] static REQUESTS_ENGINE_INLINE const price_table& builtin();
  /// The built-in prices with a JSON file merged over them. Throws std::runtime_error if
  /// the file cannot be read, std::invalid_argument (naming the problem) if it is malformed.
  [[nodiscard]] static REQUESTS_ENGINE_INLINE price_table from_file(const std::string& path);

  /// Merges a table: {"read_on": "...", "sources": [...], "models": {"<id>": {"input": 2.5,
  /// "output": 10, "cached_input": 1.25, "cache_write": 3.75, "batch_discount": 0.5,
  /// "aliases": ["..."], "long_context": {"above_input_tokens": 200000, "input": ...,
  /// "output": ...}, "note": "..."}}}. The fields given replace those of a known row; a new
  /// row needs input and output (cached_input and cache_write default to input); a row set
  /// to null is removed. Throws std::invalid_argument naming the model and the field.
  REQUESTS_ENGINE_INLINE price_table& merge_json(const json& table);
  REQUESTS_ENGINE_INLINE price_table& merge_file(const std::string& path);
  price_table& set_lookup_callback(lookup_callback f) {
    callback_ = std::move(f);
    return *this;
  }

  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<model_price> find(std::string_view model) const;
  /// The row a model id is priced by (the id itself when the callback answered).
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<std::string> match(std::string_view model) const;
  /// Dollars for one request's usage; std::nullopt when the model has no price. No allocation.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<double> cost(std::string_view model, const token_usage& u,
                                                                  bool batch = false) const;
  /// The table in the shape merge_json takes.
  [[nodiscard]] REQUESTS_ENGINE_INLINE json to_json() const;
  [[nodiscard]] const std::string& read_on() const noexcept { return read_on_; }
  [[nodiscard]] std::size_t size() const noexcept { return rows_.size(); }

 private:
  struct row {
    model_price price;
    std::vector<std::string> aliases;
  };
  using row_map = std::map<std::string, row, std::less<>>;
  [[nodiscard]] REQUESTS_ENGINE_INLINE const row_map::value_type* lookup(std::string_view model) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE const row_map::value_type* lookup_exact(std::string_view model) const;
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::optional<model_price> ask_callback(std::string_view model) const;

  row_map rows_;
  std::map<std::string, std::string, std::less<>> aliases_;  // alias -> row id
  lookup_callback callback_;
  std::string read_on_;
  std::vector<std::string> sources_;
};

/// Tokens and dollars for a set of results: the actual spend (only the requests that went to
/// the network) and the spend as if none had come from the engine's cache.
struct cost_report {
  struct model_line {
    std::string model;          ///< as the provider reported it (completion::model)
    std::string priced_as;      ///< the price-table row used; empty when the price is unknown
    std::size_t requests = 0;   ///< successful results
    std::size_t from_cache = 0; ///< of which served by the engine's cache
    token_usage tokens;         ///< every result
    token_usage network_tokens; ///< the results that went to the network
    std::optional<double> actual;  ///< dollars; std::nullopt when the price is unknown
    std::optional<double> as_if;
  };
  std::vector<model_line> models;  ///< sorted by model
  std::size_t requests = 0;        ///< successful results
  std::size_t from_cache = 0;
  std::size_t failed = 0;  ///< errors: their usage (if any was billed) is not known
  token_usage tokens;
  token_usage network_tokens;
  double actual = 0;  ///< dollars, over the models with a known price
  double as_if = 0;
  std::vector<std::string> unknown_models;  ///< counted in tokens, missing from the dollars
  bool batch = false;                       ///< priced at batch prices

  /// True when every model had a price (the dollars are then the whole spend).
  [[nodiscard]] bool complete() const noexcept { return unknown_models.empty(); }
  /// Adds one result (the engine's progress and the CLI's summary use this as they go).
  REQUESTS_ENGINE_INLINE void add(const result<completion>& r, const price_table& prices);
  [[nodiscard]] REQUESTS_ENGINE_INLINE json to_json() const;
  /// A few lines for people: totals, then one line per model.
  [[nodiscard]] REQUESTS_ENGINE_INLINE std::string to_string() const;
};

REQUESTS_ENGINE_INLINE std::ostream& operator<<(std::ostream& os, const cost_report& r);

[[nodiscard]] REQUESTS_ENGINE_INLINE cost_report make_cost_report(const std::vector<result<completion>>& results,
                                                                  const price_table& prices = price_table::builtin(),
                                                                  bool batch = false);

REQUESTS_ENGINE_NAMESPACE_END
