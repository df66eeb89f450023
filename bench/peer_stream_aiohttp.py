#!/usr/bin/env python3
"""The Python peer for the streaming benchmark: N streamed chat completions through aiohttp.

    python3 bench/peer_stream_aiohttp.py URL N CONCURRENCY

What a Python batch runner does to stream: one aiohttp ClientSession with
TCPConnector(limit=C), an asyncio.Semaphore(C) around each request, `"stream": true` with
`stream_options.include_usage`, the body read line by line, each `data:` line but `[DONE]` parsed
with json.loads and its `choices[].delta.content` appended to the answer (the OpenAI SDK's SSE
decoder does the same work). URL is an OpenAI-style base URL ending in /v1. The prompts are the
ones bench_stream sends. Prints one RESULT line in bench_stream's format (mode=python-streamed).
"""

import asyncio
import json
import resource
import sys
import time

import aiohttp

KEY = "sk-bench"
MODEL = "mock-model"


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def main(url: str, n: int, conc: int) -> int:
    endpoint = url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY, "Accept": "text/event-stream"}
    sem = asyncio.Semaphore(conc)
    filler = "x" * 770
    state = {"ok": 0, "fail": 0, "events": 0, "bytes": 0, "first_error": None}

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "%d %s" % (i, filler)}],
                "stream": True, "stream_options": {"include_usage": True}}
        why = None
        async with sem:
            try:
                async with session.post(endpoint, json=body, headers=headers) as resp:
                    if resp.status != 200:
                        why = "HTTP %d" % resp.status
                    else:
                        text, done, usage = [], False, None
                        async for raw in resp.content:
                            line = raw.decode("utf-8").rstrip("\r\n")
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].lstrip(" ")
                            if data == "[DONE]":
                                done = True
                                break
                            chunk = json.loads(data)
                            usage = chunk.get("usage") or usage
                            for choice in chunk.get("choices", []):
                                piece = choice.get("delta", {}).get("content")
                                if piece:
                                    text.append(piece)
                                    state["events"] += 1
                        if done and usage is not None:
                            state["ok"] += 1
                            state["bytes"] += len("".join(text))
                            return
                        why = "stream cut short"
            except Exception as e:  # noqa: BLE001 - a benchmark counts every failure
                why = repr(e)
        state["fail"] += 1
        if state["first_error"] is None:
            state["first_error"] = why

    connector = aiohttp.TCPConnector(limit=conc)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(one(session, i) for i in range(n)))
        secs, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if state["first_error"] is not None:
        print("python: first failure: " + state["first_error"], file=sys.stderr)
    events = state["events"]
    print("RESULT mode=python-streamed answers=%d seconds=%.3f cpu_s=%.3f cpu_us_per_answer=%.1f events=%d "
          "cpu_us_per_event=%.2f text_bytes=%d failed=%d rss_mb=%.1f"
          % (n, secs, cpu, cpu * 1e6 / n, events, cpu * 1e6 / events if events else 0.0, state["bytes"],
             state["fail"], rss_mb), flush=True)
    return 0 if state["fail"] == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
