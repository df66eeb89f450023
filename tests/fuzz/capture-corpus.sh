#!/usr/bin/env bash
# Captures the mock server's real answers (bodies with their status and headers, streams, batch
# result files, cache entries) into tests/fuzz/corpus/<target>/, the fuzz targets' seeds.
# Run again after a change to the mock's shapes; the hand-picked edge cases (files named
# edge-*) are not touched.
#   bash tests/fuzz/capture-corpus.sh [path/to/requests-engine]   (default build/dev/requests-engine)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=$(realpath "${1:-build/dev/requests-engine}")
corpus=tests/fuzz/corpus
work=$(mktemp -d)
trap 'kill "$mock" 2>/dev/null || true; wait "$mock" 2>/dev/null || true; rm -rf "$work"' EXIT

export FUZZ_MOCK_KEY=sk-mock-key FUZZ_QUOTA_KEY=sk-quota-key
"$bin" mock --port 0 --port-file "$work/port" --threads 4 --rpm 600 --tpm 1000000 --input-tpm 500000 \
  --output-tpm 500000 --api-key-env FUZZ_MOCK_KEY --quota-key-env FUZZ_QUOTA_KEY --stream-chunk-bytes 6 \
  --batch-delay-ms 0 >"$work/mock.log" 2>&1 &
mock=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
base=http://127.0.0.1:$(cat "$work/port")

