// requests_engine mock: Azure OpenAI's differences from OpenAI's routes, as Azure documents them.
//
//   POST /openai/v1/{chat/completions,responses,embeddings}      the v1 API: no api-version
//   POST /openai/deployments/{d}/{chat/completions,completions,embeddings}?api-version=V
//   POST /openai/responses?api-version=V                          the classic routes: V required
//
// The key comes in `api-key` (or an Entra token as Authorization: Bearer); the answers carry
// Azure's content-filter annotations (prompt_filter_results, choices[].content_filter_results),
// a streamed answer begins with a chunk of no choices that holds the prompt's, and a prompt
// holding one of these markers is filtered:
//   [[azure:filter-prompt]]      400 {"error":{"code":"content_filter","innererror":{...}}}
//   [[azure:filter-completion]]  200 with finish_reason "content_filter" and no content
#pragma once

#include "common.hpp"
#include "openai.hpp"
#include "streaming.hpp"

#include <string>

namespace requests_engine_mock {
namespace detail {

constexpr const char* azure_filter_prompt_marker = "[[azure:filter-prompt]]";
constexpr const char* azure_filter_completion_marker = "[[azure:filter-completion]]";

// Every category, as Azure reports a prompt or an answer it let through (or one it filtered
// for `hit`, at high severity).
inline nlohmann::ordered_json azure_filter_results(const std::string& hit = {}) {
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  for (const char* category : {"hate", "self_harm", "sexual", "violence"}) {
    const bool filtered = hit == category;
    r[category] = {{"filtered", filtered}, {"severity", filtered ? "high" : "safe"}};
  }
  return r;
}

// Azure's 400 for a prompt its content filter refused.
inline void set_azure_prompt_filtered(httplib::Response& res) {
  nlohmann::ordered_json err;
  err["message"] =
      "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please "
      "modify your prompt and retry. To learn more about our content filtering policies please read our "
      "documentation: https://go.microsoft.com/fwlink/?linkid=2198766";
  err["type"] = nullptr;
  err["param"] = "prompt";
  err["code"] = "content_filter";
  err["status"] = 400;
  err["innererror"] = {{"code", "ResponsibleAIPolicyViolation"},
                       {"content_filter_result", azure_filter_results("violence")}};
  set_json(res, 400, nlohmann::ordered_json{{"error", std::move(err)}}.dump());
}

// A chat completion as Azure sends it: annotated, and cut by the filter when `filtered`.
inline std::string azure_chat_answer(const std::string& openai_answer, bool filtered) {
  nlohmann::ordered_json body = nlohmann::ordered_json::parse(openai_answer);
  body["prompt_filter_results"] = nlohmann::ordered_json::array(
      {{{"prompt_index", 0}, {"content_filter_results", azure_filter_results()}}});
  for (auto& choice : body["choices"]) {
    choice["content_filter_results"] = azure_filter_results(filtered ? "violence" : "");
    if (filtered) {
      choice["finish_reason"] = "content_filter";
      choice["message"]["content"] = nullptr;
    }
  }
  return body.dump();
}

// Azure's stream opens with a chunk of no choices carrying the prompt's filter results.
inline void azure_annotate_stream(stream_plan& plan, const std::string& answer) {
  const nlohmann::ordered_json body = nlohmann::ordered_json::parse(answer);
  nlohmann::ordered_json head;
  head["choices"] = nlohmann::ordered_json::array();
  head["created"] = 0;
  head["id"] = "";
  head["model"] = "";
  head["object"] = "";
  head["prompt_filter_results"] = body["prompt_filter_results"];
  plan.events.insert(plan.events.begin(), sse_data(head));
}

// Azure's answer to a classic route without api-version.
inline void set_azure_missing_api_version(httplib::Response& res) {
  set_json(res, 404,
           R"({"error":{"code":"404","message":"Resource not found. The api-version query parameter (?api-version=) is required for all requests to the deployment routes."}})");
}

}  // namespace detail
}  // namespace requests_engine_mock
