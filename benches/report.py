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
        "release profile the Worker ships with, so `opt-level = \"s\"` except SHA-256 at 3). Each figure is "
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
        add(f"- rust / js CPU per request: {spread(vs_js, ratio)}")
        add(f"- rust over the forward-only floor: {spread(over_floor, ms)} per request "
            f"(js over the floor: {spread(js_over_floor, ms)})")
        add("")
        goals.append((body, med(vs_js), med(over_floor)))
    add("Goals:")
    add("")
    for body, vj, of in goals:
        add(f"- {body}: Rust CPU per request at or below the JavaScript relay's: {met(vj <= 1)} "
            f"({vj:.2f}×); overhead over the floor under 0.1 ms: {met(of < 0.1)} ({of:.3f} ms).")
    add("")

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
| `sha2` at `opt-level = 3` | 64 KB: 1.333 → 0.932 ms CPU/request; +0.4 KiB gzip | yes |
| `serde_json` at `opt-level = 3` | 64 KB: −0.045 ms (within noise at 3 KB); +3.9 KiB gzip | no |
| `AbortSignal.timeout()` instead of racing a `Delay` | no measurable change at 3 KB | no |
| the validated configuration cached once per isolate (`OnceLock`) instead of read from `env` on every request | 3 KB: 0.492 → 0.487 ms CPU/request (3 alternating rounds; within noise) | no (no gain) |
| user events parsed in one pass (envelope and `data` together, the two-pass path kept as the fallback) | native 64 KB `map_event` 98 → 53 µs; workerd 64 KB 0.910 → 0.804 ms, 3 KB within noise; +1.45 KiB gzip | no: a second parse path that must agree with the first forever, for a gain only on rare large deliveries that already cost 0.7× the JavaScript relay |

A profile of the Rust relay in workerd (`perf` with V8's `--perf-basic-prof`, 3 KB) put about 15–18 % of
the process's CPU in the relay's own wasm code (SHA-256 the largest part) and the rest in the runtime:
HTTP and sockets, the `fetch`, and the many small JS↔wasm crossings and promises of the workers-rs glue
(request and response objects, headers, futures). The JavaScript relay makes fewer crossings, which is
where its lead at small bodies comes from; at 64 KB the wasm HMAC outruns the JavaScript one.

Natively the floor runs SHA-256 on the CPU's SHA extensions (about 1.6 GB/s here), while any relay
must at least skip through the whole body's JSON once (serde_json at `opt-level = "s"`: about
0.85 GB/s); the relay reads it twice (envelope, then `data`), so 2× of that floor is out of reach
without a faster JSON skip. In the Worker there are no SHA extensions and the HMAC weighs more."""


if __name__ == "__main__":
    {"native-round": native_round, "write": write}[sys.argv[1] if len(sys.argv) > 1 else "write"]()
