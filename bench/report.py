#!/usr/bin/env python3
"""Turns bench/run.sh's raw results into the markdown table (standard library only).

    python3 bench/report.py RESULTS_FILE > table.md

Each line of RESULTS_FILE: "RESULT key=K round=R conns=C mode=... n=... conc=... ok=... fail=...
secs=... rps=... rss_mb=... cpu_us=... [first_send_ms=... last_answer_ms=... after_last_ms=...]".
The run's settings come from the environment (BENCH_*), as run.sh exports them.
"""

import os
import sys
from collections import OrderedDict

env = os.environ.get


def load(path):
    runs = OrderedDict()  # key -> list of dicts, in order of appearance
    with open(path) as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            d = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            for k in ("n", "conc", "ok", "fail", "conns", "served", "round", "others"):
                d[k] = int(float(d.get(k, 0)))
            for k in ("secs", "rps", "rss_mb", "cpu_us"):
                d[k] = float(d.get(k, 0))
            runs.setdefault(d["key"], []).append(d)
    return runs


def best(runs, key):
    """The round with the most req/s among those without failures; None if none."""
    good = [r for r in runs.get(key, []) if r["fail"] == 0 and r["rps"] > 0]
    return max(good, key=lambda r: r["rps"]) if good else None


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    runs = load(sys.argv[1])
    n_fast, n_slow = int(env("BENCH_N_FAST")), int(env("BENCH_N_SLOW"))
    conc_fast, conc_slow = int(env("BENCH_CONC_FAST")), int(env("BENCH_CONC_SLOW"))
    slow_ms = float(env("BENCH_SLOW_MS"))
    rounds = int(env("BENCH_ROUNDS"))
    wrk_secs = env("BENCH_WRK_SECS")
    bare_threads = [int(t) for t in env("BENCH_BARE_THREADS").split()]
    busy = int(env("BENCH_BUSY", "0"))

    out = []
    p = out.append
    p("# requests_engine benchmark")
    p("")
    cmd = "`bash bench/run.sh`" + (" (BENCH_QUICK=1)" if env("BENCH_QUICK") == "1" else "")
    p("%s; requests_engine.hpp sha256 %s… (git: %s); best of %d round%s per figure."
      % (cmd, env("BENCH_HEADER_SHA"), env("BENCH_GIT"), rounds, "" if rounds == 1 else "s"))
    p("")
    p("- Machine: %s; client and server share its CPUs." % env("BENCH_MACHINE"))
    p("- Server: %s." % env("BENCH_SERVER"))
    p("- Clients: %s." % env("BENCH_CLIENTS"))
    if busy > 10:
        p("- **Warning: other processes kept the machine %d%% busy just before the run; every figure "
          "below is lower and noisier than on an idle machine.**" % busy)
    p("")

    rows = [
        ("A", "bare_fast_%d" % t, "bare cpp-httplib loop, %d threads" % t, "/fast", n_fast, t)
        for t in bare_threads
    ] + [
        ("A, B", "engine_fast", "**requests_engine**", "/fast", n_fast, conc_fast),
        ("B", "python_fast", "Python: aiohttp, Semaphore(%d)" % conc_fast, "/fast", n_fast, conc_fast),
        ("A", "wrk_fast", "wrk -t2 (ceiling for any client)", "/fast", "%s s" % wrk_secs, conc_fast),
        ("C", "engine_slow", "**requests_engine**", "/slow (%g ms)" % slow_ms, n_slow, conc_slow),
        ("C", "bare_slow", "bare cpp-httplib loop, %d threads" % conc_slow, "/slow (%g ms)" % slow_ms,
         n_slow, conc_slow),
    ]
    p("| scenario | client | endpoint | requests | concurrency | req/s | every round, req/s | wall s "
      "| client CPU µs/request | peak RSS MB | TCP connections | failed | other load |")
    p("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total_failed = 0
    unserved = []
    for scenario, key, label, endpoint, n, conc in rows:
        all_runs = runs.get(key, [])
        failed = sum(r["fail"] for r in all_runs)
        total_failed += failed
        b = best(runs, key)
        every = ", ".join("%.0f" % r["rps"] for r in all_runs) or "not run"
        if b is None:
            p("| %s | %s | %s | %s | %s | **failed** | %s | | | | | %d | |"
              % (scenario, label, endpoint, n, conc, every, failed))
            continue
        is_wrk = key.startswith("wrk")
        conns = b["conns"]
        conns_txt = str(conns) if conns <= conc + 1 else "**%d** (keep-alive broken?)" % conns
        if not is_wrk and b["served"] != b["n"]:
            unserved.append("%s: nginx served %d requests for %d" % (label, b["served"], b["n"]))
        others = b["others"]
        p("| %s | %s | %s | %s | %s | **%.0f** | %s | %s | %s | %s | %s | %d | %s |" % (
            scenario, label, endpoint, n, conc, b["rps"], every,
            "%.2f" % b["secs"],
            "n/a" if is_wrk else "%.0f" % b["cpu_us"],
            "n/a" if is_wrk else "%.1f" % b["rss_mb"],
            conns_txt, failed, ("**%d%%**" if others > 10 else "%d%%") % others))
    p("")
    for u in unserved:
        p("**%s: not every request reached the server (a cache? deduplication?); the row measures "
          "something else.**" % u)
        p("")
    p("*other load*: the share of the machine's CPU time taken by processes other than the client "
      "and nginx during that (best) round; above 10%, the figure is depressed by them.")
    p("")

    def rps(key):
        b = best(runs, key)
        return b["rps"] if b else None

    bare = [(t, rps("bare_fast_%d" % t)) for t in bare_threads]
    bare = [(t, r) for t, r in bare if r]
    best_bare_t, best_bare = max(bare, key=lambda x: x[1]) if bare else (None, None)

    def ratio(a, b):
        return a / b if a and b else None

    def verdict(v, ok):
        if v is None:
            return "**not measured**"
        return "met" if ok(v) else "**MISSED**"

    ideal = conc_slow * 1000.0 / slow_ms
    waves = -(-n_slow // conc_slow)
    bound = (n_slow / (waves * slow_ms / 1000.0)) / ideal
    e_fast, e_slow = rps("engine_fast"), rps("engine_slow")
    r_a = ratio(e_fast, best_bare)
    r_a64 = ratio(e_fast, rps("bare_fast_%d" % conc_fast))
    r_aw = ratio(e_fast, rps("wrk_fast"))
    r_bw = ratio(best_bare, rps("wrk_fast"))
    r_b = ratio(e_fast, rps("python_fast"))
    r_c = ratio(e_slow, ideal)
    r_cb = ratio(rps("bare_slow"), ideal)
    b_slow = best(runs, "engine_slow")
    rss = b_slow["rss_mb"] if b_slow else None
    rss_max = max((r["rss_mb"] for r in runs.get("engine_slow", [])), default=None)

    p("| ratio | value | target | |")
    p("| --- | ---: | ---: | --- |")
    p("| **A.** engine ÷ best bare loop (%s threads, %s req/s) | **%s** | ≥ 0.8 | %s |"
      % (best_bare_t, fmt(best_bare, ".0f"), fmt(r_a, ".2f"), verdict(r_a, lambda v: v >= 0.8)))
    if conc_fast in bare_threads:
        p("| A. engine ÷ bare loop at the same concurrency (%d threads) | %s | | |" % (conc_fast, fmt(r_a64, ".2f")))
    p("| A. engine ÷ wrk | %s | | |" % fmt(r_aw, ".2f"))
    p("| A. best bare loop ÷ wrk | %s | | |" % fmt(r_bw, ".2f"))
    p("| **B.** engine ÷ Python (aiohttp) | **%s** | ≥ 3 | %s |" % (fmt(r_b, ".2f"), verdict(r_b, lambda v: v >= 3)))
    p("| **C.** engine ÷ %d / %g s = %.0f req/s | **%s** | ≥ 0.95 | %s |"
      % (conc_slow, slow_ms / 1000.0, ideal, fmt(r_c, ".3f"), verdict(r_c, lambda v: v >= 0.95)))
    p("| C. bare loop (%d threads) ÷ %.0f req/s | %s | | |" % (conc_slow, ideal, fmt(r_cb, ".3f")))
    p("| C. best possible for %d requests in waves of %d (%d waves × %g ms) | %.3f | | |"
      % (n_slow, conc_slow, waves, slow_ms, bound))
    p("| **C.** engine peak RSS, MB (highest of the rounds) | **%s** | ≤ 150 | %s |"
      % (fmt(rss_max, ".1f"), verdict(rss_max, lambda v: v <= 150)))
    p("")

    tl = [(k, (runs.get(k) or [None])[0]) for k in ("timeline_fast", "timeline_slow")]
    tl = [(k, r) for k, r in tl if r and "first_send_ms" in r]
    if tl:
        p("Where the engine's wall time goes (`bench_engine timeline`: the default transport wrapped "
          "to note when the first request leaves and the last answer arrives; one run):")
        p("")
        for k, r in tl:
            total = float(r["secs"]) * 1000.0
            first = float(r["first_send_ms"])
            p("- %s, %d requests at %d: %.0f ms in all; the first request left after **%.0f ms** "
              "(%.1f%%: the batch is turned into requests before any is sent); the last answer came "
              "at %.0f ms; %.0f ms from it to run() returning."
              % ("/fast" if k.endswith("fast") else "/slow", r["n"], r["conc"], total, first,
                 100.0 * first / total if total else 0, float(r["last_answer_ms"]),
                 float(r["after_last_ms"])))
        p("")
    if total_failed:
        p("**%d request(s) failed: the figures above are not valid.**" % total_failed)
        p("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
