#!/usr/bin/env python3
"""The relays inside the runtime: CPU per request in workerd, side by side.

Three bundles, each built with `wrangler deploy --dry-run --outdir` and served
by plain `workerd serve` with a generated capnp config (no `wrangler dev`,
whose proxy costs milliseconds of CPU per request):

  rust          the relay (this repository's Worker, Rust/WASM)
  js            benches/js-relay: the same contract on `standardwebhooks`
  forward-only  benches/js-relay/src/forward-only.js: reads the body and
                forwards it, no checks: the runtime's own floor

All three forward to one stand-in API (benches/stand-in-api.mjs, node). One
load generator (wrk) drives them in alternating rounds (the order rotates
each round) with the same signed body; for each run it records requests/s,
p50/p99 latency and the CPU seconds the workerd process spent (utime+stime
from /proc/<pid>/stat) divided by the requests it answered. Every response
must be 2xx and every request must reach the stand-in, or the run fails:
a relay that rejects fast would otherwise look cheap.

Everything listens on and talks to 127.0.0.1 only; every run is bounded by
wrk's duration. Writes target/bench/load.json for benches/report.py.

  python3 benches/load.py [--rounds 5] [--duration 8] [--connections 8]
                          [--bodies 3KB,64KB] [--skip-build] [--only js,...]
                          [--variant NAME=DIR ...]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
WRANGLER = ROOT / "node_modules" / ".bin" / "wrangler"
WORKERD = Path(os.environ.get("WORKERD_BIN", ROOT / "node_modules" / ".bin" / "workerd"))

SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
QUERY_SECRET = "bench-query-secret"
API_SECRET = "bench-api-secret"
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
SYNC_PATH = "/internal/clerk-sync"

BODIES = {
    "1KB": ROOT / "tests/fixtures/docs_user_created.json",
    "3KB": ROOT / "benches/bodies/user_created_3kb.json",
    "64KB": ROOT / "tests/fixtures/large_user_updated.json",
}

VARIANTS = {
    # name: (wrangler config, relay bindings?)
    "rust": (ROOT / "wrangler.toml", True),
    "js": (ROOT / "benches/js-relay/wrangler.toml", True),
    "forward-only": (ROOT / "benches/js-relay/wrangler.forward-only.toml", False),
}

WRK_LUA = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["svix-id"] = os.getenv("BENCH_ID")
wrk.headers["svix-timestamp"] = os.getenv("BENCH_TS")
wrk.headers["svix-signature"] = os.getenv("BENCH_SIG")
"""


