#!/usr/bin/env python3
"""Turns bench/run_cli.sh's raw results into the markdown table (standard library only).

    python3 bench/report_cli.py RESULTS_FILE > table.md

Each line of RESULTS_FILE: "RESULT key=K round=R conns=C served=S mode=... n=... conc=... ok=...
fail=... secs=... rps=... rss_mb=... cpu_us=... [own_secs=... cached=...]". The run's settings
come from the environment (BENCH_*), as run_cli.sh exports them.
"""

import math
import os
import sys
from collections import OrderedDict

env = os.environ.get


def load(path):
    runs = OrderedDict()
    with open(path) as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            d = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            for k in ("n", "conc", "ok", "fail", "conns", "served", "round", "cached"):
                d[k] = int(float(d.get(k, 0)))
            for k in ("secs", "rps", "rss_mb", "cpu_us", "own_secs"):
                d[k] = float(d.get(k, 0))
            runs.setdefault(d["key"], []).append(d)
    return runs


runs = load(sys.argv[1])
notes = []


def fmt_int(x):
    return "{:,.0f}".format(x)


def fmt_s(x):
    return "{:.2f} s".format(x)


def fmt_mb(x):
    return "{:.0f} MB".format(x)


def fastest(key):
    """The round with the highest throughput (the shortest wall time)."""
    rs = runs.get(key, [])
    return max(rs, key=lambda d: d["rps"]) if rs else None


def highest_rss(key):
    rs = runs.get(key, [])
    return max(d["rss_mb"] for d in rs) if rs else 0.0


def every(key, f):
    return " / ".join(f(d) for d in runs.get(key, [])) or "–"


def check(key, expect_served):
    """Flag failed requests and rows where nginx did not serve what was expected."""
    for d in runs.get(key, []):
        if d["fail"]:
            notes.append("**{} round {}: {} failed request(s).**".format(key, d["round"], d["fail"]))
        if d["served"] != expect_served(d):
            notes.append("{} round {}: nginx served {} requests, expected {}.".format(
                key, d["round"], fmt_int(d["served"]), fmt_int(expect_served(d))))


def verdict(value, target, at_least=True):
    if value is None or target is None:
        return ""
    return "met" if (value >= target if at_least else value <= target) else "**missed**"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(x, digits=2):
    return "–" if x is None else "{:.{}f}".format(x, digits)


out = []
p = out.append
quick = env("BENCH_QUICK") == "1"
p("# requests-engine run: benchmark results{}".format(" (QUICK run: sizes too small to mean anything)" if quick else ""))
p("")
p("- commit: {}; binary: `{}`".format(env("BENCH_GIT", "?"), env("BENCH_CLI_BIN", "?")))
p("- machine: {}; {}% busy before the start (other work on the machine lowers every figure)".format(
    env("BENCH_MACHINE", "?"), env("BENCH_BUSY", "?")))
p("- server: {}; clients: {}".format(env("BENCH_SERVER", "?"), env("BENCH_CLIENTS", "?")))
p("- rounds: {} (the big size of C: {}); the best round is kept, every round is shown".format(
    env("BENCH_ROUNDS", "?"), env("BENCH_ROUNDS_BIG", "?")))
p("- `run`'s figures are the whole process timed from outside (start, reading the input, sending, "
  "writing the output, exit); its peak RSS and CPU time are the kernel's (`/usr/bin/time`, wait4's "
  "rusage). The references time their own measured region and report their own `ru_maxrss`.")
p("")

# --- A ---
n_fast = int(env("BENCH_CLI_N_FAST", "0"))
conc = int(env("BENCH_CONC_FAST", "64"))
p("## A. Throughput: {} lines on `/fast` (instant answers), concurrency {}, no cache".format(fmt_int(n_fast), conc))
p("")
p("| client | req/s (best) | every round | CPU µs / request | peak RSS | TCP connections |")
p("| --- | ---: | ---: | ---: | ---: | ---: |")
rows_a = [
    ("cli_fast", "`requests-engine run --concurrency {} --no-cache`".format(conc)),
    ("bare_nojson_fast", "bare cpp-httplib loop, {} threads, no JSON work (`bench_engine bare-nojson`)".format(conc)),
    ("bare_fast", "bare cpp-httplib loop, {} threads, with JSON (`bench_engine bare`)".format(conc)),
    ("engine_fast", "the library: `bench_engine engine` at {}".format(conc)),
    ("python_fast", "Python peer: aiohttp + semaphore at {}".format(conc)),
]
for key, label in rows_a:
    b = fastest(key)
    if b is None:
        continue
    check(key, lambda d: d["n"])
    p("| {} | {} | {} | {:.1f} | {} | {} |".format(
        label, fmt_int(b["rps"]), every(key, lambda d: fmt_int(d["rps"])), b["cpu_us"],
        fmt_mb(highest_rss(key)), every(key, lambda d: str(d["conns"]))))
p("")


def rps(key):
    b = fastest(key)
    return b["rps"] if b else None