# auth PATH: the headers that route needs (each provider has its own).
sig=$(printf '0%.0s' $(seq 64))
auth() {
  case "$1" in
    /v1/messages*) echo "x-api-key: $FUZZ_MOCK_KEY"; echo 'anthropic-version: 2023-06-01' ;;
    /v1beta/*) echo "x-goog-api-key: $FUZZ_MOCK_KEY" ;;
    /model/*) echo "Authorization: AWS4-HMAC-SHA256 Credential=AKIAFUZZ/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=$sig"
              echo 'X-Amz-Date: 20260101T000000Z' ;;
    *) echo "Authorization: Bearer $FUZZ_MOCK_KEY" ;;
  esac
}
# save TARGET NAME PATH BODY [CURL ARGS...]: the answer as `curl -si` prints it (status line,
# headers, body); the provider targets read it so. CURL ARGS, when given, replace the auth.
save() {
  local target=$1 name=$2 path=$3 body=$4; shift 4
  local h=() line
  if [ $# -eq 0 ]; then while IFS= read -r line; do h+=(-H "$line"); done < <(auth "$path"); fi
  mkdir -p "$corpus/$target"
  curl -si "$base$path" -H 'Content-Type: application/json' "${h[@]}" "$@" -d "$body" >"$corpus/$target/$name"
}
# stream TARGET NAME PATH BODY: the streamed body alone (what a decoder is fed).
stream() {
  local target=$1 name=$2 path=$3 body=$4
  local h=() line
  while IFS= read -r line; do h+=(-H "$line"); done < <(auth "$path")
  mkdir -p "$corpus/$target"
  curl -s "$base$path" -H 'Content-Type: application/json' "${h[@]}" -d "$body" >"$corpus/$target/$name"
}

chat='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi é ✓"}]}'
chat_n='{"model":"o3-mini","n":2,"max_tokens":5,"messages":[{"role":"system","content":"s"},{"role":"user","content":"Two answers"}]}'
chat_tool='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}}'
save openai_chat ok "/v1/chat/completions" "$chat"
save openai_chat n2-length "/v1/chat/completions" "$chat_n"
save openai_chat tool "/v1/chat/completions" "$chat_tool"
save openai_chat err-400 "/v1/chat/completions" '{"model":"gpt-4o-mini","messages":[]}'
save openai_chat err-401 "/v1/chat/completions" "$chat" -H 'Authorization: Bearer wrong'
save openai_chat err-429-quota "/v1/chat/completions" "$chat" -H "Authorization: Bearer $FUZZ_QUOTA_KEY"
save openai_chat err-404 "/v1/chat/completions" '{"model":"o3-pro","messages":[{"role":"user","content":"x"}]}'
save openai_completions ok "/v1/completions" '{"model":"gpt-3.5-turbo-instruct","prompt":["one","two"],"n":2}'
save openai_completions err-400 "/v1/completions" '{"model":"gpt-3.5-turbo-instruct"}'
save openai_responses ok "/v1/responses" '{"model":"gpt-4o-mini","input":"Hi"}'
save openai_responses reasoning "/v1/responses" '{"model":"o3","input":[{"role":"user","content":"Think"}]}'
save openai_responses tool "/v1/responses" '{"model":"gpt-4o-mini","input":"w","tools":[{"type":"function","name":"get_weather","strict":true,"parameters":{"type":"object","properties":{}}}],"tool_choice":{"type":"function","name":"get_weather"}}'
save openai_responses refusal "/v1/responses" '{"model":"gpt-4o-mini","input":"please refuse"}'
save openai_responses incomplete "/v1/responses" '{"model":"gpt-4o-mini","input":"long","max_output_tokens":16}'
save openai_responses err-400 "/v1/responses" '{"model":"gpt-4o-mini","input":"x","max_output_tokens":3}'
msgs='{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}'
save anthropic ok "/v1/messages" "$msgs"
save anthropic cut "/v1/messages" '{"model":"claude-sonnet-4-5","max_tokens":2,"system":"s","messages":[{"role":"user","content":"A longer question"}]}'
save anthropic err-400 "/v1/messages" '{"model":"claude-sonnet-4-5","messages":[]}'
save anthropic err-401 "/v1/messages" "$msgs" -H 'x-api-key: wrong' -H 'anthropic-version: 2023-06-01'
gem='{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}'
save gemini ok "/v1beta/models/gemini-2.5-flash:generateContent" "$gem"
save gemini err-400 "/v1beta/models/gemini-2.5-flash:generateContent" '{"contents":5}'
save bedrock ok "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke" '{"anthropic_version":"bedrock-2023-05-31","max_tokens":32,"messages":[{"role":"user","content":"Hi"}]}'
save bedrock err-400 "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke" '{"messages":5}'
save embeddings openai-float "/v1/embeddings" '{"model":"text-embedding-3-small","input":"Hi","dimensions":4}'
save embeddings openai-base64 "/v1/embeddings" '{"model":"text-embedding-3-small","input":"Hi","dimensions":4,"encoding_format":"base64"}'
save embeddings gemini "/v1beta/models/gemini-embedding-001:embedContent" '{"content":{"parts":[{"text":"Hi"}]},"outputDimensionality":4}'
save embeddings err-400 "/v1/embeddings" '{"model":"text-embedding-3-small","input":""}'

# Streams: the body alone.
stream stream_openai_chat ok "/v1/chat/completions" '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi é ✓"}]}'
stream stream_openai_chat n2 "/v1/chat/completions" '{"model":"gpt-4o-mini","stream":true,"n":2,"messages":[{"role":"user","content":"Two"}]}'
stream stream_openai_chat tool "/v1/chat/completions" "${chat_tool%\}},\"stream\":true}"
stream stream_openai_completions ok "/v1/completions" '{"model":"gpt-3.5-turbo-instruct","prompt":["one","two"],"stream":true,"stream_options":{"include_usage":true}}'
stream stream_openai_responses ok "/v1/responses" '{"model":"o3","input":"Hi","stream":true}'
stream stream_openai_responses tool "/v1/responses" '{"model":"gpt-4o-mini","input":"w","stream":true,"tools":[{"type":"function","name":"get_weather","strict":true,"parameters":{"type":"object","properties":{}}}],"tool_choice":{"type":"function","name":"get_weather"}}'
stream stream_openai_responses incomplete "/v1/responses" '{"model":"gpt-4o-mini","input":"long","max_output_tokens":16,"stream":true}'
stream stream_anthropic ok "/v1/messages" '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi é"}]}'
stream stream_anthropic tool "/v1/messages" '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"w"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"get_weather"}}'
stream stream_bedrock ok "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke-with-response-stream" '{"anthropic_version":"bedrock-2023-05-31","max_tokens":32,"messages":[{"role":"user","content":"Hi"}]}'
stream stream_gemini sse "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" "$gem"
# The framings alone get the same streams.
mkdir -p "$corpus/sse" "$corpus/event_stream"
cp "$corpus/stream_openai_chat/ok" "$corpus/sse/openai-chat"
cp "$corpus/stream_anthropic/ok" "$corpus/sse/anthropic"
cp "$corpus/stream_bedrock/ok" "$corpus/event_stream/bedrock"

# Headers: the rate-limit and retry-after headers of both APIs (the body left out).
mkdir -p "$corpus/headers"
for i in 1 2; do
  curl -s -o /dev/null -D "$corpus/headers/openai-$i" "$base/v1/chat/completions" \
    -H "Authorization: Bearer $FUZZ_MOCK_KEY" -d "$chat"
  curl -s -o /dev/null -D "$corpus/headers/anthropic-$i" "$base/v1/messages" -H "x-api-key: $FUZZ_MOCK_KEY" \
    -H 'anthropic-version: 2023-06-01' -d "$msgs"
done

# The fast JSON reader: every JSON body captured above.
mkdir -p "$corpus/fast_json"
for f in "$corpus"/{openai_chat,openai_completions,openai_responses,anthropic,gemini,embeddings}/[!e]*; do
  sed '1,/^\r$/d' "$f" >"$corpus/fast_json/$(basename "$(dirname "$f")")-$(basename "$f")"
done

# Batch result files: one OpenAI batch and one Anthropic batch of four requests, as fetched.
mkdir -p "$corpus/batch_results"
lines=""
for i in 0 1 2; do
  lines+="{\"custom_id\":\"request-$i\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"q$i\"}]}}"$'\n'
done
lines+='{"custom_id":"request-3","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}'$'\n'
printf '%s' "$lines" >"$work/in.jsonl"
file=$(curl -s "$base/v1/files" -H "Authorization: Bearer $FUZZ_MOCK_KEY" -F purpose=batch -F "file=@$work/in.jsonl" |
       sed 's/.*"id":"\([^"]*\)".*/\1/')