def log(*args):
    print("load:", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"load: {what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"load: {what} did not listen on {port}")


def build(name, config):
    outdir = OUT / f"dist-{name}"
    shutil.rmtree(outdir, ignore_errors=True)
    log(f"building {name} ({config.relative_to(ROOT)})")
    result = subprocess.run(
        [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(outdir), "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True,
    )
    text = result.stdout + result.stderr
    (OUT / f"dry-run-{name}.log").write_text(text)
    size = re.search(r"Total Upload: ([0-9.]+ [KM]iB) / gzip: ([0-9.]+ [KM]iB)", text)
    if result.returncode != 0 or not size:
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"load: building {name} failed")
    return outdir, {"total": size.group(1), "gzip": size.group(2)}


def capnp_text(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')


class Workerd:
    def __init__(self, name, dist, bindings, wait=True, prefix=(), v8_flags=()):
        self.dir = Path(tempfile.mkdtemp(prefix=f"clerk-sync-bench-{name}-"))
        self.port = free_port()
        modules = []
        scripts = [p for p in dist.iterdir() if p.suffix == ".js"]
        assert len(scripts) == 1, f"{dist}: expected one .js module, found {scripts}"
        for p in [scripts[0]] + sorted(dist.glob("*.wasm")):
            (self.dir / p.name).symlink_to(p)
            kind = "esModule" if p.suffix == ".js" else "wasm"
            modules.append(f'(name = "{p.name}", {kind} = embed "{p.name}")')
        binds = ", ".join(f'(name = "{k}", text = "{capnp_text(v)}")' for k, v in bindings.items())
        config = f"""using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{self.port}", http = (), service = "main") ],
  v8Flags = [ {", ".join(f'"{f}"' for f in v8_flags)} ],
);
const worker :Workerd.Worker = (
  modules = [ {", ".join(modules)} ],
  compatibilityDate = "2026-04-20",
  bindings = [ {binds} ],
  globalOutbound = "loopback",
);
"""
        (self.dir / "config.capnp").write_text(config)
        self.log = open(self.dir / "workerd.log", "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*prefix, str(WORKERD), "serve", str(self.dir / "config.capnp")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            # V8's profiling flags write isolate-*.log files into the working directory.
            cwd=self.dir,
        )
        if wait:
            wait_port(self.port, self.proc, f"workerd ({name})")

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); index 11 and 12 after the ")".
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_seconds(self):
        """CPU time of the process's live threads in nanoseconds' precision
        (`/proc/<pid>/task/*/schedstat`), for the short spans of a cold start."""
        total = 0
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total / 1e9

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def stand_in_posts(api_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/stats", timeout=5) as r:
        return json.load(r)["posts"]


def parse_duration_ms(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url, body_path, seconds, connections, lua):
    ts = str(int(time.time()))
    env = dict(os.environ, BENCH_BODY=str(body_path), BENCH_ID=MESSAGE_ID, BENCH_TS=ts,
               BENCH_SIG=sign(body_path.read_bytes(), ts))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
         "-s", str(lua), url],
        env=env, capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    lat = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.M))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "p50_ms": parse_duration_ms(lat["50"]),
        "p99_ms": parse_duration_ms(lat["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def sign(body, ts, message_id=MESSAGE_ID):
    key = base64.b64decode(SIGNING_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def contract_check(base_urls, body_path):
    """The JavaScript relay must answer as the Rust one does (status and error
    code) beyond the happy path, or it is not a fair baseline."""
    body = body_path.read_bytes()
    now = str(int(time.time()))
    ignored = b'{"type":"session.created","data":{"id":"sess_1"}}'
    not_json = b"{not json"

    def headers(b, ts=now, mid=MESSAGE_ID, family="svix"):
        return {"content-type": "application/json", f"{family}-id": mid,
                f"{family}-timestamp": ts, f"{family}-signature": sign(b, ts, mid)}

    cases = [
        ("valid", "POST", f"?secret={QUERY_SECRET}", headers(body), body),
        ("webhook-* family", "POST", f"?secret={QUERY_SECRET}", headers(body, family="webhook"), body),
        ("wrong query secret", "POST", "?secret=nope", headers(body), body),
        ("query secret twice", "POST", f"?secret={QUERY_SECRET}&secret={QUERY_SECRET}", headers(body), body),
        ("no signature headers", "POST", f"?secret={QUERY_SECRET}", {"content-type": "application/json"}, body),
        ("bad signature", "POST", f"?secret={QUERY_SECRET}", headers(body + b" "), body),
        ("old timestamp", "POST", f"?secret={QUERY_SECRET}", headers(body, ts=str(int(now) - 3600)), body),
        ("bad message id", "POST", f"?secret={QUERY_SECRET}", headers(body, mid="msg.1"), body),
        ("ignored type", "POST", f"?secret={QUERY_SECRET}", headers(ignored), ignored),
        ("signed, not JSON", "POST", f"?secret={QUERY_SECRET}", headers(not_json), not_json),
        ("too large", "POST", f"?secret={QUERY_SECRET}", headers(b"x" * 300_000), b"x" * 300_000),
        ("GET /webhook", "GET", "", {}, None),
        ("unknown path", "GET", "/nope", {}, None),
    ]
    answers = {}
    for name, base in base_urls.items():
        for case, method, suffix, hdrs, data in cases:
            url = base + ("/webhook" + suffix if not suffix.startswith("/") else suffix)
            req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, text = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read()
            try:
                reply = json.loads(text)
            except ValueError:
                reply = {}
            code = reply.get("error") or ("forwarded" if reply.get("forwarded") else
                                          "ignored" if reply.get("ignored") else "?")
            answers.setdefault(case, {})[name] = (status, code)
    differ = {case: a for case, a in answers.items() if len(set(a.values())) != 1}
    for case, a in answers.items():
        log(f"contract: {case:>22}: " + ", ".join(f"{n} {s} {c}" for n, (s, c) in a.items()))
    if differ:
        raise SystemExit(f"load: the relays disagree on the contract: {differ}")
    return {case: next(iter(a.values())) for case, a in answers.items()}


def first_delivery(port, body):
    """One signed delivery, answered 200, or the run fails."""
    ts = str(int(time.time()))
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook?secret={QUERY_SECRET}", data=body, method="POST",
        headers={"content-type": "application/json", "svix-id": MESSAGE_ID,
                 "svix-timestamp": ts, "svix-signature": sign(body, ts)})
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status != 200:
            raise SystemExit(f"load: cold start: first delivery answered {r.status}")


def listening(port, proc, started, timeout=60):
    """Seconds from `started` until `port` accepts (polled every millisecond)."""
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit("load: cold start: workerd exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.001)
    raise SystemExit(f"load: cold start: nothing listened on {port}")


def bindings_for(api_port):
    """The relay's settings for a bench run, forwarding to the stand-in API on api_port."""
    return {
        "CLERK_WEBHOOK_SECRET": SIGNING_SECRET,
        "WEBHOOK_QUERY_SECRET": QUERY_SECRET,
        "API_SECRET": API_SECRET,
        "API_URL": f"http://127.0.0.1:{api_port}",
        "API_SYNC_PATH": SYNC_PATH,
        "FORWARD_TIMEOUT_MS": "8000",
        "MAX_BODY_BYTES": "262144",
        "ALLOW_UNSIGNED_WEBHOOKS": "false",
    }


def cold_start(name, dist, bindings, body):
    """A fresh workerd to its first answered delivery: wall time and the
    process's CPU time, at listening and at the answer."""
    w = Workerd(f"cold-{name}", dist, bindings, wait=False)
    try:
        listen_s = listening(w.port, w.proc, w.started)
        listen_cpu = w.thread_cpu_seconds()
        first_delivery(w.port, body)
        answer_s = time.perf_counter() - w.started
        answer_cpu = w.thread_cpu_seconds()
    finally:
        w.stop()
    return {"listen_ms": 1000 * listen_s, "first_answer_ms": 1000 * answer_s,
            "listen_cpu_ms": 1000 * listen_cpu, "first_answer_cpu_ms": 1000 * answer_cpu}


# V8's own wasm work: decoding, Liftoff and TurboFan compilation units, lazy
# compilation, instance building (`v8::internal::wasm::…` and its compilers).
WASM_COMPILE = re.compile(r"v8::internal::wasm::|Liftoff|WasmFullDecoder|WasmGraphBuilder|"
                          r"compiler::WasmGraph|compiler::turboshaft::Wasm|ModuleDecoder|InstanceBuilder")


def wasm_share(dist, bindings, body):
    """The share of a cold start's CPU (fresh workerd to the first answered
    delivery, all of the process's threads) that V8 spends decoding,
    compiling and instantiating the wasm module, from a `perf` profile;
    None without perf."""
    if not shutil.which("perf"):
        return None
    data = OUT / "cold-start.perf.data"
    w = Workerd("cold-perf", dist, bindings, wait=False,
                prefix=("perf", "record", "-q", "-F", "20000", "-o", str(data), "--"))
    try:
        listening(w.port, w.proc, w.started)
        first_delivery(w.port, body)
        # perf's child is workerd: stop it, and perf writes the profile.
        children = Path(f"/proc/{w.proc.pid}/task/{w.proc.pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        w.proc.wait(timeout=30)
    finally:
        w.stop()
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "sym",
                             "-g", "none", "-n", "--stdio"], capture_output=True, text=True).stdout
    total = wasm = 0
    for line in report.splitlines():
        parts = line.split(None, 2)
        if line.startswith("#") or len(parts) < 3 or not parts[1].isdigit():
            continue
        total += int(parts[1])
        if WASM_COMPILE.search(parts[2]) and "wasm-function" not in parts[2]:
            wasm += int(parts[1])
    return {"samples": total, "wasm_compile_samples": wasm, "share": wasm / total if total else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8, help="seconds per run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per relay and body")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--bodies", default="3KB,64KB")
    ap.add_argument("--skip-build", action="store_true", help="reuse target/bench/dist-*")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=DIR",
                    help="also drive an already built relay bundle (an A/B of a change)")
    ap.add_argument("--only", default="", metavar="NAMES",
                    help="of rust, js and forward-only, drive only these (comma-separated)")
    ap.add_argument("--cold", type=int, default=5, metavar="N",
                    help="cold starts per relay (rust and js, alternating); 0 skips them")
    args = ap.parse_args()
    bodies = args.bodies.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    if not shutil.which("wrk"):
        raise SystemExit("load: wrk is not installed (scripts/bench.sh installs it)")

    sizes = {}
    dists = {}
    for name, (config, _) in VARIANTS.items():
        if args.only and name not in args.only.split(","):
            continue
        if args.skip_build and (OUT / f"dist-{name}").is_dir():
            dists[name] = OUT / f"dist-{name}"
            continue
        dists[name], sizes[name] = build(name, config)

    only = set(args.only.split(",")) if args.only else set(VARIANTS)
    variants = {name: relay for name, (_, relay) in VARIANTS.items() if name in only}
    for extra in args.variant:
        name, _, directory = extra.partition("=")
        dists[name] = Path(directory).resolve()
        variants[name] = True

    lua = OUT / "wrk-svix.lua"
    lua.write_text(WRK_LUA)
    api_port = free_port()
    api = subprocess.Popen(["node", str(ROOT / "benches/stand-in-api.mjs"), str(api_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = {}
    results = {
        "method": {
            "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
            "connections": args.connections, "load_generator": "wrk -t1",
            "workerd": subprocess.run([str(WORKERD), "--version"], capture_output=True, text=True).stdout.strip(),
            "wrk": (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or [""])[0].split(" Copyright")[0],
        },
        "sizes": sizes,
        "bodies": {},
    }
    try:
        wait_port(api_port, api, "stand-in API")
        relay_bindings = bindings_for(api_port)
        floor_bindings = {"API_URL": f"http://127.0.0.1:{api_port}", "API_SYNC_PATH": SYNC_PATH}
        for name, relay in variants.items():
            servers[name] = Workerd(name, dists[name], relay_bindings if relay else floor_bindings)
        urls = {n: f"http://127.0.0.1:{w.port}/webhook?secret={QUERY_SECRET}" for n, w in servers.items()}
        names = list(variants)
        relays = {n: f"http://127.0.0.1:{servers[n].port}" for n in names if variants[n]}
        results["contract"] = contract_check(relays, BODIES["3KB"])

        cold_names = [n for n in ("rust", "js") if n in variants] if args.cold else []
        if cold_names:
            body = BODIES["3KB"].read_bytes()
            cold = {n: [] for n in cold_names}
            for r in range(args.cold):
                for name in cold_names[r % 2:] + cold_names[: r % 2]:
                    c = cold_start(name, dists[name], relay_bindings, body)
                    cold[name].append(c)
                    log(f"cold start {r + 1}/{args.cold} {name:>5}: listening {c['listen_ms']:.0f} ms, "
                        f"first answer {c['first_answer_ms']:.0f} ms, "
                        f"CPU {c['listen_cpu_ms']:.0f} / {c['first_answer_cpu_ms']:.0f} ms")
            results["cold"] = {"runs": cold}
            if "rust" in cold:
                share = wasm_share(dists["rust"], relay_bindings, body)
                results["cold"]["rust_wasm"] = share
                if share:
                    log(f"cold start rust: {share['share']:.0%} of the CPU to the first answer is "
                        "V8 decoding, compiling and instantiating the wasm")

        for body in bodies:
            path = BODIES[body]
            log(f"body {body} ({path.stat().st_size} bytes): warm-up")
            for name in names:
                w = run_wrk(urls[name], path, args.warmup, args.connections, lua)
                if w["non_2xx"] or w["requests"] == 0:
                    raise SystemExit(f"load: {name} answered non-2xx during warm-up: {w}")
            runs = {n: [] for n in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[: r % len(names)]
                for name in order:
                    server = servers[name]
                    posts_before = stand_in_posts(api_port)
                    cpu_before = server.cpu_seconds()
                    run = run_wrk(urls[name], path, args.duration, args.connections, lua)
                    run["cpu_s"] = server.cpu_seconds() - cpu_before
                    run["forwarded"] = stand_in_posts(api_port) - posts_before
                    run["cpu_ms_per_request"] = 1000 * run["cpu_s"] / max(run["requests"], 1)
                    runs[name].append(run)
                    log(f"body {body} round {r + 1}/{args.rounds} {name:>12}: {run['rps']:8.0f} req/s "
                        f"p50 {run['p50_ms']:.2f} ms p99 {run['p99_ms']:.2f} ms "
                        f"cpu {run['cpu_ms_per_request']:.3f} ms/req")
                    # Every counted request must have been answered 2xx and forwarded
                    # (wrk may count a request whose forward landed after the window).
                    if run["non_2xx"] or run["forwarded"] < run["requests"] - args.connections:
                        raise SystemExit(f"load: {name} did not forward every request: {run}")
            results["bodies"][body] = {"bytes": path.stat().st_size, "runs": runs}
    finally:
        for s in servers.values():
            s.stop()
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(timeout=5)
        except subprocess.TimeoutExpired:
            api.kill()

    (OUT / "load.json").write_text(json.dumps(results, indent=1))
    for body, b in results["bodies"].items():
        for name, runs in b["runs"].items():
            med = statistics.median(x["cpu_ms_per_request"] for x in runs)
            log(f"{body} {name}: median cpu {med:.3f} ms/request over {len(runs)} rounds")
    # Side by side: each run against the same round's run of the reference
    # (js when it ran), the median of those ratios; an A/B reads best this way.
    for body, b in results["bodies"].items():
        runs = b["runs"]
        ref = "js" if "js" in runs else next(iter(runs))
        for name, rr in runs.items():
            ratios = sorted(x["cpu_ms_per_request"] / y["cpu_ms_per_request"] for x, y in zip(rr, runs[ref]))
            log(f"{body} {name} / {ref}: median {statistics.median(ratios):.3f} "
                f"({ratios[0]:.3f}-{ratios[-1]:.3f}) over {len(ratios)} rounds")
    log(f"wrote {OUT / 'load.json'}")


if __name__ == "__main__":
    main()
