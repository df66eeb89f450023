#!/usr/bin/env python3
"""The Python peer: N chat requests through aiohttp, C at a time.

    python3 bench/peer_aiohttp.py URL N CONCURRENCY

This is the pattern the Python batch-inference libraries use: one aiohttp ClientSession with a
TCPConnector(limit=C) (keep-alive pool), an asyncio.Semaphore(C) around each request, all
requests gathered at once, and `await resp.json()` on every answer. URL is an OpenAI-style base
URL ending in /v1; "/chat/completions" is appended. The bodies are the ones the engine sends.

Prints one line, like bench_engine:
    RESULT mode=python n=20000 conc=64 ok=20000 fail=0 secs=9.876 rps=2025.1 rss_mb=60.2 cpu_us=480.0
"""

import asyncio
import resource
import sys
import time

import aiohttp

KEY = "bench-key"
MODEL = "gpt-4o-mini"


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def main(url: str, n: int, conc: int) -> int:
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY, "Accept": "application/json"}
    sem = asyncio.Semaphore(conc)
    ok = 0
    fail = 0
    first_error = None

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal ok, fail, first_error
        body = {"model": MODEL, "messages": [{"role": "user", "content": "question %d" % i}]}
        async with sem:
            try:
                async with session.post(endpoint, json=body, headers=headers) as resp:
                    data = await resp.json()
                    if resp.status == 200 and isinstance(data["choices"][0]["message"]["content"], str):
                        ok += 1
                        return
                    why = "HTTP %d" % resp.status
            except Exception as e:  # noqa: BLE001 - a benchmark counts every failure
                why = repr(e)
        fail += 1
        if first_error is None:
            first_error = why

    connector = aiohttp.TCPConnector(limit=conc)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(one(session, i) for i in range(n)))
        secs, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if first_error is not None:
        print("python: first failure: " + first_error, file=sys.stderr)
    print("RESULT mode=python n=%d conc=%d ok=%d fail=%d secs=%.3f rps=%.1f rss_mb=%.1f cpu_us=%.1f"
          % (n, conc, ok, fail, secs, ok / secs, rss_mb, cpu * 1e6 / ok if ok else 0.0), flush=True)
    return 0 if fail == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
