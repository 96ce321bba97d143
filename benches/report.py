#!/usr/bin/env python3
"""Collects the benchmark figures and writes BENCHMARKS.md (scripts/bench.sh).

  python3 benches/report.py native-round   after each `cargo bench --bench relay`:
                                           appends criterion's medians to
                                           target/bench/native.json
  python3 benches/report.py write          BENCHMARKS.md from native.json,
                                           load.json (benches/load.py) and the
                                           relay's dry-run log
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
NATIVE = OUT / "native.json"
SIZES = ["1KB", "3KB", "64KB"]
IMPLS = ["relay", "svix_peer", "hmac_floor"]


def native_round():
    rounds = json.loads(NATIVE.read_text()) if NATIVE.exists() else []
    figures = {}
    for size in SIZES:
        for impl in IMPLS:
            path = ROOT / "target" / "criterion" / f"deliver_{size}" / impl / "new" / "estimates.json"
            figures[f"{size}/{impl}"] = json.loads(path.read_text())["median"]["point_estimate"] / 1000.0
    rounds.append(figures)
    NATIVE.parent.mkdir(parents=True, exist_ok=True)
    NATIVE.write_text(json.dumps(rounds, indent=1))
    print(f"report: native round {len(rounds)} recorded", file=sys.stderr)


def med(values):
    return statistics.median(values)


def spread(values, fmt):
    """'median (min–max)' over rounds."""
    return f"{fmt(med(values))} ({fmt(min(values))}–{fmt(max(values))})"


def us(v):
    return f"{v:.1f} µs" if v < 100 else f"{v:.0f} µs"


def ms(v):
    return f"{v:.3f} ms"


def ratio(v):
    return f"{v:.2f}×"


def met(ok):
    return "**met**" if ok else "**not met**"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "model": model,
        "memory": sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'"),
        "kernel": platform.release(),
        "rustc": sh("rustc --version"),
        "node": sh("node --version"),
        "load": sh("cut -d' ' -f1-3 /proc/loadavg"),
    }


def size_of(log):
    m = re.search(r"Total Upload: ([0-9.]+) ([KM]iB) / gzip: ([0-9.]+) ([KM]iB)", log)
    if not m:
        return None
    total = float(m.group(1)) * (1024 if m.group(2) == "MiB" else 1)
    gzip = float(m.group(3)) * (1024 if m.group(4) == "MiB" else 1)
    return total, gzip


def write():
    native = json.loads(NATIVE.read_text())
    load = json.loads((OUT / "load.json").read_text())
    budget = float(re.search(r"^gzip_kib=([0-9.]+)$", (ROOT / "size-budget.txt").read_text(), re.M).group(1))
    sizes = {name: size_of((OUT / f"dry-run-{name}.log").read_text())
             for name in ("rust", "js", "forward-only") if (OUT / f"dry-run-{name}.log").exists()}
    m = machine()
    lines = []
    add = lines.append

    add("# Benchmarks")
    add("")
    measured = time.gmtime((OUT / "load.json").stat().st_mtime)
    add(f"Written by `npm run bench` (`scripts/bench.sh`) from a run that ended {time.strftime('%Y-%m-%d %H:%M UTC', measured)}; "
        "rerun it to replace every figure below. Figures are medians over rounds with the "
        "lowest and highest round in brackets; ratios are taken within each round (side by side, "
        "same machine state) and then their median is quoted.")
    add("")
    add("## Machine")
    add("")
    add(f"- {m['cores']} cores, `{m['model']}`, {m['memory']} memory, Linux {m['kernel']}")
    add(f"- {m['rustc']}; node {m['node']}; {load['method']['workerd']}; {load['method']['wrk']}")
    add(f"- load average when the report was written: {m['load']} (a shared machine: other work runs "
        "beside the benchmark, so absolute times move between runs; the side-by-side ratios move much less)")
    add("")

    # 1. Native
    n = len(native)
    add("## 1. Native cost per delivery")
    add("")
    add(f"`cargo bench --bench relay` (criterion; {n} runs, each a fresh process; the bench profile is the "
        "release profile the Worker ships with, so `opt-level = \"s\"`; the relay's HMAC here is the `hmac` crate's, "
        "where the Worker uses the runtime's WebCrypto). Each figure is "
        "criterion's median time for one delivery:")
    add("")
    add("- **relay**: `relay::process` (signature, envelope, event, mapping) and `Command::to_json`;")
    add("- **svix peer**: the `svix` crate's `verify_ignoring_timestamp` and "
        "`serde_json::from_slice::<serde_json::Value>` on the same bytes;")
    add("- **HMAC floor**: one HMAC-SHA256 over `{id}.{timestamp}.{body}` (the `hmac`/`sha2` crates).")
    add("")
    add("| body | relay | svix peer | HMAC floor | relay / svix peer | relay / floor |")
    add("|---|---|---|---|---|---|")
    ratios = {}
    for size in SIZES:
        col = {impl: [r[f"{size}/{impl}"] for r in native] for impl in IMPLS}
        rs = [r[f"{size}/relay"] / r[f"{size}/svix_peer"] for r in native]
        rf = [r[f"{size}/relay"] / r[f"{size}/hmac_floor"] for r in native]
        ratios[size] = (med(rs), med(rf))
        add(f"| {size} | {spread(col['relay'], us)} | {spread(col['svix_peer'], us)} | "
            f"{spread(col['hmac_floor'], us)} | {spread(rs, ratio)} | {spread(rf, ratio)} |")
    add("")
    faster = all(ratios[s][0] < 1 for s in SIZES)
    within = ratios["64KB"][1] <= 2
    add(f"- Goal: faster than the svix peer on every size: {met(faster)} "
        f"(relay / svix peer {', '.join(f'{s} {ratios[s][0]:.2f}×' for s in SIZES)}).")
    add(f"- Goal: within 2× of the HMAC floor at 64 KB: {met(within)} (relay / floor {ratios['64KB'][1]:.2f}×).")
    add("")

    # 2. Runtime
    meth = load["method"]
    add("## 2. Inside the runtime, against a JavaScript relay")
    add("")
    add("`benches/load.py`: each bundle is built with `wrangler deploy --dry-run --outdir` and served by plain "
        "`workerd serve` with a generated config (no `wrangler dev` proxy), all forwarding to one stand-in API "
        "(`benches/stand-in-api.mjs`, node, 200 to every POST). The variants:")
    add("")
    add("- **rust**: this relay (Rust/WASM);")
    add("- **js**: `benches/js-relay/`, the same contract (query secret, svix-* or webhook-* signature, "
        "mapping, one forward with a timeout, statuses and codes, one JSON log line) as a plain JavaScript "
        "Worker verifying with `standardwebhooks` (what Clerk's `verifyWebhook` calls);")
    add("- **forward-only**: reads the body and forwards it, no checks: the runtime's own floor.")
    add("")
    add(f"One load generator ({meth['load_generator']}, {meth['connections']} connections) drives them in "
        f"{meth['rounds']} alternating rounds of {meth['duration_s']} s (the order rotates each round; "
        f"{meth['warmup_s']} s of warm-up each first), every request signed and valid. **CPU/request** is the "
        "utime+stime the workerd process spent during the run (`/proc/<pid>/stat`) divided by the requests "
        "answered. Every response was 2xx and every request reached the stand-in API, or the run fails. "
        "Everything shares the 2 cores (workerd, wrk and the stand-in), so requests/s and latency are "
        "upper-bounded by the machine; CPU/request is the figure that carries over to the platform.")
    add("")
    contract = load.get("contract", {})
    if contract:
        add(f"Before the load, both relays answered {len(contract)} contract cases identically (status and "
            "error code), or the run fails: " +
            "; ".join(f"{case} → {status} `{code}`" for case, (status, code) in contract.items()) + ".")
        add("")
    goals = []
    for body, b in load["bodies"].items():
        runs = b["runs"]
        names = [n for n in runs]
        add(f"### {body} delivery ({b['bytes']} bytes)")
        add("")
        add("| relay | CPU / request | requests/s | p50 latency | p99 latency |")
        add("|---|---|---|---|---|")
        for name in names:
            rr = runs[name]
            add(f"| {name} | {spread([r['cpu_ms_per_request'] for r in rr], ms)} | "
                f"{spread([r['rps'] for r in rr], lambda v: f'{v:.0f}')} | "
                f"{spread([r['p50_ms'] for r in rr], lambda v: f'{v:.2f} ms')} | "
                f"{spread([r['p99_ms'] for r in rr], lambda v: f'{v:.1f} ms')} |")
        add("")
        rounds = len(runs["rust"])
        vs_js = [runs["rust"][i]["cpu_ms_per_request"] / runs["js"][i]["cpu_ms_per_request"] for i in range(rounds)]
        over_floor = [runs["rust"][i]["cpu_ms_per_request"] - runs["forward-only"][i]["cpu_ms_per_request"]
                      for i in range(rounds)]
        js_over_floor = [runs["js"][i]["cpu_ms_per_request"] - runs["forward-only"][i]["cpu_ms_per_request"]
                         for i in range(rounds)]
        rps_vs_js = [runs["rust"][i]["rps"] / runs["js"][i]["rps"] for i in range(rounds)]
        add(f"- rust / js CPU per request: {spread(vs_js, ratio)}; requests/s rust / js: {spread(rps_vs_js, ratio)}")
        add(f"- rust over the forward-only floor: {spread(over_floor, ms)} per request "
            f"(js over the floor: {spread(js_over_floor, ms)})")
        add("")
        goals.append((body, med(vs_js), med(over_floor), med(rps_vs_js)))
    add("Goals (issue 13):")
    add("")
    for body, vj, of, rr in goals:
        if body == "3KB":
            add(f"- 3KB: CPU per request at most 0.9× the JavaScript relay's: {met(vj <= 0.9)} ({vj:.2f}×); "
                f"requests/s at least equal: {met(rr >= 1)} ({rr:.2f}×); overhead over the floor at most "
                f"0.15 ms: {met(of <= 0.15)} ({of:.3f} ms)."
                + (" Requests/s here follow the CPU per request: wrk, workerd and the stand-in API share the 2 "
                   "cores, so a relay that costs more CPU per request answers fewer of them (the reason below)."
                   if rr < 1 else ""))
        elif body == "64KB":
            add(f"- 64KB: CPU per request at most 0.8× the JavaScript relay's: {met(vj <= 0.8)} ({vj:.2f}×) "
                f"(overhead over the floor {of:.3f} ms).")
        else:
            add(f"- {body}: rust / js {vj:.2f}×, overhead over the floor {of:.3f} ms.")
    if any(body == "3KB" and (vj > 0.9 or of > 0.15) for body, vj, of, _ in goals):
        add("- Why the 3 KB goals are not met, and the next step: " + why_3kb())
    add("")
    cold_section(add, load)
    profile_section(add)
    crossings_section(add)

    resync_section(add)
    queue_section(add)

    # 3. Size
    add("## 3. Size")
    add("")
    add("`wrangler deploy --dry-run` (wrangler's own figures):")
    add("")
    add("| bundle | Total Upload | gzip |")
    add("|---|---|---|")
    for name, s in sizes.items():
        if s:
            add(f"| {name} | {s[0]:.2f} KiB | {s[1]:.2f} KiB |")
    add("")
    rust_gzip = sizes.get("rust", (0, 0))[1]
    add(f"- Budget: {budget:g} KiB gzip, in `size-budget.txt`; `scripts/check-size.sh` fails `npm test` "
        f"(and so CI) above it. Goal of at most 128 KiB gzip: {met(rust_gzip <= 128)} ({rust_gzip:.2f} KiB).")
    add("")
    add(TUNING)
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines).rstrip() + "\n")
    print("report: wrote BENCHMARKS.md", file=sys.stderr)


RESYNC_TRIED = """### Issue 9's third round (2026-12-08)

