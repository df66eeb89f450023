// requests_engine mock server: a loopback HTTP/HTTPS server that behaves like
// an OpenAI-compatible chat completions endpoint and Anthropic's Messages API,
// with their rate limits, headers and errors. Used in-process by the test
// suite and by the `requests-engine mock` CLI subcommand.
//
// Header-only; needs cpp-httplib (built with CPPHTTPLIB_OPENSSL_SUPPORT),
// nlohmann/json and OpenSSL 3 (-lssl -lcrypto).
//
// Routes:
//   POST /v1/chat/completions   OpenAI chat completions (streamed with "stream": true, see below)
//   POST /v1/completions        OpenAI legacy completions, `prompt` a string or an array of
//                               strings: choices[].index = prompt * n + sample, the choices in
//                               reverse order (auth, limits, faults and latency as below)
//   POST /v1/responses          OpenAI Responses (see mock/responses.hpp): 400 for
//                               chat-only parameters, max_output_tokens < 16, an input_image
//                               without detail, a function tool without strict or parameters;
//                               a forced tool choice answers a function_call, "please refuse" a
//                               refusal, text.format json_schema {"answer": ...}, a
//                               max_output_tokens under 20 status "incomplete"
//                               (auth, limits, faults and latency as below)
//   POST /v1/embeddings         OpenAI embeddings, `input` a string or an array of at most 2048
//                               non-empty strings, `encoding_format` float or base64 (little-
//                               endian float32), `dimensions` (default 16): each vector is
//                               mock_embedding(input, dims), data in reverse order with their
//                               index (auth, limits, faults and latency as below; see mock/embeddings.hpp)
//   POST /v1/messages           Anthropic Messages
//   GET  /health                200 "ok"
//   the batch APIs: /v1/files, /v1/batches, /v1/messages/batches (see mock/batch.hpp)
//   the Gemini API, Vertex AI and Bedrock routes (see mock/google_aws.hpp)
//   POST /api/chat              Ollama's native chat (no key, limits or faults)
// Anything else gets an OpenAI-shaped JSON 404.
//
// Mock behaviour of POST /v1/chat/completions (in this order):
//   1. counts the request, records its parsed body (null if not JSON) and
//      headers (at most the last 1000);
//   2. `on_chat` hook, if set, may produce the whole response itself;
//   3. auth: if api_key (or extra_api_keys) is set, "Authorization: Bearer <key>"
//      is required, else 401 {"error":{..., "code":"invalid_api_key"}}; keys in
//      invalid_api_keys always get that 401, keys in quota_exhausted_api_keys
//      429 insufficient_quota;
//   4. validation: 400 invalid_request_error for a body that is not a JSON
//      object, missing/non-string 'model', missing/empty/non-array 'messages',
//      a message that is not an object with a string 'role', an 'n' that is not
//      an integer in [1,128], a 'max_tokens' / 'max_completion_tokens' that is
//      not a positive integer; a model that
//      OpenAI serves on /v1/responses only (o1-pro*, o3-pro*, gpt-5-pro*, *codex*)
//      gets 404 as from OpenAI. Reasoning models (o1/o3/o4/gpt-5*, or a name with
//      "reason") spend 16 reasoning tokens per choice, inside completion_tokens;
//   5. a forced pause (pause_requests / pause_for): 429 rate_limit_exceeded
//      with retry-after;
//   6. injected faults (fail_reset, fail_500, fail_429, fail_overload,
//      fail_truncate, fail_stall), drawn from `seed` and the request's sequence
//      number: the connection closed without an answer, 500, 429 with
//      retry-after, 503, a 200 body cut short, silence then a closed connection;
//   7. rate limits (rpm, tpm, input_tpm, output_tpm) per key: token buckets;
//      past them 429 rate_limit_exceeded with retry-after and retry-after-ms.
//      Answers carry x-ratelimit-{limit,remaining,reset}-{requests,tokens}
//      for each configured limit (reset as OpenAI writes it: "12ms", "6m0s");
//   8. latency_ms + uniform[0, latency_jitter_ms] delay (interrupted by stop());
//   9. 200 with choices whose content is "Mock answer to: " + text of the last
//      user message (string content, or "text" parts joined with "\n"), plus
//      " (sample i)" for choice i > 0. Token counts are bytes/4 rounded up, at
//      least 1: prompt = all message texts, completion = sum over choices.
//      If max_tokens (or max_completion_tokens) is smaller than a choice's
//      estimate, its text is cut to max_tokens*4 bytes (on a UTF-8 boundary)
//      and finish_reason is "length".
// Every chat response carries an `x-request-id` header.
//
// POST /v1/messages follows the same steps with Anthropic's rules and shapes:
// "x-api-key" (401 authentication_error), "anthropic-version" required,
// 'model', 'max_tokens' and 'messages' validated (400 invalid_request_error),
// errors as {"type":"error","error":{"type":...,"message":...}}, the quota key
// 400 "credit balance is too low", 500 api_error, overload 529
// overloaded_error, 429 rate_limit_error with retry-after (seconds); answers
// carry anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
// {limit,remaining,reset} (reset in RFC 3339) and `request-id`. The answer is
// a Messages response with the same text rule (stop_reason "end_turn", or
// "max_tokens" when cut).
//
// Streaming (mock/streaming.hpp). "stream": true on chat completions, legacy completions,
// Responses, Messages, Vertex's OpenAI route and rawPredict; Vertex's :streamRawPredict,
// :streamGenerateContent (Gemini API and Vertex; ?alt=sse for SSE, else one JSON array sent in
// pieces) and Bedrock's POST /model/{id}/invoke-with-response-stream always stream. The events
// are made from the body the route would send whole (same ids, text, usage, finish reasons),
// text and tool arguments in pieces of about stream_chunk_bytes (never inside a UTF-8
// sequence), stream_event_delay_ms apart, each written as it is made (chunked encoding):
//   OpenAI chat        data: chat.completion.chunk ... [usage chunk with include_usage] data: [DONE]
//   OpenAI completions data: text_completion chunk ... [usage chunk] data: [DONE]
//   Responses          event:/data: response.created, .in_progress, .output_item.added,
//                      .content_part.added, .output_text.delta ... .done, .content_part.done,
//                      (.function_call_arguments.delta ... .done), .output_item.done,
//                      response.completed (or .incomplete) with the whole response
//   Anthropic          message_start, content_block_start, ping, content_block_delta ...,
//                      content_block_stop, message_delta, message_stop
//   Gemini             data: GenerateContentResponse ... (CRLF CRLF), the last with finishReason
//                      and the whole usageMetadata
//   Bedrock            application/vnd.amazon.eventstream: one "chunk" event per Anthropic event,
//                      {"bytes": base64 of its JSON}
// Everything before the stream (auth, validation, pauses, faults, limits) answers as for a
// whole answer. After the 200, stream faults (fail_stream_cut / _error / _stall, or
// fail_next_streams()) cut the connection, send an error event in the format's shape, or go
// silent for stream_stall_ms, each after about half the events. A streamed request is logged
// when its stream ends (status 200).
//
// Every model request is counted by path, key fingerprint and status, kept in
// request_log() (the last 20000), and with log_requests_path appended as one
// JSON line: time, path, key fingerprint (never the key), status (0 = dropped),
// ms, last user text (its first 1000 bytes), body SHA-256, and with
// log_request_bodies the body itself.
//
// The parts, under tools/mock/ (each includes the parts it uses):
//   server.hpp        class server: start/stop, the routes of every part, the public API
//   core.hpp          what every model route shares (counters, request log, keys, pauses,
//                     faults, rate limits, latency) and the OpenAI / Anthropic model routes
//   openai.hpp        chat completions: request checks, answer body, OpenAI errors
//   anthropic.hpp     Messages: request checks, answer body, Anthropic errors
//   streaming.hpp     every format's stream events, made from an answer body; AWS event stream
//   google_aws.hpp    Gemini API, Vertex AI with its token endpoint, Bedrock
//   batch.hpp         OpenAI Files + Batch, Anthropic Message Batches
//   rate_limiter.hpp  token buckets per key
//   sockets.hpp       connection counting, dropping a connection, waking idle workers
//   common.hpp        server_options and small helpers
//   pki.hpp           make_test_pki: a CA and a localhost certificate for HTTPS
// A new route (another provider, another API) is a new part next to openai.hpp,
// a class like google_aws_routes that gets the server_core and is owned by the server.
#pragma once

#include "mock/pki.hpp"
#include "mock/server.hpp"
