// The baseline for scripts/bench.sh: the relay's contract (src/lib.rs) as a
// plain JavaScript Worker, verifying with `standardwebhooks`, the package
// Clerk's own `verifyWebhook` calls. Same steps, same statuses and codes,
// same command JSON, one fetch with a timeout, one JSON log line. Kept as
// small as a team would write it: it is the baseline, not a straw man.
import { Webhook } from "standardwebhooks";

const VERSION = "0.1.0";
const ID_RE = /^[A-Za-z0-9_-]{1,256}$/;
const MESSAGES = {
  not_found: "not found",
  method_not_allowed: "method not allowed",
  misconfigured: "the relay is misconfigured",
  unauthorized: "unauthorized",
  payload_too_large: "payload too large",
  missing_signature_headers: "missing signature headers",
  invalid_message_id: "invalid message id",
  invalid_timestamp: "invalid timestamp",
  timestamp_out_of_tolerance: "timestamp outside the tolerance",
  invalid_signature: "no matching signature",
  invalid_json: "body is not JSON",
  upstream_unavailable: "the main API could not be reached",
  upstream_timeout: "the main API did not answer in time",
};

class RelayError extends Error {
  constructor(status, code, message = MESSAGES[code]) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One Webhook per configured secret, built once per isolate.
let cachedSecrets = null;
let verifiers = [];
function verifiersFor(text) {
  if (text !== cachedSecrets) {
    verifiers = text.split(/[ ,\n\t]+/).filter(Boolean).map((s) => new Webhook(s));
    cachedSecrets = text;
  }
  return verifiers;
}

function config(env) {
  const need = ["CLERK_WEBHOOK_SECRET", "WEBHOOK_QUERY_SECRET", "API_SECRET"];
  if (need.some((k) => !env[k] || !env[k].trim())) {
    throw new RelayError(500, "misconfigured");
  }
  const apiUrl = (env.API_URL || "http://127.0.0.1:8787").replace(/\/+$/, "");
  return {
    verifiers: verifiersFor(env.CLERK_WEBHOOK_SECRET),
    querySecret: env.WEBHOOK_QUERY_SECRET,
    apiSecret: env.API_SECRET,
    forwardUrl: apiUrl + (env.API_SYNC_PATH || "/internal/clerk-sync"),
    timeoutMs: Number(env.FORWARD_TIMEOUT_MS || 8000),
    maxBody: Number(env.MAX_BODY_BYTES || 262144),
  };
}

function sameText(a, b) {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y[i % y.length] || 0);
  return diff === 0;
}

// svix-* or webhook-*, never mixed, renamed to what standardwebhooks reads
// (as Clerk's verifyWebhook does).
function signatureHeaders(h) {
  const family = ["svix-id", "svix-timestamp", "svix-signature"].some((n) => h.has(n))
    ? "svix"
    : "webhook";
  return {
    "webhook-id": h.get(`${family}-id`),
    "webhook-timestamp": h.get(`${family}-timestamp`),
    "webhook-signature": h.get(`${family}-signature`),
  };
}

function verify(cfg, headers, text) {
  const id = headers["webhook-id"];
  const ts = headers["webhook-timestamp"];
  if (!id || !ts || !headers["webhook-signature"]) throw new RelayError(401, "missing_signature_headers");
  if (!ID_RE.test(id)) throw new RelayError(401, "invalid_message_id");
  if (!/^(0|[1-9][0-9]*)$/.test(ts)) throw new RelayError(401, "invalid_timestamp");
  let lastError;
  for (const wh of cfg.verifiers) {
    try {
      return wh.verify(text, headers); // verifies, then JSON.parse
    } catch (e) {
      lastError = e;
    }
  }
  if (lastError instanceof SyntaxError) throw new RelayError(400, "invalid_json");
  if (/too (old|new)/.test(lastError.message)) throw new RelayError(401, "timestamp_out_of_tolerance");
  throw new RelayError(401, "invalid_signature");
}

const iso = (ms) => {
  if (typeof ms !== "number" || !Number.isSafeInteger(ms)) return null;
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  if (Number.isNaN(y) || y < 0 || y > 9999) throw new RelayError(400, "invalid_payload", "a timestamp is out of range");
  return d.toISOString();
};
const str = (v) => (typeof v === "string" ? v : null);