Every run here is the 100,000-user benchmark above on this machine with nothing else running (load
average 1–2.7 at the end of each), one after another:

| figure | before | main API parameters | and the sweep's rows read ahead |
|---|---|---|---|
| wall time | 56.0 s | 46.2 s, 51.3 s | 45.1 s, 44.6 s |
| users per second | 1,787 | 2,163, 1,951 | 2,215, 2,242 |
| upsert phase | 42.0 s | 34.4 s, 38.0 s | 34.8 s, 34.3 s |
| deletion sweep | 14.0 s | 11.9 s, 13.3 s | 10.3 s, 10.3 s |
| D1 median per 500-command batch | 192 ms | 163 ms, 176 ms | 162 ms, 164 ms |
| the main API's `workerd` CPU | 33.2 s | 27.0 s, 29.6 s | 27.1 s, 26.8 s |

- **The machine.** The second round's 70.6 s ran beside other work (load average 4.0 at its end); the
  same code alone took 56.0 s ("before", the main API as it was on `8860823`).
- **The main API's parameters** (kept): the statements that only claim, clear, audit and read
  operations (5 of a chunk's 7 that read the commands) take `[op, command, clerk_id, event_type]`
  arrays instead of every command's facts, a quarter of the size: D1 copies each statement's parameters
  across, and SQLite parses an element's whole text for each `->>`. The main API's CPU fell by 11–19%,
  the median batch by 16 to 29 ms.
- **The sweep's next rows page read beside a page's lookups** (kept; `Run::poll_rows_beside`): the
  sweep went from 11.9–13.3 s to 10.3 s. Its 1,000 lookups are now within a few percent of Clerk's
  limit (1000 per 10 s).
- **Then `RECORD_CLAIMS` given only what a claim reads** (kept; names and image URLs no longer in its
  parameter): two runs after it took 45.5 s (2,196 users/s) and 59.4 s (1,682 users/s), one after the
  other, the main API's `workerd` using 31.0 s and 34.9 s of CPU where the runs above used 27 s: the
  machine itself slowed between runs, by more than this change could show. An interleaved A/B
  afterwards (without it, with it, without, with) took 56.3 s, 56.3 s, 64.1 s and 59.5 s: the change
  is neutral, and the machine that ran this build in 44.6 s at 01:55 UTC needed 56–64 s at 02:45.
- **How steady the figure is:** of the seven runs of the code as it now is or nearly (the last two
  columns, the two runs just above, and the day's first `npm run bench`, 51.0 s and 1,961 users/s,
  taken before the `RECORD_CLAIMS` change), six ran at 1,950 users/s or more and four above 2,000. On
  this shared 2-core machine the same build moves by ±15% between runs (its own CPU time moves too,
  not only the waiting). Since then `scripts/bench-resync.sh` makes three runs and the table at the
  top of this section is their median run, with each run's figure beside it.
- **The Clerk stand-in's user ids made KSUIDs, as Clerk's are** (kept; `standins/clerk-api`): its ids
  were random after the first character, where Clerk's are KSUIDs whose first 4 bytes are the creation
  time, so they sort by creation time. A re-sync pages users by creation time, so with Clerk's ids every
  insert keyed by Clerk id (`clerk_users`, `users.clerk_id`, `applied_operations` through the
  operation id, the audit's index) lands near one end of its index; with random ids each lands on a
  random page, and local D1 reads and writes each page (below). Interleaved A/B (KSUID, random, KSUID,
  random): 28.8 s, 46.3 s, 30.0 s, 42.8 s; the median batch 72, 170, 79 and 158 ms; the main API's
  `workerd` CPU 16.6, 27.8, 14.3 and 27.9 s. The figures at the top of this section are with Clerk's
  ids; the runs above them in this round were with random ids.
- **Where the rest goes, measured, not changed:**
  - `wrangler dev`'s inspector: in `perf` during the upsert phase of a 40,000-user run, the relay's `wrangler dev` node
    process is the second busiest (18% of the samples, mostly parsing JSON), and the second `workerd`
    of that `wrangler dev` another 14%. wrangler's inspector proxy sends `Network.enable` to the runtime
    (`InspectorProxyWorker`), so each subrequest becomes DevTools events: `capnp::JsonCodec::encodeString`,
    base64 and copies in the runtime, `JSON.parse` in node. The CLI has no option to turn the inspector
    off (`dev.inspector = false` exists only for programmatic `startWorker`); production has none.
  - Local D1's I/O (with the stand-in's random ids, before the change above): `strace -c` on the main
    API's `workerd` for 10 s of the upsert phase counted
    99,877 `pread64` and 107,143 `pwrite64` of 4 KiB pages (a 500-row batch writes into about ten
    B-trees, tables and indexes, at random keys, and SQLite's page cache is smaller than the
    database), and 29% of its `perf` samples are in the kernel.

### Where a 500-command batch's time goes (2026-12-07)

The main API alone in `wrangler dev` (local D1, a database already holding 17,000 users), 30 batches of 500 new users posted one after another by a client (about 100 ms each end to end, load average about 5), sampled with `perf record -F 999 -g` on its two `workerd` processes (no `--perf-basic-prof`: wasm and JavaScript show as `[JIT]`). CPU per batch:

| where | ms per batch | share |
|---|---|---|
| SQLite executing the batch's statements (`SqlStorage::exec` in D1's Durable Object) | 37 | 48% |
| of it, JSON: `json_each` rendering each command as text, `->>` parsing it again | 12 | 16% |
| D1's wire inside `workerd`: the batch and its parameters to JSON and back (V8 `JSON.stringify`/`parse`, capnp, copies) | about 7 | 9% |
| the kernel (sockets, the database's writes, page faults) | 8 | 11% |
| all `[JIT]` code: the main API's wasm (parse, plan, parameters, results through serde-wasm-bindgen, answer) and the JavaScript glue | 6 | 8% |
| the rest of V8, copies, malloc, `workerd` | about 11 | 14% |
| the second `workerd` (the dev entry that proxies the request) | 7 | 9% |
| total | about 78 | |

The timestamps around the glue's awaits, in the 20,000-user bench: reading the 255 KB body takes 0–2 ms (median 1); the rest of a request (parse, plan, the D1 `batch()` and everything after) is the 300–500 ms measured then on a busy machine. Results conversion is not where the time goes: the only statement returning rows returns 500 small ones.

### Issue 9's second round (2026-12-07)

Measured against the run above it (`57e7e84`, 107.0 s; different load, so compare with care):

| figure | before | after |
|---|---|---|
| wall time | 107.0 s | 70.6 s |
| users per second | 935 | 1,416 |
| upsert phase | 79.5 s | 59.3 s |
| deletion sweep | 27.5 s | 11.3 s |
| D1 median per 500-command batch | 348 ms | 258 ms |
| Clerk requests | 1,202 | 1,202 |

Kept: a sweep page's lookups (5 of 100 ids per rows page of 500) are sent together, as many as the rate window has room for (`Run::poll_lookups_beside`, `Run::handle_lookup_beside`), not one after another: they only say which ids exist, so answers in any order end the page as in order; one that fails is asked again in its turn, a 429 holds the run as any 429, a restart redoes the page's lookups. In a 20,000-user run on a busy machine the sweep went from 12.6 s to 10.1 s; in the full run from 27.5 s to 11.3 s, near its 10 s floor. The upsert phase's gain (79.5 s → 59.3 s) came with no change to the main API or the upsert path: it is the machine (load average 6.4 at the end of the run before, 4.0 now), which says how much of a batch's time is waiting for a core.

Tried and dropped: `jsonb_each` for the commands' parameter (binary values, no text round trip per `->>`): D1's SQLite has no `jsonb_each`. Not changed, by the measurement: the body read (about 1 ms), the results conversion (a share of the 6 ms of all wasm and JavaScript).

Issue 9's first speed-up (2026-12-07), measured back to back with the run as it was before (`59a7de9`),
one run each, on a busy shared machine (load average 6.4 at the end of the run with the changes,
11.8 at the end of the one without; its "after" is the run the second round started from):

| figure | before | after |
|---|---|---|
| wall time | 166.6 s | 107.0 s |
| users per second | 600 | 935 |
| upsert phase (count, pages, batches) | 90.0 s | 79.5 s |
| of it outside the batches (phase − 200 × median batch) | 28.2 s | 9.9 s |
| deletion sweep | 76.6 s | 27.5 s |
| D1 median per 500-command batch | 309 ms | 348 ms |
| Clerk requests | 1,202 | 1,202 |

The changes, all kept: the next Clerk page is read while a batch is applied (`Run::poll_prefetch`; the
Durable Object performs both at once and hands the page back as it comes); rows pages of
min(page size, 5 × lookup size) rows, 500 by default, not 100 (a page is still at most 5 lookups long, so
a restart under heavy 429s redoes little); the sweep reads only the ids of a lookup's answer (natively
597 → 97 µs per 100-user answer); the Durable Object stores only what changed (most answers change nothing
persisted; the history only at a run's end). They were measured together, not one by one: the upsert
phase's time outside the batches is what reading ahead and fewer writes saved, the sweep's what fewer
rows reads, lighter parsing and fewer writes saved. The previous report's run of the code before, on a
quieter machine (load average 3.4), took 119.4 s (838 users/s, 289 ms per batch). Not pursued: the main
API's one JSON parameter copied into each of a chunk's statements (7 copies of about 200 KB per batch: a
few milliseconds by estimate against about 300 ms; not measured)."""


def why_3kb():
    """The measured reason the 3 KB goals are not met, from the profiles."""
    text = ("the crossings were not the cost (*JS↔wasm crossings per delivery*), and the HMAC is the runtime's "
            "WebCrypto since 2026-12-07 (*What was tried*). ")
    path = OUT / "profile.json"
    prof = json.loads(path.read_text()).get("3KB", {}) if path.exists() else {}
    rust, js = prof.get("rust"), prof.get("js")
    if rust and js and "rounds" in rust and "rounds" in js:
        def totals(relay, without=()):
            return [sum(v for k, v in r["ms_per_request"].items() if k not in without) for r in relay["rounds"]]
        n = min(len(rust["rounds"]), len(js["rounds"]))
        wasm = [r["ms_per_request"].get("wasm", 0.0) for r in rust["rounds"]]
        bare = totals(rust, without=("wasm",))
        text += (f"In {n} profiles of each relay (*Where the CPU goes*), the Rust relay's own wasm is "
                 f"{med(wasm):.3f} ms per request, and the Rust relay without it costs {med(bare):.3f} ms "
                 f"({min(bare):.3f}–{max(bare):.3f}) against the JavaScript relay's whole "
                 f"{med(totals(js)):.3f} ms ({min(totals(js)):.3f}–{max(totals(js)):.3f}). ")
        if med(bare) > 0.9 * med(totals(js)):
            text += (f"So a Rust relay whose wasm cost nothing would still be at {med(bare) / med(totals(js)):.2f}×: "
                     "0.9× cannot be reached by trimming the glue or the crossings, nor by the wasm alone; what "
                     "the runtime spends around a wasm module (compare the workerd, V8, kernel and malloc rows) "
                     "is the JavaScript relay's whole budget. ")
        else:
            text += "The wasm's own share is what stands between the relay and the goal. "
        text += ("What the wasm's share can still give was measured on 2026-12-08 (*What was tried*): the relay "
                 "at `opt-level = 2` or `3` runs at 1.06× and 1.10× the JavaScript relay (the unchanged build "
                 "1.27× in the same rounds) but weighs 135–136 KiB, over the 128 KiB budget. Next step: a "
                 "decision on the budget (about 136 KiB for `opt-level = 2`), or fewer allocations and a "
                 "lighter skip of the fields the command does not need (the wasm's time is serde_json over the "
                 "body, dlmalloc and small formatting: *What was tried*).")
    else:
        text += ("What is left is the relay's wasm reading the JSON and the runtime's work around it; "
                 "profile each relay several times (`benches/profile.py --repeat 3`) to tell them apart.")
    return text


def resync_section(add):
    """A full re-sync of RESYNC_BENCH_USERS users (scripts/bench-resync.sh)."""
    paths = sorted(OUT.glob("resync-*.json")) or [OUT / "resync.json"]
    runs = [json.loads(p.read_text()) for p in paths if p.exists()]
    if not runs:
        return
    # The median run (by users per second) fills the table; the spread is over all.
    runs.sort(key=lambda x: x["users_per_s"])
    r = runs[len(runs) // 2]
    users = r["users"]
    ended = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(p.stat().st_mtime for p in paths if p.exists())))
    add("## Re-sync: full runs into D1")
    add("")
    add(f"`scripts/bench-resync.sh` (a step of `npm run bench`): the stand-in Clerk API with {users:,} users at "
        "Clerk's production rate limit (1000 requests per 10 s), a full run (`POST /admin/resync`) through "
        "the relay and the re-sync Worker (one `wrangler dev`) into the reference main API on a local D1 "
        "(another `wrangler dev`), page size 500, all on loopback; "
        + (f"{len(runs)} runs one after another on fresh servers (the last ended {ended}); the table is the "
           "median run, with every run's figure in brackets where it moves"
           if len(runs) > 1 else "one run, so no spread")
        + (f"; load average at the end of the median run {r['loadavg_at_end']} (a shared machine)."
           if r.get("loadavg_at_end") else "."))
    add("")
    every = lambda key, fmt: (" (" + ", ".join(fmt(x[key]) for x in runs) + ")") if len(runs) > 1 else ""
    add("| figure | value |")
    add("|---|---|")
    add(f"| wall time, start to `completed` | {r['wall_s']:.1f} s{every('wall_s', lambda v: f'{v:.1f} s')} |")
    add(f"| users per second, end to end | {r['users_per_s']:,.0f}{every('users_per_s', lambda v: f'{v:,.0f}')} |")
    add(f"| Clerk requests | {r['clerk_requests']:,} (minimum {r['clerk_requests_minimum']:,}: the count, "
        f"{users // 500 + 1} pages, {-(-users // 100):,} sweep lookups of 100 ids) |")
    add(f"| 429s from Clerk | {r['rate_limited']} |")
    add(f"| D1 time per 500-command batch (the main API's own log) | median {r['d1_batch_ms_median']:,} ms, "
        f"max {r['d1_batch_ms_max']:,} ms, {r['batches_of_500']} batches |")
    add(f"| the floor Clerk's production rate limit alone allows | {r['floor_s_at_1000_per_10s']:.1f} s |")
    add("")
    d1_s = r["d1_batch_ms_median"] * r["batches_of_500"] / 1000
    goal = r["users_per_s"] >= 2000
    split = ""
    if r.get("upsert_phase_s") is not None:
        split = (f" The upsert phase (count, pages, batches) took {r['upsert_phase_s']:.0f} s and the deletion "
                 f"sweep {r['sweep_phase_s']:.0f} s.")
    over = r["wall_s"] / (users / 2000) - 1
    add(f"- Goal of at least 2,000 users/s end to end: {met(goal)} ({r['users_per_s']:,.0f}"
        + (" in the median run" if len(runs) > 1 else "") + "; "
        f"{users / 2000:.0f} s would be the goal, {r['wall_s']:.1f} s is {abs(over):.0%} "
        + ("over" if over > 0 else "under") + " it)." + split +
        f" The {r['batches_of_500']} batches take about {d1_s:.0f} s: at this rate the batches alone "
        + ("exceed the whole goal." if d1_s > users / 2000 else "fit in the goal.")
        + f" The sweep's floor at Clerk's limit is {-(-users // 100) / 100:.0f} s ({-(-users // 100):,} lookups at 100 per s).")
    cpu = r.get("cpu_s")
    if cpu:
        names = {"clerk_standin": "the Clerk stand-in (node)",
                 "relay_and_resync": "the relay and the re-sync Worker (`wrangler dev`)",
                 "main_api": "the main API on D1 (`wrangler dev`)"}
        total = sum(v for parts in cpu.values() for v in parts.values())
        add(f"- Where the run's CPU went (each component's processes, from `/proc`, during the run; "
            f"{total:.0f} s of CPU in {r['wall_s']:.0f} s on 2 cores, {total / (2 * r['wall_s']):.0%} of them):")
        add("")
        add("| component | process | CPU |")
        add("|---|---|---|")
        for key, parts in cpu.items():
            for proc, v in sorted(parts.items(), key=lambda kv: -kv[1]):
                if v >= 0.1:
                    add(f"| {names.get(key, key)} | `{proc}` | {v:.1f} s |")
        add("")
        add("  `workerd` runs the Workers and, for the main API, the local D1 (SQLite). `node` is `wrangler dev` "
            "itself: its inspector proxy turns on the DevTools `Network` domain in the runtime, so every "
            "subrequest of the re-sync Worker (each 500-user Clerk page of about 760 KB, each 250 KB batch) is "
            "also encoded as DevTools events and parsed by wrangler. Production has no inspector, and "
            "`wrangler dev` has no switch to turn it off (measured 2026-12-08, below).")
    add("- Next step: measure on real D1 and the platform, where a batch runs beside nothing of the run's own "
        "and without `wrangler dev`'s inspector. Locally the batches take "
        f"{d1_s:.0f} s of the upsert phase's {r.get('upsert_phase_s') or 0:.0f} s, and the sweep "
        f"({r.get('sweep_phase_s') or 0:.0f} s) runs at Clerk's rate limit: what would shorten a run further "
        "is the sweep's lookups sent during the upsert phase, whose Clerk requests leave most of the "
        "limit unused (not tried).")
    add(f"- 1,000,000 users on the platform, estimated: Clerk's production limit alone allows a full run "
        f"in about {(1 + 2_001 + 10_000) / 100:.0f} s "
        "(12,002 requests at 100 per s); at the batch rate measured here "
        f"({r['d1_batch_ms_median']:,} ms per 500) the batches take about "
        f"{d1_s * 1_000_000 / users / 60:.1f} min, the sweep about 2 min (its floor). A run is resumable from "
        "its last page, so its length is bounded by neither a Worker's invocation limits nor a restart.")
    add("")
    add(RESYNC_TRIED)
    add("")


def queue_section(add):
    """Direct mode against queue mode on one burst (bench::bench_burst_direct_vs_queue)."""
    path = OUT / "queue.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    d, q = r["direct"], r["queue"]
    n = d["deliveries"]
    add("## Delivery modes: an import storm, direct against queue")
    add("")
    add(f"`bench::bench_burst_direct_vs_queue` (a step of `npm run bench`): {n:,} signed `user.created` "
        f"deliveries from {d['senders']} concurrent senders (a Svix-like retry after 200 ms on a non-2xx) into the "
        "relay under `wrangler dev` and the reference main API on a local D1 (another `wrangler dev`), first in "
        "direct mode, then in queue mode (local queues: batches of up to 100 or 1 s), each on fresh servers. "
        "API calls are counted from the main API's own log lines; \"converged\" is when "
        "`GET /internal/sync/status` counts every user. One run each (ended "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(path.stat().st_mtime))}), so no spread; load average at the end "
        f"{d.get('loadavg_at_end')} / {q.get('loadavg_at_end')} (a shared machine).")
    add("")
    add("| | direct | queue |")
    add("|---|---|---|")
    add(f"| deliveries answered 2xx per second | {d['accepted_per_s']:.0f} | {q['accepted_per_s']:.0f} |")
    add(f"| time until every delivery had its 2xx | {d['accepted_s']:.1f} s | {q['accepted_s']:.1f} s |")
    add(f"| Svix-style retries (non-2xx answers) | {d['svix_retries']} | {q['svix_retries']} |")
    add(f"| main-API calls | {d['single_calls'] + d['batch_calls']:,} | {q['single_calls'] + q['batch_calls']:,} |")
    add(f"| time until the table holds them all | {d['converged_s']:.1f} s | {q['converged_s']:.1f} s |")
    add("")
    calls_d = d["single_calls"] + d["batch_calls"]
    calls_q = max(q["single_calls"] + q["batch_calls"], 1)
    fewer = calls_d / calls_q
    add(f"- Goal of at least 20× fewer API calls in queue mode: {met(fewer >= 20)} ({fewer:.0f}× fewer).")
    add(f"- Goal of a table that converges no slower in queue mode: {met(q['converged_s'] <= d['converged_s'])} "
        f"({q['converged_s']:.1f} s against {d['converged_s']:.1f} s). Locally one batch is in flight at a time "
        "(wrangler's local queues); Cloudflare's consumers may run several at once (`max_concurrency`): "
        "production is not measured here.")
    add("")


def cold_section(add, load):
    cold = load.get("cold")
    if not cold:
        return
    runs = cold["runs"]
    add("## Cold start")
    add("")
    n = len(runs["rust"])
    add(f"`benches/load.py --cold {n}`: a fresh `workerd serve` (the same generated config as the load runs) "
        "to the first answered 3 KB delivery, for each relay, alternating, "
        f"{n} times each. Wall time from spawning the process, polling the port every millisecond, then one signed "
        "delivery (answered 200, forwarded); CPU is the process's threads' time (`/proc/<pid>/task/*/schedstat`).")
    add("")
    add("| relay | listening | first answer | CPU at listening | CPU at first answer |")
    add("|---|---|---|---|---|")
    f = lambda v: f"{v:.0f} ms"
    for name, rr in runs.items():
        add(f"| {name} | {spread([r['listen_ms'] for r in rr], f)} | {spread([r['first_answer_ms'] for r in rr], f)} | "
            f"{spread([r['listen_cpu_ms'] for r in rr], f)} | {spread([r['first_answer_cpu_ms'] for r in rr], f)} |")
    add("")
    wall = [a["first_answer_ms"] / b["first_answer_ms"] for a, b in zip(runs["rust"], runs["js"])]
    cpu = [a["first_answer_cpu_ms"] / b["first_answer_cpu_ms"] for a, b in zip(runs["rust"], runs["js"])]
    add(f"- rust / js, fresh workerd to the first answered delivery: {spread(wall, ratio)} wall, {spread(cpu, ratio)} CPU.")
    share = cold.get("rust_wasm")
    if share and share.get("share") is not None:
        add(f"- Wasm compile and instantiate share of the Rust relay's cold start: {share['share']:.0%} of the "
            f"process's CPU to its first answer ({share['wasm_compile_samples']} of {share['samples']} `perf` samples at "
            "20 kHz in V8's `wasm::` decoder, compilers, lazy compilation and instance builder; one profiled start).")
    add(f"- Goal: at most 1.2× the JavaScript relay's: {met(med(wall) <= 1.2)} ({med(wall):.2f}× wall).")
    if med(wall) > 1.2:
        lo, hi = min(wall), max(wall)
        add(f"- Why not, and the next step: the ratio's own spread here ({lo:.2f}×–{hi:.2f}×) is wider than the "
            "goal's margin, and it moved between 1.00× and 1.32× across earlier runs of unchanged builds (*What "
            "was tried*); what the Rust relay adds for certain is compiling and instantiating its wasm (the share "
            "above), which only a smaller module reduces: the same size question as the 3 KB goals.")
    add("")


def profile_section(add):
    path = OUT / "profile.json"
    if not path.exists():
        return
    prof = json.loads(path.read_text())

    def rounds(relay):
        # One profile per relay (older files) or several ("rounds").
        return relay["rounds"] if "rounds" in relay else [relay]

    def figures(relay, cat):
        return [r["ms_per_request"].get(cat, 0.0) for r in rounds(relay)]

    def cell(values):
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return spread(values, lambda v: f"{v:.3f}")

    n = max(len(rounds(r)) for relays in prof.values() for r in relays.values())
    add("## Where the CPU goes")
    add("")
    add("`benches/profile.py`: each relay under the same wrk load in workerd with V8's `--perf-basic-prof`, "
        "profiled with `perf record` (1999 Hz); samples grouped by what ran and turned into milliseconds per "
        "answered request. `perf` costs CPU too, so totals run above the load figures: compare the rows. "
        + (f"Each relay was profiled {n} times, the relays alternating: medians, lowest and highest in brackets."
           if n > 1 else "One profile of each, so no spread."))
    add("")
    for body, relays in prof.items():
        names = list(relays)
        cats = sorted({c for r in relays.values() for x in rounds(r) for c in x["ms_per_request"]},
                      key=lambda c: -max(med(figures(r, c)) for r in relays.values()))
        add(f"| {body}, ms per request | " + " | ".join(names) + " |")
        add("|---|" + "---|" * len(names))
        for c in cats:
            add(f"| {c} | " + " | ".join(cell(figures(relays[n_], c)) for n_ in names) + " |")
        add("| total | " + " | ".join(
            cell([sum(x["ms_per_request"].values()) for x in rounds(relays[n_])]) for n_ in names) + " |")
        add("")


# What each import of wasm-bindgen's glue is, for the crossings table.
CROSSING_KINDS = [
    (r"^js->wasm fetch$", "the `fetch` entry point"),
    (r"^js->wasm __wbindgen_export\d*$|^js->wasm __wbindgen_malloc|^js->wasm __wbindgen_realloc", "allocating wasm memory for a value passed in (a string's bytes)"),
    (r"^js->wasm __wbindgen_add_to_stack_pointer", "wasm-bindgen's stack for returned strings and `Result`s"),
    (r"^js->wasm __wasm_bindgen_func_elem|^wasm->js __wbg__wbg_cb_unref|^wasm->js __wbindgen_generic_000000000000000[12]|^wasm->js __wbg_then|^wasm->js __wbg_queueMicrotask|^wasm->js __wbg_new_typed$|^wasm->js __wbg_call", "futures: a promise's callbacks, their closures, the waker's microtasks"),
    (r"__wbindgen_generic|__wbg___wbindgen_string_get|__wbg___wbindgen_is|__wbg_length|__wbg_prototypesetcall|__wbg_new_from_slice|__wbg_new_with_length", "values across: strings and byte arrays copied, type checks"),
    (r"__wbg_now|__wbg_getTime|__wbg_new_0", "the clock"),
    (r"__wbg_log", "the log line"),
    (r".*", "the request, headers, body, forward, timeout and answer (runtime API calls)"),
]


def crossings_section(add):
    path = OUT / "crossings.json"
    if not path.exists():
        return
    data = json.loads(path.read_text())
    add("## JS↔wasm crossings per delivery")
    add("")
    add("`benches/crossings.py`: the bundle's wasm-bindgen glue is patched so that every function the wasm "
        "imports (wasm→JS) and exports (JS→wasm) counts its calls, and the last of four signed 3 KB "
        "deliveries in workerd is read back. **before** is the relay as issue 13 found it (workers-rs "
        "wrappers: `worker::Request`, `Headers`, `Env::secret`/`var`, `RequestInit`, `Fetch`, `Delay`, "
        "`Response`); **now** is the bundle this report measured.")
    add("")
    now = data.get("now", {})
    before = data.get("before") or json.loads((ROOT / "benches" / "crossings-before.json").read_text())["before"]
    groups = {}
    for which, counts in (("before", before), ("now", now)):
        for name, n in counts.items():
            kind = next(k for pat, k in CROSSING_KINDS if re.search(pat, name))
            groups.setdefault(kind, {"before": 0, "now": 0})[which] += n
    add("| crossings of this kind | before | now |")
    add("|---|---|---|")
    for _, kind in CROSSING_KINDS:
        if kind in groups:
            add(f"| {kind} | {groups[kind]['before']} | {groups[kind]['now']} |")
    add(f"| **total** | **{sum(before.values())}** | **{sum(now.values())}** |")
    add("")
    add("Now, one by one (import names without wasm-bindgen's hash): " +
        ", ".join(f"`{k.split(' ', 1)[1]}` {v}" for k, v in sorted(now.items(), key=lambda x: (-x[1], x[0]))) + ".")
    add("")
    add(CROSSINGS_COST)
    add("")


CROSSINGS_COST = """What they cost: cutting 201 crossings to 71 moved the CPU per 3 KB delivery by less than the
noise of 7 alternating rounds (1.26× → 1.21× the JavaScript relay, medians of per-round ratios; see *What
was tried*); the WebCrypto HMAC then added 20 back (`crypto.subtle.sign` and the promise it returns:
its callbacks, the waker's microtasks, the 32 bytes copied back) for the same or less CPU. All of
wasm-bindgen's JavaScript glue and the JS↔wasm stubs together are the profile's "JIT JavaScript and
JS<->wasm stubs" row, a few hundredths of a millisecond per request: a crossing costs well under a
microsecond. In the profile above the Rust relay's own wasm (two JSON passes over the body,
allocation; no HMAC since 2026-12-07) is about 0.09 ms, and its runtime rows (workerd, V8, kernel)
run above the JavaScript relay's; in earlier profiles those rows moved as much between two profiles of
one relay as between the two relays (one profile of each here, so no spread)."""


# What was tried, measured while tuning (not rerun by the command: each line
# needed its own build). Kept here so that BENCHMARKS.md always carries it.
TUNING = """## What was tried

Measured while tuning, one change at a time, on this machine (gzip as `wrangler deploy --dry-run`
reports it; CPU per request as above, median of 3 alternating rounds against the unchanged build):

| change | effect | kept |
|---|---|---|
| `strip = "symbols"` (drops the wasm name section; worker-build keeps names with `--debuginfo`) | 230.6 → 205.8 KiB gzip; end-to-end suite passes | yes |
| drop the `url` crate: a hand check of `API_URL` in `config.rs`, the query sliced from the runtime's serialized URL (`relay::query_of`) | 205.8 → 130.7 KiB gzip (its IDNA/Unicode tables were most of the data section) | yes |
| `time` without `formatting`/`macros`: `format!` over its getters | −6.6 KiB gzip | yes |
| `opt-level = "z"` instead of `"s"` (after the changes above) | −1.8 KiB gzip; 64 KB: 0.865 → 0.995 ms CPU/request (3 KB within noise) | no |
| wasm-opt `-Oz` instead of worker-build's `-O` | −0.05 KiB gzip | no (no gain) |
| body read with one `bytes()` when its length is declared (stream kept for chunked bodies) | 3 KB: 0.537 → 0.455 ms CPU/request | yes |
| `sha2` at `opt-level = 3` | 64 KB: 1.333 → 0.932 ms CPU/request; +0.4 KiB gzip | yes (until the HMAC moved to WebCrypto, below) |
| `serde_json` at `opt-level = 3` | 64 KB: −0.045 ms (within noise at 3 KB); +3.9 KiB gzip | no |
| `AbortSignal.timeout()` instead of racing a `Delay` | no measurable change at 3 KB | no (then; yes since issue 13, below: less code, fewer crossings) |
| the validated configuration cached once per isolate (`OnceLock`) instead of read from `env` on every request | 3 KB: 0.492 → 0.487 ms CPU/request (3 alternating rounds; within noise) | no (no gain) |
| user events parsed in one pass (envelope and `data` together, the two-pass path kept as the fallback) | native 64 KB `map_event` 98 → 53 µs; workerd 64 KB 0.910 → 0.804 ms, 3 KB within noise; +1.45 KiB gzip | no: a second parse path that must agree with the first forever, for a gain only on rare large deliveries that already cost 0.7× the JavaScript relay |

Issue 13, 2026-12-07 (3 KB, `benches/load.py --only js --variant …`: all six builds side by side with the
JavaScript relay in 7 alternating rounds of 3 s, load average 2.4–3.7; figures are the medians of the
per-round ratios to the JavaScript relay, whose spread was about ±0.1 for every build; crossings by
`benches/crossings.py`):

| change (cumulative, in this order) | crossings | rust / js | gzip | kept |
|---|---|---|---|---|
| the relay as issue 13 found it | 201 | 1.26× | 125.21 KiB | |
| the forward built with `web_sys` (no `worker::RequestInit`, whose conversion carried the `cf` image-resizing serializers, nor `worker::Fetch`/`Response`); re-sync added | 180 | 1.22× | 122.36 KiB | yes (size) |
| the rest of the glue on `web_sys`: the handler takes and returns the runtime's `Request`/`Response` (no `worker::Request` conversion reading `cf`, method, URL and headers), every header in one `Object.fromEntries` as JSON, the eight variables in one `JSON.stringify(env, names)`, the answer's status and headers as one `JSON.parse`, the body through `arrayBuffer()`, `Date.now()` | 99 | 1.28× | 121.00 KiB | yes (size, crossings; CPU within noise) |
| the variable names as one array made once per isolate; the forward's method, redirect mode and headers as one `JSON.parse` | 74 | 1.22× | 121.58 KiB | yes (crossings; CPU within noise) |
| `AbortSignal.timeout()` instead of racing a `worker::Delay` (no `setTimeout`/`clearTimeout`, closure or `select`) | 68 | 1.23× | 120.57 KiB | yes (less code; CPU within noise) |
| the main API's answer body cancelled once its status is read (as the JavaScript relay and the floor do) | 71 | 1.21× | 120.72 KiB | yes (the connection is freed at once; CPU within noise) |
| queue mode (issue 12): the producer send, the consumer for both queues (`src/queue.rs`) and its hand-written `queue` export; direct mode's path unchanged (not re-measured for CPU) | — | — | 127.83 KiB | yes (137.27 KiB through `#[event(queue)]` and derived `Deserialize`s; brought under the budget by the export on `worker_sys` types, answers read through `serde_json::Value`, one non-generic `Config` reader, hand-written log line, plain loops) |

Each step is within the rounds' noise, and so is the sum (1.26× → 1.21×): the crossings were not where
the CPU went (see *Where the CPU goes*).

Issue 13, 2026-12-07 (`benches/load.py --only js --variant …`: the three builds side by side with the
JavaScript relay in 5 alternating rounds of 4 s, another agent's build running on the machine;
medians of the per-round ratios to the JavaScript relay, spread in brackets):

| change | 3 KB rust / js | 64 KB rust / js | gzip | kept |
|---|---|---|---|---|
| the relay before (queue mode in) | 1.17× (1.11–1.21) | 0.72× (0.64–0.79) | 127.85 KiB | |
| the HMAC by the runtime's WebCrypto (`crypto.subtle.sign`; the core's `Verifier::challenge` makes every other check and `Challenge::settle` compares in constant time; each secret's `CryptoKey` imported once per isolate), `sha2` back at `opt-level = "s"` (it now only hashes the query secret), and the `fetch` handler exported by hand as `queue` is (no `#[event(fetch)]` wrapper boxing and formatting `worker::Error`, nor its `worker::Response` 500) | 1.14× (1.09–1.26) | 0.57× (0.56–0.62) | 121.90 KiB | yes: 64 KB about 0.15 ms less per request, 3 KB within noise, 6 KiB freed (the hand-written export alone freed 6.6 KiB; WebCrypto cost 0.9 KiB with `sha2` at 3, 0.5 without) |
| the above with `serde_json` at `opt-level = 3` | 1.18× (1.06–1.30) | 0.56× (0.55–0.61) | 128.65 KiB | no: no gain at 3 KB (the 0.89× measured before did not repeat) and over the budget |

That day's full run had the 3 KB requests/s and the cold start below their goals where the report
before it had them met (1.01× and 1.00×); the 2026-12-08 run above has the cold start met again. Neither moved with the change: requests/s in the side-by-side
rounds above, median of 5, were 1,928 for the build before and 2,038 with the change (the JavaScript relay
2,360); 9 cold starts each, first answer median, were 49 ms against the JavaScript relay's 37 ms (1.32×) for
the build before and 57 ms against 48 ms (1.19×) with it, run one after the other. Both ratios move between
runs of the same builds by more than the goals' margins on this machine.

Measured for the next step, not kept (builds made for the measurement only):

| build | 3 KB | 64 KB | gzip | why not kept |
|---|---|---|---|---|
| one more SHA-256 pass over the body in the glue (what the wasm HMAC costs) | +0.04 ms per request (1.05× the build without; 7 rounds, spread −0.19…+0.19 ms) | +0.63 ms (1.35×; +0.29…+0.77 ms) | +0.02 KiB | a measurement: the HMAC in WebCrypto (BoringSSL) would save about this much |
| `serde_json` at `opt-level = 3` (`[profile.release.package.serde_json]`) | 0.89× the unchanged build (9 rounds, 0.84×–1.11×) | 1.05× (5 rounds, noisy) | 127.63 KiB (+6.9) | Cargo.toml is outside this change's paths, and it leaves 0.4 KiB of the budget |
| the whole crate at `opt-level = 3` | 1.04× the JavaScript relay against 1.24× for the unchanged build (5 rounds) | 0.73× against 0.73× | 134.21 KiB | over the 128 KiB budget |

A profile of the Rust relay in workerd (`benches/profile.py`; by function with a build that keeps the
wasm name section) puts its own wasm at about 0.12–0.15 ms per 3 KB delivery under `perf`: SHA-256's
compression function about a sixth of it, serde_json skipping the body (`ignore_value`,
`skip_to_escape`) about an eighth, the request's inlined state machine, dlmalloc, and a long tail of
formatting and small allocations. The JavaScript relay's JIT'd code is about 0.06 ms (its JSON.parse
runs in V8's C++, counted under V8). The runtime rows (workerd, V8, kernel, malloc) moved as much
between two profiles of one relay as between the two relays (two of each on 2026-12-07; the table
above is one run of each). So the gap at 3 KB is the wasm's own work, not the glue: the next steps are the HMAC
through the runtime's WebCrypto (BoringSSL, native SHA-256: the core would hand the glue the signed
content and compare the MACs it gets back, keeping the constant-time comparison and
`VerifiedDelivery` in the verifier), serde_json at `opt-level = 3` in Cargo.toml's release profile,
and fewer allocations per delivery. (The first two were measured on 2026-12-07, in the table above:
the WebCrypto HMAC is kept; serde_json at `opt-level = 3` did not help at 3 KB and is not.)

Issue 13, 2026-12-08: what the wasm's own share can give, and at what size (3 KB, `benches/load.py
--only js --variant …`, the builds side by side with the JavaScript relay in 5 alternating rounds of 4 s
on an otherwise quiet machine; medians of the per-round ratios, spread in brackets):

| build | 3 KB rust / js | gzip | kept |
|---|---|---|---|
| the relay as it is (`opt-level = "s"`) | 1.27× (0.99–1.34) | 121.90 KiB | yes |
| the whole relay at `opt-level = 2` | 1.06× (0.99–1.38) | 135.16 KiB | no: over the budget |
| the whole relay at `opt-level = 3` | 1.10× (1.03–1.28) | 135.97 KiB | no: over the budget |
| only the relay crate at `opt-level = 3` (`[profile.release.package.clerk-sync]`: with fat LTO the whole link is then optimized at 3, and inlines more) | not measured | 145.05 KiB | no: over the budget |
| the relay, contract and `serde_json` crates at `opt-level = 3` | not measured | 143.13 KiB | no: over the budget |

With three profiles of each relay, alternating (`benches/profile.py --repeat 3`, in *Where the CPU
goes*), the runtime rows no longer hide in one run's noise: the Rust relay's workerd, kernel and malloc
rows fall within the JavaScript relay's spread, V8 runs about 0.02 ms higher around the wasm, and the
wasm itself is about 0.06 ms. The JavaScript relay's whole cost above the forward-only floor is what the
Rust relay spends outside its own wasm.

Natively the floor runs SHA-256 on the CPU's SHA extensions (about 1.6 GB/s here), while any relay
must at least skip through the whole body's JSON once (serde_json at `opt-level = "s"`: about
0.85 GB/s); the relay reads it twice (envelope, then `data`), so 2× of that floor is out of reach
without a faster JSON skip. In the Worker there are no SHA extensions and the HMAC weighs more."""


if __name__ == "__main__":
    {"native-round": native_round, "write": write}[sys.argv[1] if len(sys.argv) > 1 else "write"]()