p("| ratio (best rounds) | value | target | |")
p("| --- | ---: | ---: | --- |")
r = ratio(rps("cli_fast"), rps("bare_nojson_fast"))
p("| `run` ÷ bare loop without JSON | {} | ≥ 0.7 | {} |".format(fmt_ratio(r), verdict(r, 0.7)))
r = ratio(rps("cli_fast"), rps("python_fast"))
p("| `run` ÷ Python peer | {} | ≥ 8 | {} |".format(fmt_ratio(r, 1), verdict(r, 8)))
r = ratio(rps("cli_fast"), rps("bare_fast"))
p("| `run` ÷ bare loop with JSON | {} | | |".format(fmt_ratio(r)))
r = ratio(rps("engine_fast"), rps("bare_fast"))
p("| library ÷ bare loop with JSON, both at {} | {} | ≥ 0.9 | {} |".format(conc, fmt_ratio(r), verdict(r, 0.9)))
p("")

# --- B ---
slow_s = float(env("BENCH_SLOW_MS", "2000")) / 1000
waves = int(env("BENCH_CLI_WAVES", "3"))
targets_b = {4096: (0.95, 150), 8192: (0.9, 300)}
p("## B. Thousands in flight: `/slow` answering after {:g} s, {} waves".format(slow_s, waves))
p("")
p("| client | concurrency | requests | ideal | wall (best) | every round | ideal ÷ wall | target | peak RSS (highest round) | target | `run`'s own count | TCP connections |")
p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in [int(x) for x in env("BENCH_CLI_CONCS", "").split()]:
    for key, label in (("cli_slow_%d" % c, "`run`"), ("python_slow_%d" % c, "Python peer")):
        b = fastest(key)
        if b is None:
            continue
        check(key, lambda d: d["n"])
        ideal = math.ceil(b["n"] / c) * slow_s
        r = ideal / b["secs"] if b["secs"] else None
        t_ratio, t_rss = targets_b.get(c, (None, None)) if key.startswith("cli") else (None, None)
        rss = highest_rss(key)
        p("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            label, fmt_int(c), fmt_int(b["n"]), fmt_s(ideal), fmt_s(b["secs"]),
            every(key, lambda d: "{:.2f}".format(d["secs"])), fmt_ratio(r),
            "≥ {} {}".format(t_ratio, verdict(r, t_ratio)) if t_ratio else "",
            fmt_mb(rss), "≤ {} MB {}".format(t_rss, verdict(rss, t_rss, at_least=False)) if t_rss else "",
            every(key, lambda d: "{:.2f}".format(d["own_secs"])) if key.startswith("cli") else "",
            every(key, lambda d: str(d["conns"]))))
p("")
p("*`run`'s own count*: the wall time `run` prints in its summary, which leaves out part of its "
  "start and exit; the *wall* column is the process timed from outside.")
p("")

# --- C ---
small = int(env("BENCH_CLI_SMALL", "0"))
big = int(env("BENCH_CLI_BIG", "0"))
p("## C. Memory and the input's size: `/fast`, concurrency {}, with a cache (fresh for each cold run)".format(conc))
p("")
p("| lines | output order | cache | wall (best) | every round | lines/s | peak RSS (highest round) | every round | served by nginx | from the cache |")
p("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in (small, big):
    for order in ("plain", "ordered"):
        for state in ("cold", "warm"):
            key = "cache_%d_%s_%s" % (n, order, state)
            b = fastest(key)
            if b is None:
                continue
            check(key, (lambda d: d["n"]) if state == "cold" else (lambda d: 0))
            p("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                fmt_int(n), "`--ordered`" if order == "ordered" else "as completed", state,
                fmt_s(b["secs"]), every(key, lambda d: "{:.2f}".format(d["secs"])), fmt_int(b["rps"]),
                fmt_mb(highest_rss(key)), every(key, lambda d: "{:.0f}".format(d["rss_mb"])),
                every(key, lambda d: fmt_int(d["served"])), every(key, lambda d: fmt_int(d["cached"]))))
p("")
p("| peak RSS | at {} lines | at {} lines | ratio | targets: ≤ 250 MB, ratio ≤ 1.1 |".format(fmt_int(small), fmt_int(big)))
p("| --- | ---: | ---: | ---: | --- |")
for order in ("plain", "ordered"):
    for state in ("cold", "warm"):
        a = highest_rss("cache_%d_%s_%s" % (small, order, state))
        z = highest_rss("cache_%d_%s_%s" % (big, order, state))
        r = z / a if a else None
        ok = verdict(max(a, z), 250, at_least=False)
        okr = verdict(r, 1.1, at_least=False)
        p("| {} {} | {} | {} | {} | RSS {}, ratio {} |".format(
            "`--ordered`" if order == "ordered" else "as completed", state, fmt_mb(a), fmt_mb(z),
            fmt_ratio(r), ok, okr))
p("")

if notes:
    p("Notes:")
    p("")
    for n in notes:
        p("- " + n)
    p("")
print("\n".join(out))