function toCommand(event, id, signedAt, nowMs) {
  if (!event || typeof event !== "object" || Array.isArray(event) || typeof event.type !== "string") {
    throw new RelayError(400, "invalid_payload", "body is not a Clerk event (an object with a string type)");
  }
  const type = event.type;
  if (type !== "user.created" && type !== "user.updated" && type !== "user.deleted") return null;
  const data = event.data;
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    throw new RelayError(400, "invalid_payload", "user event data must be an object");
  }
  if (typeof data.id !== "string" || data.id === "") {
    throw new RelayError(400, "invalid_payload", "user event data needs a non-empty id");
  }
  let ts = Number.isSafeInteger(event.timestamp) ? event.timestamp : null;
  if (ts !== null && ts >= 0 && ts < 1e11) ts *= 1000; // seconds in Clerk's OpenAPI examples
  const command = {
    version: 1,
    command: type === "user.deleted" ? "delete_user" : "upsert_user",
    operation_id: id,
    event_type: type,
    occurred_at: iso(ts ?? signedAt * 1000),
    received_at: iso(nowMs),
    clerk_id: data.id,
    user: null,
  };
  if (type === "user.deleted") {
    if (typeof data.external_id === "string") command.external_id = data.external_id;
    return command;
  }
  const emails = Array.isArray(data.email_addresses) ? data.email_addresses : [];
  const primary =
    typeof data.primary_email_address_id === "string"
      ? emails.find((e) => e && e.id === data.primary_email_address_id)
      : emails[0];
  command.user = {
    email: str(primary?.email_address),
    email_verified: primary?.verification?.status === "verified",
    first_name: str(data.first_name),
    last_name: str(data.last_name),
    username: str(data.username),
    image_url: str(data.image_url),
    external_id: str(data.external_id),
    created_at: iso(data.created_at),
    updated_at: iso(data.updated_at),
  };
  return command;
}

async function forward(cfg, command) {
  let response;
  try {
    response = await fetch(cfg.forwardUrl, {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(cfg.timeoutMs),
      headers: {
        authorization: `Bearer ${cfg.apiSecret}`,
        "content-type": "application/json",
        "idempotency-key": command.operation_id,
        "user-agent": `clerk-sync-js/${VERSION}`,
      },
      body: JSON.stringify(command),
    });
  } catch (e) {
    if (e && (e.name === "TimeoutError" || e.name === "AbortError")) throw new RelayError(504, "upstream_timeout");
    throw new RelayError(502, "upstream_unavailable");
  }
  await response.body?.cancel();
  const s = response.status;
  if ((s >= 200 && s < 300) || s === 409) return s;
  throw new RelayError(502, "upstream_rejected", `the main API answered ${s}`);
}

async function webhook(request, env, url, log) {
  const cfg = config(env);
  const secrets = url.searchParams.getAll("secret");
  if (secrets.length !== 1 || !sameText(secrets[0], cfg.querySecret)) throw new RelayError(401, "unauthorized");
  if (Number(request.headers.get("content-length")) > cfg.maxBody) throw new RelayError(413, "payload_too_large");
  const bytes = await request.arrayBuffer();
  if (bytes.byteLength > cfg.maxBody) throw new RelayError(413, "payload_too_large");
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RelayError(400, "invalid_json");
  }
  const headers = signatureHeaders(request.headers);
  const event = verify(cfg, headers, text);
  const id = headers["webhook-id"];
  log.operation_id = id;
  const command = toCommand(event, id, Number(headers["webhook-timestamp"]), Date.now());
  if (!command) {
    log.event_type = String(event.type).slice(0, 64);
    log.outcome = "ignored";
    return { ok: true, ignored: true };
  }
  Object.assign(log, { event_type: command.event_type, clerk_id: command.clerk_id, command: command.command });
  log.upstream_status = await forward(cfg, command);
  log.outcome = "forwarded";
  return { ok: true, forwarded: true, operation_id: id, command: command.command };
}

function reply(status, body, extra = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...extra },
  });
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const known = url.pathname === "/webhook" || url.pathname === "/health";
    const log = { level: "info", msg: "request", method: request.method, path: known ? url.pathname : "other" };
    let response;
    try {
      if (url.pathname === "/health" && (request.method === "GET" || request.method === "HEAD")) {
        config(env);
        log.outcome = "ok";
        response = reply(200, { ok: true, status: "ok", service: "clerk-sync-js", version: VERSION });
      } else if (url.pathname === "/webhook" && request.method === "POST") {
        response = reply(200, await webhook(request, env, url, log));
      } else if (known) {
        throw new RelayError(405, "method_not_allowed");
      } else {
        throw new RelayError(404, "not_found");
      }
    } catch (e) {
      const err = e instanceof RelayError ? e : new RelayError(500, "internal", "internal error");
      log.outcome = err.code;
      log.level = err.status >= 500 ? "error" : "warn";
      const allow = err.status === 405 ? { allow: url.pathname === "/health" ? "GET, HEAD" : "POST" } : {};
      response = reply(err.status, { ok: false, error: err.code, message: err.message }, allow);
    }
    log.status = response.status;
    log.duration_ms = Date.now() - started;
    console.log(JSON.stringify(log));
    return response;
  },
};
