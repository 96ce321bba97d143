#!/usr/bin/env python3
"""Where each relay's CPU goes inside workerd, per request, by category.

Each bundle (as benches/load.py built it, target/bench/dist-*) is served by
plain workerd with V8's `--perf-basic-prof` (so `perf` can name JIT code),
warmed, then profiled with `perf record` during a wrk run of the 3 KB
delivery. Samples are grouped by what ran: the relay's wasm (TurboFan
code named `wasm-function[...]`), JIT'd JavaScript and the JS<->wasm stubs
(wasm-bindgen's glue in a Rust bundle; the whole relay in the JavaScript
one), V8's C++ (builtins, parser, GC, compilers), the workerd runtime (its
C++: HTTP, streams, promises, JS API objects), malloc, and the kernel.
Each figure is that category's samples turned into milliseconds per
answered request. `perf` itself costs CPU, so totals run above load.py's;
compare the categories, not the totals.

  python3 benches/profile.py [--seconds 8] [--bodies 3KB] [--repeat 3]

With --repeat N each relay is profiled N times, the relays alternating, and
each category is reported as the median of its N figures with the lowest
and highest: one profile of each cannot tell a relay's row from noise.

Writes target/bench/profile.json; skipped (with a note) without perf.
"""

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

HZ = 1999
CATEGORIES = [
    ("wasm", lambda s: "[JIT]" in s and ("wasm-function" in s or (re.search(r"-\d+-(turbofan|liftoff)$", s) and "JS:*" not in s))),
    ("JIT JavaScript and JS<->wasm stubs", lambda s: "[JIT]" in s),
    ("kernel", lambda s: "[kernel" in s),
    ("malloc", lambda s: "tcmalloc" in s or "TCMalloc" in s or "libc" in s),
    ("V8 (builtins, GC, compilers, API)", lambda s: "v8::" in s or "Builtins_" in s or "cppgc" in s),
    ("workerd runtime (HTTP, streams, promises, JS API objects)", lambda s: True),
]


def categorize(symbol):
    for name, test in CATEGORIES:
        if test(symbol):
            return name
    return CATEGORIES[-1][0]


def profile(name, dist, bindings, body_path, seconds, lua):
    server = load.Workerd(name, dist, bindings, v8_flags=["--perf-basic-prof"])
    data = load.OUT / f"profile-{name}.perf.data"
    try:
        url = f"http://127.0.0.1:{server.port}/webhook?secret={load.QUERY_SECRET}"
        load.run_wrk(url, body_path, 3, 8, lua)
        rec = subprocess.Popen(["perf", "record", "-q", "-F", str(HZ), "-o", str(data), "-p", str(server.proc.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        run = load.run_wrk(url, body_path, seconds, 8, lua)
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
    finally:
        server.stop()
    if run["non_2xx"]:
        raise SystemExit(f"profile: {name} answered non-2xx: {run}")
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym",
                             "-g", "none", "-n", "--stdio"], capture_output=True, text=True).stdout
    per = {}
    for line in report.splitlines():
        parts = line.split(None, 2)
        if line.startswith("#") or len(parts) < 3 or not parts[1].isdigit():
            continue
        cat = categorize(" ".join(parts[2].split()))
        per[cat] = per.get(cat, 0) + int(parts[1]) / HZ / run["requests"] * 1000
    return {"requests": run["requests"], "ms_per_request": per}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--bodies", default="3KB")
    ap.add_argument("--relays", default="rust,js,forward-only")
    ap.add_argument("--repeat", type=int, default=3, help="profiles of each relay, alternating")
    args = ap.parse_args()
    if not shutil.which("perf"):
        print("profile: perf is not installed; skipped", file=sys.stderr)
        return
    lua = load.OUT / "wrk-svix.lua"
    lua.write_text(load.WRK_LUA)
    api_port = load.free_port()
    api = subprocess.Popen(["node", str(load.ROOT / "benches/stand-in-api.mjs"), str(api_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        load.wait_port(api_port, api, "stand-in API")
        bindings = load.bindings_for(api_port)
        for body in args.bodies.split(","):
            for round_ in range(args.repeat):
                for name in args.relays.split(","):
                    dist = load.OUT / f"dist-{name}"
                    p = profile(name, dist, bindings, load.BODIES[body], args.seconds, lua)
                    runs = out.setdefault(body, {}).setdefault(name, {"rounds": []})["rounds"]
                    runs.append(p)
                    print(f"profile: {body} {name} round {round_ + 1}: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in sorted(p["ms_per_request"].items(), key=lambda x: -x[1])),
                        file=sys.stderr)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=5)
    (load.OUT / "profile.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