batch=$(curl -s "$base/v1/batches" -H "Authorization: Bearer $FUZZ_MOCK_KEY" \
        -d "{\"input_file_id\":\"$file\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" |
        sed 's/.*"id":"\(batch[^"]*\)".*/\1/')
for _ in $(seq 50); do
  st=$(curl -s "$base/v1/batches/$batch" -H "Authorization: Bearer $FUZZ_MOCK_KEY")
  case "$st" in *'"status":"completed"'*) break ;; esac
  sleep 0.1
done
out=$(sed 's/.*"output_file_id":"\([^"]*\)".*/\1/' <<<"$st")
errf=$(sed -n 's/.*"error_file_id":"\([^"]*\)".*/\1/p' <<<"$st")
curl -s "$base/v1/files/$out/content" -H "Authorization: Bearer $FUZZ_MOCK_KEY" >"$corpus/batch_results/openai"
if [ -n "$errf" ]; then curl -s "$base/v1/files/$errf/content" -H "Authorization: Bearer $FUZZ_MOCK_KEY" \
    >"$corpus/batch_results/openai-errors"; fi
req='{"requests":['
for i in 0 1 2; do
  req+="{\"custom_id\":\"request-$i\",\"params\":{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\",\"content\":\"q$i\"}]}},"
done
req+='{"custom_id":"request-3","params":{"model":"claude-sonnet-4-5","messages":[]}}]}'
mb=$(curl -s "$base/v1/messages/batches" -H "x-api-key: $FUZZ_MOCK_KEY" -H 'anthropic-version: 2023-06-01' -d "$req" |
     sed 's/.*"id":"\(msgbatch[^"]*\)".*/\1/')
for _ in $(seq 50); do
  curl -s -o "$corpus/batch_results/anthropic" -w '%{http_code}' "$base/v1/messages/batches/$mb/results" \
    -H "x-api-key: $FUZZ_MOCK_KEY" -H 'anthropic-version: 2023-06-01' | grep -q 200 && break
  sleep 0.1
done

# Cache entries: what `requests-engine run` stores for the examples.
mkdir -p "$corpus/cache_entry" "$corpus/input_lines"
OPENAI_API_KEY=$FUZZ_MOCK_KEY "$bin" run examples/questions.jsonl --model gpt-4o-mini --base-url "$base/v1" --cache-dir "$work/cache" \
  --output "$work/out.jsonl" >/dev/null 2>&1 || true
find "$work/cache" -type f | head -n 3 | while read -r f; do cp "$f" "$corpus/cache_entry/$(basename "$f")"; done

# Input lines: the examples, both formats.
cp examples/questions.jsonl "$corpus/input_lines/plain.jsonl"
cp examples/openai_batch.jsonl "$corpus/input_lines/openai_batch.jsonl"

mkdir -p "$corpus/url"
printf '%s' "$base/v1" >"$corpus/url/mock"
du -sh "$corpus"
