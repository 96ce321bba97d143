#!/usr/bin/env python3
"""Counts the JS<->wasm crossings one delivery makes in a built relay bundle.

The bundle's `index.js` (wasm-bindgen's glue, as wrangler bundled it) is
copied and patched: every function the wasm module imports (a wasm->JS
call) and every function it exports (a JS->wasm call: the entry points and
wasm-bindgen's own helpers, such as allocating the bytes of a string) is
wrapped in a counter, and the Worker's `fetch` resets the counters before a
request and prints them once its answer is ready. The copy is served by
plain workerd against benches/stand-in-api.mjs; a few signed deliveries
warm it, and the counts of the last one are reported, by import name
without wasm-bindgen's hash.

  python3 benches/crossings.py DIST [DIST ...] [--body 3KB] [--json OUT [--label NAME]]

Writes a table to stdout (and `--json` the counts) for each bundle.
"""

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (the bench's workerd, signing and stand-in helpers)

COUNTER = """
var __cx = new Map(), __cx_on = false;
function __cx_wrap(name, f, dir) {
  return function (...a) {
    if (__cx_on) { const k = dir + " " + name; __cx.set(k, (__cx.get(k) || 0) + 1); }
    return f.apply(this, a);
  };
}
function __cx_imports(imports) {
  for (const m of Object.values(imports)) {
    if (!m || typeof m !== "object") continue;
    for (const k of Object.keys(m)) if (typeof m[k] === "function") m[k] = __cx_wrap(k, m[k], "wasm->js");
  }
  return imports;
}
function __cx_exports(ex) {
  const o = {};
  for (const k of Object.keys(ex)) o[k] = typeof ex[k] === "function" ? __cx_wrap(k, ex[k], "js->wasm") : ex[k];
  return o;
}
function __cx_reset() { __cx.clear(); __cx_on = true; }
function __cx_dump() { __cx_on = false; console.log("CROSSINGS " + JSON.stringify(Object.fromEntries(__cx))); }
"""


def instrument(dist, into):
    shutil.copytree(dist, into)
    js = into / "index.js"
    text = js.read_text()
    text, n1 = re.subn(r"new WebAssembly\.Instance\((\w+), (\w+)\(\)\);\s*var (\w+) = (\w+)\.exports;",
                       r"new WebAssembly.Instance(\1, __cx_imports(\2()));\nvar \3 = __cx_exports(\4.exports);",
                       text, count=1)
    text, n2 = re.subn(r"\.prototype\.fetch = function\((\w+)\) \{\s*return (\w+)\.call\(this, \1, this\.env, this\.ctx\);\s*\};",
                       r".prototype.fetch = function(\1) { __cx_reset(); return Promise.resolve(\2.call(this, \1, this.env, this.ctx)).then((r) => { __cx_dump(); return r; }); };",
                       text, count=1)
    if n1 != 1 or n2 != 1:
        raise SystemExit(f"crossings: {dist}/index.js has not the expected shape ({n1}, {n2})")
    js.write_text(text + COUNTER)


def short(name):
    # wasm-bindgen names an import `__wbg_<js name>_<16 hex digits>`.
    return re.sub(r"_[0-9a-f]{16}$", "", name)


def count(dist, body_name, deliveries=4):
    tmp = Path(tempfile.mkdtemp(prefix="clerk-sync-crossings-"))
    api_port = load.free_port()
    api = subprocess.Popen(["node", str(load.ROOT / "benches/stand-in-api.mjs"), str(api_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        instrument(Path(dist), tmp / "dist")
        load.wait_port(api_port, api, "stand-in API")
        bindings = load.bindings_for(api_port)
        server = load.Workerd("crossings", tmp / "dist", bindings)
        body = load.BODIES[body_name].read_bytes()
        url = f"http://127.0.0.1:{server.port}/webhook?secret={load.QUERY_SECRET}"
        for _ in range(deliveries):
            ts = str(int(time.time()))
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "content-type": "application/json", "svix-id": load.MESSAGE_ID,
                "svix-timestamp": ts, "svix-signature": load.sign(body, ts)})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200, r.status
        deadline = time.time() + 10
        while time.time() < deadline:
            lines = [l for l in (server.dir / "workerd.log").read_text().splitlines() if "CROSSINGS " in l]
            if len(lines) >= deliveries:
                break
            time.sleep(0.1)
        if not lines:
            raise SystemExit("crossings: no CROSSINGS line (run workerd with logs?)")
        raw = json.loads(lines[-1].split("CROSSINGS ", 1)[1])
    finally:
        if server:
            server.stop()
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)
    counts = {}
    for k, v in raw.items():
        counts[short(k)] = counts.get(short(k), 0) + v
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dists", nargs="+")
    ap.add_argument("--body", default="3KB")
    ap.add_argument("--json", help="also write the counts here, as {label: counts}")
    ap.add_argument("--label", default=None, help="the label of the (one) bundle in --json")
    args = ap.parse_args()
    out = {}
    for d in args.dists:
        c = count(d, args.body)
        out[d] = c
        total = sum(c.values())
        print(f"\n{d} ({args.body}): {total} crossings per delivery "
              f"({sum(v for k, v in c.items() if k.startswith('wasm->js'))} wasm->js, "
              f"{sum(v for k, v in c.items() if k.startswith('js->wasm'))} js->wasm)")
        for k, v in sorted(c.items(), key=lambda x: (-x[1], x[0])):
            print(f"  {v:4d}  {k}")
    if args.json:
        if args.label:
            out = {args.label: out[args.dists[0]]}
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
