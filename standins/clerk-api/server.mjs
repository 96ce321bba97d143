#!/usr/bin/env node
// A stand-in for the part of Clerk's Backend API that a bulk re-sync uses:
// GET /v1/users, GET /v1/users/count and GET /v1/users/{id}, with Clerk's
// auth, error bodies, paging rules and rate limit. It listens on loopback
// only, keeps its users in memory and has a control surface under
// /_standin/* for tests, `npm run dev` and the benchmark. No dependencies.
//
// What it follows and where Clerk's published behaviour is unknown or
// differs from what was asked: see README.md next to this file.
//
//   node standins/clerk-api/server.mjs --port 0 --users 1000 --seed 7
//
// Run directly it is a CLI (flags below, `--help`); imported it exports
// createStandin() for in-process use.

import fs from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const PARENT_PID = process.ppid; // read first: the parent may be gone by the time main() runs

// ---------------------------------------------------------------- constants

const DEFAULT_PORT = 8790;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_SECRET_KEY = 'sk_test_standin';
const DEFAULT_RATE_LIMIT = 100; // Clerk development instance; production is 1000
const RATE_WINDOW_MS = 10_000;
const MAX_LIMIT = 500;
const DEFAULT_LIMIT = 10;
const MAX_ARRAY_VALUES = 100;
const MAX_BODY_BYTES = 256 * 1024 * 1024;
const SEED_EPOCH_MS = Date.UTC(2023, 0, 1); // seeded users are created from here on
const INSTANCE_ID = 'ins_2standinClerkInstance0000000';

// Clerk's order_by fields (spec: GetUserList order_by).
const ORDER_FIELDS = new Set([
  'created_at', 'updated_at', 'email_address', 'web3wallet', 'first_name', 'last_name',
  'phone_number', 'username', 'last_active_at', 'last_sign_in_at',
]);

// Array (repeatable) filters of GET /v1/users and /v1/users/count.
const ARRAY_FILTERS = [
  'email_address', 'phone_number', 'external_id', 'username', 'web3_wallet', 'user_id',
  'organization_id', 'provider_user_id',
];
const INT_FILTERS = [
  'last_active_at_before', 'last_active_at_after', 'last_active_at_since',
  'created_at_before', 'created_at_after', 'last_sign_in_at_before', 'last_sign_in_at_after',
];
const STRING_FILTERS = ['query', 'email_address_query', 'phone_number_query', 'username_query', 'name_query', 'provider'];
const LIST_ONLY_PARAMS = ['limit', 'offset', 'order_by', 'starting_after'];
const KNOWN_FILTER_PARAMS = new Set([...ARRAY_FILTERS, ...INT_FILTERS, ...STRING_FILTERS, 'banned']);

const CONFIG_KEYS = {
  rate_limit_per_10s: 'int>=0',
  rate_window_ms: 'int>0',
  fail_rate: 'fraction',
  fail_statuses: 'statuses',
  latency_ms: 'int>=0',
  limit_out_of_range: ['reject', 'default'],
  cursor_missing: ['continue', 'error'],
  verbose: 'bool',
};

// ------------------------------------------------------------ random numbers

/** FNV-1a of a seed given as number or string, to 32 bits. */
export function hashSeed(seed) {
  const s = String(seed ?? '');
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast, good enough for test data. Returns [0, 1). */
function rng(seed32) {
  let a = seed32 >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A Clerk-looking id: prefix + 27 base62 characters (Clerk ids are KSUIDs). */
const B62_CODES = [...B62].map((c) => c.charCodeAt(0));
const idCodes = new Array(27);

function makeId(prefix, rand) {
  // Built in one piece: 27 `+=` would leave a rope of 27 strings per id.
  idCodes[0] = 50; // '2': real ids start with 2 or 3 (KSUID timestamps)
  for (let i = 1; i < 27; i++) idCodes[i] = B62_CODES[Math.floor(rand() * 62)];
  return prefix + String.fromCharCode.apply(null, idCodes);
}

/** KSUID's epoch (2014-05-13T16:53:20Z), in seconds. */
const KSUID_EPOCH_S = 1_400_000_000n;

/**
 * A user id as Clerk makes them: a KSUID, 4 bytes of seconds since the
 * KSUID epoch then 16 random bytes, as 27 base62 characters, so ids sort by
 * creation time (to the second), as users' rows, indexes and cursors see
 * them in production.
 */
function makeUserId(createdAtMs, rand) {
  let n = BigInt(Math.floor(createdAtMs / 1000)) - KSUID_EPOCH_S;
  for (let i = 0; i < 4; i++) n = (n << 32n) | BigInt(Math.floor(rand() * 2 ** 32));
  for (let i = 26; i >= 0; i--) {
    idCodes[i] = B62_CODES[Number(n % 62n)];
    n /= 62n;
  }
  return 'user_' + String.fromCharCode.apply(null, idCodes);
}

// --------------------------------------------------------------- users: shape

const GRAVATAR = 'https://www.gravatar.com/avatar?d=mp';

function defaultImageUrl(id) {
  const payload = JSON.stringify({ type: 'default', iid: INSTANCE_ID, rid: id });
  return 'https://img.clerk.com/' + Buffer.from(payload).toString('base64url');
}

function emailOut(e, user) {
  return {
    created_at: e.created_at ?? user.created_at,
    email_address: e.email_address,
    id: e.id,
    linked_to: e.linked_to ?? [],
    matches_sso_connection: e.matches_sso_connection ?? false,
    object: 'email_address',
    reserved: e.reserved ?? false,
    updated_at: e.updated_at ?? user.updated_at,
    verification: e.verification === undefined
      ? { attempts: null, expire_at: null, status: 'verified', strategy: 'admin' }
      : e.verification,
  };
}

function phoneOut(p, user) {
  return {
    backup_codes: p.backup_codes ?? null,
    created_at: p.created_at ?? user.created_at,
    default_second_factor: p.default_second_factor ?? false,
    id: p.id,
    linked_to: p.linked_to ?? [],
    object: 'phone_number',
    phone_number: p.phone_number,
    reserved: p.reserved ?? false,
    reserved_for_second_factor: p.reserved_for_second_factor ?? false,
    updated_at: p.updated_at ?? user.updated_at,
    verification: p.verification === undefined
      ? { attempts: null, expire_at: null, status: 'verified', strategy: 'admin' }
      : p.verification,
  };
}

/**
 * A stored record (a partial Clerk user: only what differs from Clerk's
 * defaults) as Clerk's full user object, keys in the order of the captured
 * real payload (alphabetical). Fields a test set that Clerk does not have are
 * kept, after the known ones.
 */
export function toClerkUser(r) {
  const u = {
    backup_code_enabled: r.backup_code_enabled ?? false,
    banned: r.banned ?? false,
    create_organization_enabled: r.create_organization_enabled ?? true,
    create_organizations_limit: r.create_organizations_limit ?? null,
    created_at: r.created_at,
    delete_self_enabled: r.delete_self_enabled ?? true,
    email_addresses: (r.email_addresses ?? []).map((e) => emailOut(e, r)),
    enterprise_accounts: r.enterprise_accounts ?? [],
    external_accounts: r.external_accounts ?? [],
    external_id: r.external_id ?? null,
    first_name: r.first_name ?? null,
    has_image: r.has_image ?? false,
    id: r.id,
    image_url: r.image_url ?? defaultImageUrl(r.id),
    last_active_at: r.last_active_at ?? null,
    last_name: r.last_name ?? null,
    last_sign_in_at: r.last_sign_in_at ?? null,
    legal_accepted_at: r.legal_accepted_at ?? null,
    locked: r.locked ?? false,
    lockout_expires_in_seconds: r.lockout_expires_in_seconds ?? null,
    mfa_disabled_at: r.mfa_disabled_at ?? null,
    mfa_enabled_at: r.mfa_enabled_at ?? null,
    object: 'user',
    passkeys: r.passkeys ?? [],
    password_enabled: r.password_enabled ?? true,
    phone_numbers: (r.phone_numbers ?? []).map((p) => phoneOut(p, r)),
    primary_email_address_id: r.primary_email_address_id ?? null,
    primary_phone_number_id: r.primary_phone_number_id ?? null,
    primary_web3_wallet_id: r.primary_web3_wallet_id ?? null,
    private_metadata: r.private_metadata === undefined ? {} : r.private_metadata,
    profile_image_url: r.profile_image_url ?? GRAVATAR,
    public_metadata: r.public_metadata ?? {},
    saml_accounts: r.saml_accounts ?? [],
    totp_enabled: r.totp_enabled ?? false,
    two_factor_enabled: r.two_factor_enabled ?? false,
    unsafe_metadata: r.unsafe_metadata ?? {},
    updated_at: r.updated_at,
    username: r.username ?? null,
    verification_attempts_remaining: r.verification_attempts_remaining ?? 100,
    web3_wallets: r.web3_wallets ?? [],
  };
  for (const k of Object.keys(r)) if (!(k in u)) u[k] = r[k];
  return u;
}

function primaryEmail(r) {
  const list = r.email_addresses ?? [];
  return list.find((e) => e.id === r.primary_email_address_id) ?? null;
}

// ------------------------------------------------------------ users: seeding

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Linus',
  'Margaret', 'Dennis', 'Zoë', 'José', 'Chloé', 'Søren', 'Aoife', 'Nnamdi', 'Priya', 'Mei'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman',
  'Torvalds', 'Hamilton', 'Ritchie', 'García', 'Müller', 'Nakamura', 'Ó Briain', 'Okafor', 'Iyer', 'Chen', 'Kowalski'];

/** The special users, in creation order (oldest first), each with its reason. */
export const SPECIALS = [
  ['unverified_email', 'primary email not verified (verification.status "unverified")'],
  ['external_id', 'external_id set'],
  ['script_name', 'first_name is <script>alert(1)</script>, last_name has quotes, & and a closing tag'],
  ['no_email', 'no email address at all (a phone-only user), primary_email_address_id null'],
  ['two_emails', 'two emails: an unverified one first, the verified primary second'],
  ['mixed_case_email', 'primary email in mixed case with a +tag'],
  ['unicode_name', 'non-ASCII names (combining characters, CJK, emoji)'],
  ['metadata', 'nested public/private/unsafe metadata'],
  ['dangling_primary', 'primary_email_address_id names an email that is not in email_addresses'],
  ['null_everything', 'first_name, last_name, username all null; never signed in'],
];

function seedEmail(emailId, address, createdAt, status, rand) {
  return {
    created_at: createdAt,
    email_address: address,
    id: emailId,
    updated_at: createdAt,
    verification: status === 'verified'
      ? { attempts: 1, expire_at: createdAt + 600_000, status: 'verified', strategy: 'email_code' }
      : { attempts: rand() < 0.5 ? 0 : 1, expire_at: createdAt + 600_000, status: 'unverified', strategy: 'email_code' },
  };
}

/**
 * `count` deterministic users for `seed`: the same seed gives the same ids,
 * emails and times. Returned in creation order (created_at strictly
 * increasing). The first up to ten are the SPECIALS.
 */
export function generateUsers(count, seed) {
  const rand = rng(hashSeed(seed));
  const tag = hashSeed(seed).toString(36);
  const users = new Array(count);
  let t = SEED_EPOCH_MS;
  for (let i = 0; i < count; i++) {
    t += 1 + Math.floor(rand() * 60_000); // strictly increasing, about a minute apart
    const createdAt = t;
    const id = makeUserId(createdAt, rand);
    const emailId = makeId('idn_', rand);
    const n = String(i).padStart(6, '0');
    const first = FIRST[Math.floor(rand() * FIRST.length)];
    const last = LAST[Math.floor(rand() * LAST.length)];
    const roll = rand();
    const edited = rand() < 0.5;
    const updatedAt = edited ? createdAt + 1 + Math.floor(rand() * 30 * 86_400_000) : createdAt;
    const signedIn = rand() < 0.6;
    const lastSignIn = signedIn ? Math.min(updatedAt, createdAt + Math.floor(rand() * 86_400_000)) : null;
    const r = {
      id,
      created_at: createdAt,
      updated_at: updatedAt,
      first_name: roll < 0.05 ? null : first,
      last_name: roll < 0.05 ? null : last,
      username: rand() < 0.3 ? `user${n}_${tag}` : null,
      external_id: rand() < 0.1 ? `ext_${tag}_${n}` : null,
      email_addresses: [seedEmail(emailId, `user${n}.${tag}@example.com`, createdAt, rand() < 0.05 ? 'unverified' : 'verified', rand)],
      primary_email_address_id: emailId,
      last_sign_in_at: lastSignIn,
      last_active_at: lastSignIn === null ? null : lastSignIn - (lastSignIn % 86_400_000),
    };
    if (rand() < 0.2) r.public_metadata = { plan: rand() < 0.5 ? 'free' : 'pro' };
    if (i < SPECIALS.length) applySpecial(r, SPECIALS[i][0], n, tag, rand);
    users[i] = r;
  }
  return users;
}

function applySpecial(r, kind, n, tag, rand) {
  const e = r.email_addresses[0];
  switch (kind) {
    case 'unverified_email':
      r.email_addresses = [seedEmail(e.id, `unverified.${tag}@example.com`, r.created_at, 'unverified', rand)];
      break;
    case 'external_id':
      r.external_id = `ext_special_${tag}`;
      break;
    case 'script_name':
      r.first_name = '<script>alert(1)</script>';
      r.last_name = `O'Brien "&" </td><img src=x onerror=alert(2)>`;
      break;
    case 'no_email': {
      const phoneId = makeId('idn_', rand);
      r.email_addresses = [];
      r.primary_email_address_id = null;
      r.phone_numbers = [{ id: phoneId, phone_number: '+15555550100' }];
      r.primary_phone_number_id = phoneId;
      break;
    }
    case 'two_emails': {
      const other = makeId('idn_', rand);
      r.email_addresses = [
        seedEmail(other, `old.${tag}@example.com`, r.created_at, 'unverified', rand),
        seedEmail(e.id, `new.${tag}@example.com`, r.created_at, 'verified', rand),
      ];
      r.primary_email_address_id = e.id;
      break;
    }
    case 'mixed_case_email':
      e.email_address = `Mixed.Case+Tag.${tag}@Example.COM`;
      break;
    case 'unicode_name':
      r.first_name = 'Zoe\u0308 Łucja';
      r.last_name = '王小明 🦀';
      break;
    case 'metadata':
      r.public_metadata = { plan: 'pro', roles: ['admin', 'billing'], limits: { seats: 5 } };
      r.private_metadata = { stripe_customer: `cus_${tag}`, notes: null };
      r.unsafe_metadata = { theme: 'dark', 'weird key': [1, { deep: true }] };
      break;
    case 'dangling_primary':
      r.primary_email_address_id = makeId('idn_', rand);
      break;
    case 'null_everything':
      r.first_name = null;
      r.last_name = null;
      r.username = null;
      r.last_sign_in_at = null;
      r.last_active_at = null;
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------- errors, json

function clerkErrorBody(traceId, code, message, longMessage, meta) {
  const err = { message, long_message: longMessage, code };
  if (meta) err.meta = meta;
  return { errors: [err], clerk_trace_id: traceId };
}

class ApiError extends Error {
  constructor(status, code, message, longMessage, meta) {
    super(longMessage);
    this.status = status;
    this.code = code;
    this.short = message;
    this.long = longMessage;
    this.meta = meta;
  }
}

const paramInvalid = (name, long) =>
  new ApiError(422, 'form_param_value_invalid', 'is invalid', long, { param_name: name });

class ControlError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ------------------------------------------------------------------ helpers

function cmpKey(a, b) {
  // The total order behind created_at paging: created_at, then id.
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** First index in sorted `arr` whose key is > key (upper) or >= key (lower). */
function bound(arr, key, upper) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = cmpKey(arr[mid], key);
    if (c < 0 || (upper && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function isLoopbackHost(h) {
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function isLoopbackAddress(a) {
  if (!a) return false;
  if (a.startsWith('::ffff:')) a = a.slice(7);
  return a === '::1' || /^127\./.test(a);
}

/** The hostname part of a Host header ("127.0.0.1:8790", "[::1]:8790"). */
function hostHeaderName(h) {
  if (!h) return '';
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i === -1 ? h : h.slice(0, i);
}

function normalizePath(pathname) {
  if (/^\/v1\/users\/count$/.test(pathname)) return '/v1/users/count';
  if (/^\/v1\/users\/[^/]+$/.test(pathname)) return '/v1/users/{id}';
  if (/^\/_standin\/users\/[^/]+$/.test(pathname)) return '/_standin/users/{id}';
  return pathname;
}

function validateConfigValue(key, v) {
  const kind = CONFIG_KEYS[key];
  if (!kind) throw new ControlError(400, `unknown config key: ${key}`);
  if (Array.isArray(kind)) {
    if (!kind.includes(v)) throw new ControlError(400, `${key} must be one of ${kind.join(', ')}`);
    return v;
  }
  switch (kind) {
    case 'int>=0':
      if (!Number.isInteger(v) || v < 0) throw new ControlError(400, `${key} must be an integer >= 0`);
      return v;
    case 'int>0':
      if (!Number.isInteger(v) || v <= 0) throw new ControlError(400, `${key} must be an integer > 0`);
      return v;
    case 'fraction':
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new ControlError(400, `${key} must be a number from 0 to 1`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new ControlError(400, `${key} must be true or false`);
      return v;
    case 'statuses': {
      const list = typeof v === 'string' ? v.split(',').map((s) => Number(s.trim())) : v;
      if (!Array.isArray(list) || list.length === 0 || !list.every((s) => s === 429 || (Number.isInteger(s) && s >= 500 && s <= 599))) {
        throw new ControlError(400, `${key} must list 429 and/or 5xx statuses`);
      }
      return list;
    }
    default:
      throw new ControlError(400, `bad config key ${key}`);
  }
}

// ------------------------------------------------------------------ standin

/**
 * A stand-in server (not yet listening). Options: secretKey, users (count
 * seeded at start), seed, rate_limit_per_10s, fail_rate, fail_statuses,
 * latency_ms, limit_out_of_range, cursor_missing, rate_window_ms, verbose,
 * log (a function taking one line).
 */
export function createStandin(options = {}) {
  const startConfig = {
    rate_limit_per_10s: DEFAULT_RATE_LIMIT,
    rate_window_ms: RATE_WINDOW_MS,
    fail_rate: 0,
    fail_statuses: [500, 429],
    latency_ms: 0,
    limit_out_of_range: 'reject',
    cursor_missing: 'continue',
    verbose: false,
  };
  for (const k of Object.keys(CONFIG_KEYS)) {
    if (options[k] !== undefined) startConfig[k] = validateConfigValue(k, options[k]);
  }
  const secretKey = options.secretKey ?? DEFAULT_SECRET_KEY;
  const seed = options.seed ?? 1;
  const log = options.log ?? ((line) => process.stdout.write(line + '\n'));
  const config = { ...startConfig };

  // --- store: users sorted by (created_at, id), id -> index
  let users = [];
  const index = new Map();
  const tombstones = new Map(); // deleted id -> {id, created_at}: cursors over deleted users
  const emailIdx = new Map(); // lowercased address -> Set of user ids
  const extIdx = new Map(); // external_id -> Set of user ids
  let lastStamp = 0;

  // --- clock: real time plus an offset tests can advance
  let clockOffset = 0;
  const now = () => Date.now() + clockOffset;
  const nextStamp = () => {
    lastStamp = Math.max(now(), lastStamp + 1);
    return lastStamp;
  };

  // --- randomness: fail injection and ids for created users, both seeded
  let failRand;
  let idRand;
  let traceCounter = 0;
  const traceId = () => (hashSeed(seed).toString(16).padStart(8, '0') + (++traceCounter).toString(16).padStart(24, '0'));

  // --- rate limiting and stats
  let accepted = []; // times of requests that passed the limiter, within the window
  let attempts = []; // times of every authenticated /v1 request, within the window
  let blockedUntil = 0;
  let stats;
  let hooks = [];
  let hookSeq = 0;

  function resetStats() {
    stats = {
      requests_total: 0,
      v1_requests: 0,
      by_status: {},
      per_path: {},
      rate_limited: 0,
      retry_after_violations: 0,
      violations: [],
      injected_failures: {},
      max_requests_in_window: 0,
      max_served_in_window: 0,
      unknown_params: {},
      hooks_fired: [],
      started_at: now(),
    };
  }

  function reseedRandom() {
    failRand = rng(hashSeed(`${seed}:fail`));
    idRand = rng(hashSeed(`${seed}:ids`));
  }

  // Lookup maps hold a user id, or a Set of ids when several users share a
  // key (the stand-in does not enforce Clerk's uniqueness): 100,000 Sets of
  // one would cost more than the users.
  function multiAdd(map, k, id) {
    const v = map.get(k);
    if (v === undefined) map.set(k, id);
    else if (typeof v === 'string') { if (v !== id) map.set(k, new Set([v, id])); }
    else v.add(id);
  }

  function multiRemove(map, k, id) {
    const v = map.get(k);
    if (v === id) map.delete(k);
    else if (v instanceof Set) {
      v.delete(id);
      if (v.size === 1) map.set(k, v.values().next().value);
    }
  }

  function multiGet(map, k) {
    const v = map.get(k);
    return v === undefined ? [] : typeof v === 'string' ? [v] : [...v];
  }

  function indexAdd(r) {
    for (const e of r.email_addresses ?? []) {
      if (typeof e.email_address === 'string') multiAdd(emailIdx, e.email_address.toLowerCase(), r.id);
    }
    if (r.external_id != null) multiAdd(extIdx, r.external_id, r.id);
  }

  function indexRemove(r) {
    for (const e of r.email_addresses ?? []) {
      if (typeof e.email_address === 'string') multiRemove(emailIdx, e.email_address.toLowerCase(), r.id);
    }
    if (r.external_id != null) multiRemove(extIdx, r.external_id, r.id);
  }

  function reindexFrom(pos) {
    for (let i = pos; i < users.length; i++) index.set(users[i].id, i);
  }

  function replaceAll(list) {
    users = list;
    index.clear();
    tombstones.clear();
    emailIdx.clear();
    extIdx.clear();
    lastStamp = 0;
    for (let i = 0; i < users.length; i++) {
      index.set(users[i].id, i);
      indexAdd(users[i]);
      if (users[i].created_at > lastStamp) lastStamp = users[i].created_at;
    }
  }

  function insertRecord(r) {
    const pos = bound(users, r, true);
    if (pos === users.length) {
      users.push(r);
      index.set(r.id, pos);
    } else {
      users.splice(pos, 0, r);
      reindexFrom(pos);
    }
    indexAdd(r);
    tombstones.delete(r.id);
    if (r.created_at > lastStamp) lastStamp = r.created_at;
  }

  function removeRecord(id) {
    const pos = index.get(id);
    if (pos === undefined) return null;
    const r = users[pos];
    users.splice(pos, 1);
    index.delete(id);
    reindexFrom(pos);
    indexRemove(r);
    tombstones.set(id, { id, created_at: r.created_at });
    return r;
  }

  // --- control-surface user input -> records

  function newEmail(address, verified, at) {
    return {
      created_at: at,
      email_address: address,
      id: makeId('idn_', idRand),
      updated_at: at,
      verification: verified
        ? { attempts: 1, expire_at: at + 600_000, status: 'verified', strategy: 'email_code' }
        : { attempts: 0, expire_at: at + 600_000, status: 'unverified', strategy: 'email_code' },
    };
  }

  function checkUserFields(body) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ControlError(400, 'a user must be a JSON object');
    for (const k of ['created_at', 'updated_at', 'last_sign_in_at', 'last_active_at']) {
      if (body[k] !== undefined && body[k] !== null && !Number.isSafeInteger(body[k])) {
        throw new ControlError(400, `${k} must be an integer (Unix milliseconds)`);
      }
    }
    if (body.email !== undefined && typeof body.email !== 'string') throw new ControlError(400, 'email must be a string');
    if (body.email_verified !== undefined && typeof body.email_verified !== 'boolean') throw new ControlError(400, 'email_verified must be true or false');
    if (body.email_addresses !== undefined && !Array.isArray(body.email_addresses)) throw new ControlError(400, 'email_addresses must be an array');
    for (const e of body.email_addresses ?? []) {
      if (e === null || typeof e !== 'object' || typeof e.email_address !== 'string') {
        throw new ControlError(400, 'each email_addresses element needs an email_address string');
      }
    }
  }

  function createRecord(body) {
    checkUserFields(body);
    if (body.id !== undefined && (typeof body.id !== 'string' || body.id === '')) throw new ControlError(400, 'id must be a non-empty string');
    const createdAt = body.created_at ?? nextStamp();
    const id = body.id ?? makeUserId(createdAt, idRand);
    if (index.has(id)) throw new ControlError(409, `a user with id ${id} already exists`);
    const r = { ...body, id, created_at: createdAt, updated_at: body.updated_at ?? createdAt };
    delete r.email;
    delete r.email_verified;
    delete r.object;
    if (body.email_addresses) {
      r.email_addresses = body.email_addresses.map((e) => ({ ...e, id: e.id ?? makeId('idn_', idRand) }));
      if (!('primary_email_address_id' in body)) r.primary_email_address_id = r.email_addresses[0]?.id ?? null;
    } else if (body.email !== undefined) {
      const e = newEmail(body.email, body.email_verified ?? true, createdAt);
      r.email_addresses = [e];
      if (!('primary_email_address_id' in body)) r.primary_email_address_id = e.id;
    }
    if (r.updated_at < r.created_at) throw new ControlError(400, 'updated_at is before created_at');
    insertRecord(r);
    return r;
  }

  function patchRecord(id, body) {
    checkUserFields(body);
    const pos = index.get(id);
    if (pos === undefined) throw new ControlError(404, `no user ${id}`);
    if (body.id !== undefined && body.id !== id) throw new ControlError(400, 'id cannot change');
    const old = users[pos];
    if (body.created_at !== undefined && body.created_at !== old.created_at) throw new ControlError(400, 'created_at cannot change (Clerk never changes it)');
    indexRemove(old);
    const r = { ...old, ...body, id, created_at: old.created_at };
    delete r.email;
    delete r.email_verified;
    delete r.object;
    const at = Math.max(now(), old.updated_at + 1);
    if (body.email_addresses) {
      r.email_addresses = body.email_addresses.map((e) => ({ ...e, id: e.id ?? makeId('idn_', idRand) }));
    }
    if (body.email !== undefined || body.email_verified !== undefined) {
      const list = (r.email_addresses ?? []).map((e) => ({ ...e }));
      let p = list.find((e) => e.id === r.primary_email_address_id);
      if (!p) {
        if (body.email === undefined) {
          indexAdd(old);
          throw new ControlError(400, 'email_verified needs a primary email (give email too)');
        }
        p = newEmail(body.email, body.email_verified ?? true, at);
        list.push(p);
        r.primary_email_address_id = p.id;
      }
      if (body.email !== undefined) p.email_address = body.email;
      if (body.email_verified !== undefined) {
        p.verification = body.email_verified
          ? { attempts: 1, expire_at: at + 600_000, status: 'verified', strategy: 'email_code' }
          : { attempts: 0, expire_at: at + 600_000, status: 'unverified', strategy: 'email_code' };
      }
      p.updated_at = at;
      r.email_addresses = list;
    }
    // updated_at moves forward strictly, unless the test sets it on purpose.
    r.updated_at = body.updated_at ?? at;
    users[pos] = r;
    indexAdd(r);
    return r;
  }

  // --- GET /v1/users parameters

  function parseIntParam(q, name) {
    const v = q.get(name);
    if (v === null) return undefined;
    if (!/^-?\d+$/.test(v)) throw paramInvalid(name, `${name} must be an integer.`);
    return Number(v);
  }

  function parseFilters(q) {
    const f = {};
    for (const name of ARRAY_FILTERS) {
      const values = q.getAll(name);
      if (values.length === 0) continue;
      if (values.length > MAX_ARRAY_VALUES) {
        throw new ApiError(422, 'form_param_array_size_exceeded', 'exceeds maximum size',
          `${name} should not exceed ${MAX_ARRAY_VALUES} items.`, { param_name: name });
      }
      f[name] = values;
    }
    for (const name of INT_FILTERS) {
      const v = parseIntParam(q, name);
      if (v !== undefined) f[name] = v;
    }
    for (const name of STRING_FILTERS) {
      const v = q.get(name);
      if (v !== null) f[name] = v;
    }
    const banned = q.get('banned');
    if (banned !== null) {
      if (banned !== 'true' && banned !== 'false') throw paramInvalid('banned', 'banned must be true or false.');
      f.banned = banned === 'true';
    }
    return f;
  }

  /** +id / -id lists (user_id, external_id): include and exclude sets. */
  function plusMinus(values) {
    const inc = [];
    const exc = new Set();
    for (const v of values) {
      if (v.startsWith('-')) exc.add(v.slice(1));
      else inc.push(v.startsWith('+') ? v.slice(1) : v);
    }
    return { inc, exc };
  }

  /** The records matching the filters, in (created_at, id) order. */
  function matching(f) {
    const preds = [];
    let candidates = null; // Set of ids, when an include list narrows things down
    const narrow = (ids) => {
      if (candidates === null) candidates = new Set(ids);
      else candidates = new Set([...candidates].filter((x) => ids.has(x)));
    };
    if (f.user_id) {
      const { inc, exc } = plusMinus(f.user_id);
      if (inc.length) narrow(new Set(inc));
      if (exc.size) preds.push((r) => !exc.has(r.id));
    }
    if (f.external_id) {
      const { inc, exc } = plusMinus(f.external_id);
      if (inc.length) {
        const ids = new Set();
        for (const x of inc) for (const id of multiGet(extIdx, x)) ids.add(id);
        narrow(ids);
      }
      if (exc.size) preds.push((r) => r.external_id == null || !exc.has(r.external_id));
    }
    if (f.email_address) {
      const ids = new Set();
      for (const x of f.email_address) for (const id of multiGet(emailIdx, x.toLowerCase())) ids.add(id);
      narrow(ids);
    }
    if (f.username) {
      const want = new Set(f.username.map((x) => x.toLowerCase()));
      preds.push((r) => r.username != null && want.has(String(r.username).toLowerCase()));
    }
    if (f.phone_number) {
      const want = new Set(f.phone_number);
      preds.push((r) => (r.phone_numbers ?? []).some((p) => want.has(p.phone_number)));
    }
    // The stand-in has no web3 wallets, organizations or external accounts:
    // an include list matches nobody, an exclude-only list excludes nobody.
    for (const name of ['web3_wallet', 'organization_id', 'provider_user_id']) {
      if (f[name] && f[name].some((v) => !v.startsWith('-'))) narrow(new Set());
    }
    const lc = (s) => (s == null ? '' : String(s).toLowerCase());
    if (f.query !== undefined) {
      const needle = f.query.toLowerCase();
      preds.push((r) => lc(r.id).includes(needle) || lc(r.first_name).includes(needle) || lc(r.last_name).includes(needle)
        || lc(r.username).includes(needle) || (r.email_addresses ?? []).some((e) => lc(e.email_address).includes(needle))
        || (r.phone_numbers ?? []).some((p) => lc(p.phone_number).includes(needle)));
    }
    if (f.email_address_query !== undefined) {
      const needle = f.email_address_query.toLowerCase();
      preds.push((r) => (r.email_addresses ?? []).some((e) => lc(e.email_address).includes(needle)));
    }
    if (f.phone_number_query !== undefined) {
      const needle = f.phone_number_query.toLowerCase();
      preds.push((r) => (r.phone_numbers ?? []).some((p) => lc(p.phone_number).includes(needle)));
    }
    if (f.username_query !== undefined) {
      const needle = f.username_query.toLowerCase();
      preds.push((r) => lc(r.username).includes(needle));
    }
    if (f.name_query !== undefined) {
      const needle = f.name_query.toLowerCase();
      preds.push((r) => lc(r.first_name).includes(needle) || lc(r.last_name).includes(needle)
        || `${lc(r.first_name)} ${lc(r.last_name)}`.includes(needle));
    }
    if (f.banned !== undefined) preds.push((r) => (r.banned ?? false) === f.banned);
    const timeFilter = (name, field, before) => {
      if (f[name] === undefined) return;
      const t = f[name];
      preds.push((r) => r[field] != null && (before ? r[field] < t : r[field] > t));
    };
    timeFilter('created_at_before', 'created_at', true);
    timeFilter('created_at_after', 'created_at', false);
    timeFilter('last_sign_in_at_before', 'last_sign_in_at', true);
    timeFilter('last_sign_in_at_after', 'last_sign_in_at', false);
    timeFilter('last_active_at_before', 'last_active_at', true);
    timeFilter('last_active_at_after', 'last_active_at', false);
    timeFilter('last_active_at_since', 'last_active_at', false);

    if (candidates === null && preds.length === 0) return users;
    let list;
    if (candidates !== null) {
      list = [];
      for (const id of candidates) {
        const i = index.get(id);
        if (i !== undefined) list.push(users[i]);
      }
      list.sort(cmpKey);
    } else {
      list = users;
    }
    return preds.length ? list.filter((r) => preds.every((p) => p(r))) : list;
  }

  function sortValue(r, field) {
    switch (field) {
      case 'email_address': {
        const p = primaryEmail(r);
        return p ? p.email_address.toLowerCase() : null;
      }
      case 'phone_number': {
        const p = (r.phone_numbers ?? []).find((x) => x.id === r.primary_phone_number_id);
        return p ? p.phone_number : null;
      }
      case 'web3wallet':
        return null;
      default:
        return r[field] ?? null;
    }
  }

  function listPage(q) {
    // limit
    let limit = DEFAULT_LIMIT;
    const rawLimit = q.get('limit');
    if (rawLimit !== null) {
      const ok = /^\d+$/.test(rawLimit) && Number(rawLimit) >= 1 && Number(rawLimit) <= MAX_LIMIT;
      if (ok) limit = Number(rawLimit);
      else if (config.limit_out_of_range === 'reject' || !/^-?\d+$/.test(rawLimit)) {
        throw paramInvalid('limit', `limit must be an integer greater than 0 and less than ${MAX_LIMIT + 1}, got ${JSON.stringify(rawLimit).slice(0, 40)}.`);
      }
      // 'default': Clerk has been seen to answer limit=501 with its default page of 10.
    }
    // offset
    let offset = 0;
    const rawOffset = q.get('offset');
    if (rawOffset !== null) {
      if (!/^\d+$/.test(rawOffset)) throw paramInvalid('offset', 'offset must be an integer greater than or equal to 0.');
      offset = Number(rawOffset);
    }
    // order_by: only the first one counts (spec)
    const rawOrder = q.get('order_by') ?? '-created_at';
    let desc = false;
    let field = rawOrder;
    if (field.startsWith('-')) {
      desc = true;
      field = field.slice(1);
    } else if (field.startsWith('+')) {
      field = field.slice(1);
    }
    if (!ORDER_FIELDS.has(field)) {
      // An unencoded '+' arrives as a space (form encoding): not accepted
      // here, since nothing says Clerk accepts it. Send %2B.
      const hint = rawOrder.startsWith(' ') ? ' (a "+" must be sent as %2B)' : '';
      throw paramInvalid('order_by', `${rawOrder} does not match one of the allowed values for parameter order_by${hint}`);
    }
    // starting_after
    const after = q.get('starting_after');
    let cursorKey = null;
    if (after !== null) {
      if (offset !== 0) {
        throw new ApiError(422, 'form_conditional_param_disallowed', 'is not allowed',
          '`offset` isn\'t allowed when `starting_after` is present. Use one or the other.', { param_name: 'offset' });
      }
      if (field !== 'created_at') {
        throw new ApiError(422, 'form_conditional_param_disallowed', 'is not allowed',
          `\`starting_after\` isn't allowed when \`order_by\` is ${rawOrder}. Cursor pagination requires ordering by created_at.`,
          { param_name: 'starting_after' });
      }
      const i = index.get(after);
      if (i !== undefined) cursorKey = users[i];
      else if (tombstones.has(after) && config.cursor_missing === 'continue') cursorKey = tombstones.get(after);
      else {
        throw paramInvalid('starting_after', `starting_after is invalid: no user was found with id ${after}.`);
      }
    }
    const filters = parseFilters(q);
    const list = matching(filters);
    let page;
    if (field === 'created_at') {
      if (!desc) {
        const start = (cursorKey ? bound(list, cursorKey, true) : 0) + offset;
        page = list.slice(start, start + limit);
      } else {
        const end = (cursorKey ? bound(list, cursorKey, false) : list.length) - offset; // exclusive
        page = [];
        for (let i = end - 1; i >= 0 && page.length < limit; i--) page.push(list[i]);
      }
    } else {
      const dir = desc ? -1 : 1;
      const sorted = list.slice().sort((a, b) => {
        const va = sortValue(a, field);
        const vb = sortValue(b, field);
        if (va === null || vb === null) {
          if (va === null && vb === null) return dir * (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
          // Postgres default: NULLS LAST ascending, NULLS FIRST descending.
          return va === null ? dir : -dir;
        }
        if (va !== vb) return dir * (va < vb ? -1 : 1);
        return dir * (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      });
      page = sorted.slice(offset, offset + limit);
    }
    return page;
  }

  function noteUnknownParams(q, allowed) {
    for (const name of new Set(q.keys())) {
      if (!allowed.has(name)) stats.unknown_params[name] = (stats.unknown_params[name] ?? 0) + 1;
    }
  }

  const LIST_PARAMS = new Set([...KNOWN_FILTER_PARAMS, ...LIST_ONLY_PARAMS]);

  // --- hooks

  function runHookAction(action, page) {
    const pick = (id) => {
      if (id === '$last' || id === '$first') {
        if (!page || page.length === 0) throw new ControlError(400, `${id}: the request served no page`);
        return id === '$last' ? page[page.length - 1].id : page[0].id;
      }
      return id;
    };
    if (action.delete !== undefined) {
      const id = pick(action.delete);
      const r = removeRecord(id);
      return { delete: id, ok: r !== null };
    }
    if (action.update !== undefined) {
      const { id, ...fields } = action.update;
      const target = pick(id);
      patchRecord(target, fields);
      return { update: target, ok: true };
    }
    if (action.create !== undefined) {
      const list = Array.isArray(action.create) ? action.create : [action.create];
      return { create: list.map((b) => createRecord(b).id), ok: true };
    }
    throw new ControlError(400, 'an action is {"delete": id}, {"update": {"id": id, ...fields}} or {"create": user | [users]}');
  }

  function fireHooks(kind, page) {
    for (const h of hooks) {
      if (h.fired) continue;
      if (h.on === 'list' && kind !== 'list') continue;
      h.seen++;
      if (h.seen < h.after) continue;
      h.fired = true;
      const results = [];
      for (const a of h.actions) {
        try {
          results.push(runHookAction(a, page));
        } catch (e) {
          results.push({ error: e.message });
        }
      }
      h.results = results;
      stats.hooks_fired.push({ hook_id: h.id, after: h.after, results });
    }
  }

  function validateAction(a) {
    if (a === null || typeof a !== 'object' || Array.isArray(a)) throw new ControlError(400, 'an action must be an object');
    const keys = Object.keys(a);
    if (keys.length !== 1 || !['delete', 'update', 'create'].includes(keys[0])) {
      throw new ControlError(400, 'an action is {"delete": id}, {"update": {"id": id, ...fields}} or {"create": user | [users]}');
    }
    if (a.delete !== undefined && typeof a.delete !== 'string') throw new ControlError(400, 'delete takes a user id, "$first" or "$last"');
    if (a.update !== undefined && (typeof a.update !== 'object' || typeof a.update?.id !== 'string')) {
      throw new ControlError(400, 'update takes {"id": ..., fields}');
    }
  }

  // --- the rate limiter: a sliding 10-second window per instance (secret key)

  function rateCheck(t, pathKey) {
    const w = config.rate_window_ms;
    attempts.push(t);
    while (attempts.length && attempts[0] <= t - w) attempts.shift();
    if (attempts.length > stats.max_requests_in_window) stats.max_requests_in_window = attempts.length;
    if (t < blockedUntil) {
      stats.retry_after_violations++;
      if (stats.violations.length < 100) stats.violations.push({ at: t, path: pathKey, early_by_ms: blockedUntil - t });
      stats.rate_limited++;
      return Math.max(1, Math.ceil((blockedUntil - t) / 1000));
    }
    while (accepted.length && accepted[0] <= t - w) accepted.shift();
    const limit = config.rate_limit_per_10s;
    if (limit > 0 && accepted.length >= limit) {
      const retryAfter = Math.max(1, Math.ceil((accepted[0] + w - t) / 1000));
      blockedUntil = t + retryAfter * 1000;
      stats.rate_limited++;
      return retryAfter;
    }
    accepted.push(t);
    if (accepted.length > stats.max_served_in_window) stats.max_served_in_window = accepted.length;
    return 0;
  }

  // --- HTTP plumbing

  function send(res, status, body, headers = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  function readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          reject(new ControlError(413, 'body too large'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  async function readJson(req, required = true) {
    const text = await readBody(req);
    if (text.trim() === '') {
      if (required) throw new ControlError(400, 'a JSON body is required');
      return {};
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new ControlError(400, 'the body is not valid JSON');
    }
  }

  function countStatus(status) {
    stats.by_status[status] = (stats.by_status[status] ?? 0) + 1;
  }

  async function handleV1(req, res, url, pathKey, started) {
    stats.v1_requests++;
    const trace = traceId();
    const reply = async (status, body, headers = {}) => {
      if (config.latency_ms > 0) await new Promise((r) => setTimeout(r, config.latency_ms));
      countStatus(status);
      send(res, status, body, { 'Clerk-Trace-Id': trace, ...headers });
      if (config.verbose) {
        // Parameter names only: values can be email addresses.
        const names = [...new Set(url.searchParams.keys())].join(',');
        log(`${req.method} ${pathKey}${names ? ` params=${names}` : ''} ${status} ${Date.now() - started}ms`);
      }
    };
    const fail = (e, headers) => reply(e.status, clerkErrorBody(trace, e.code, e.short, e.long, e.meta), headers);

    // Auth: the instance is identified by its secret key (Clerk docs). A
    // request that names no instance does not count against any limit.
    const auth = req.headers.authorization;
    if (auth === undefined || auth === '') {
      return fail(new ApiError(401, 'authentication_invalid', 'Invalid authentication',
        'Unable to authenticate the request, you need to supply an active session'));
    }
    const m = /^Bearer (\S+)$/.exec(auth);
    if (!m) {
      return fail(new ApiError(401, 'authorization_header_format_invalid', 'Invalid Authorization header format',
        "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'"));
    }
    if (m[1] !== secretKey) {
      const msg = 'The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.';
      return fail(new ApiError(401, 'clerk_key_invalid', msg, msg));
    }

    const t = now();
    const retryAfter = rateCheck(t, pathKey);
    if (retryAfter > 0) {
      return fail(new ApiError(429, 'too_many_requests', 'Too many requests',
        'Too many requests, please try again later.'), { 'Retry-After': String(retryAfter) });
    }

    // Injected failures: two draws per request whatever the rate, so a seed
    // gives the same schedule however the rate is changed.
    const r1 = failRand();
    const r2 = failRand();
    if (r1 < config.fail_rate) {
      const status = config.fail_statuses[Math.floor(r2 * config.fail_statuses.length)];
      stats.injected_failures[status] = (stats.injected_failures[status] ?? 0) + 1;
      if (status === 429) {
        blockedUntil = Math.max(blockedUntil, t + 1000);
        return fail(new ApiError(429, 'too_many_requests', 'Too many requests',
          'Too many requests, please try again later.'), { 'Retry-After': '1' });
      }
      return fail(new ApiError(status, 'internal_clerk_error', 'Oops, an unexpected error occurred',
        "There was an internal error on our servers. We've been notified and are working on fixing it."));
    }

    try {
      if (req.method !== 'GET') {
        throw new ApiError(404, 'resource_not_found', 'not found',
          `The stand-in serves only GET /v1/users, /v1/users/count and /v1/users/{id}, not ${req.method} ${pathKey}.`);
      }
      const q = url.searchParams;
      if (pathKey === '/v1/users') {
        noteUnknownParams(q, LIST_PARAMS);
        const page = listPage(q);
        const body = JSON.stringify(page.map(toClerkUser));
        fireHooks('list', page);
        return reply(200, body);
      }
      if (pathKey === '/v1/users/count') {
        noteUnknownParams(q, KNOWN_FILTER_PARAMS);
        const n = matching(parseFilters(q)).length;
        fireHooks('other', null);
        return reply(200, { object: 'total_count', total_count: n });
      }
      if (pathKey === '/v1/users/{id}') {
        const id = decodeURIComponent(url.pathname.slice('/v1/users/'.length));
        const i = index.get(id);
        if (i === undefined) {
          throw new ApiError(404, 'resource_not_found', 'not found', `No user was found with id ${id}`);
        }
        const body = toClerkUser(users[i]);
        fireHooks('other', null);
        return reply(200, body);
      }
      throw new ApiError(404, 'resource_not_found', 'not found',
        `The stand-in serves only GET /v1/users, /v1/users/count and /v1/users/{id}, not ${req.method} ${pathKey}.`);
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      throw e;
    }
  }

  // --- the control surface

  function sendUsers(res, fields) {
    // Streamed in chunks: 100,000 full users are far too big for one string.
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
    const project = fields
      ? (r) => {
        const u = toClerkUser(r);
        const o = {};
        for (const f of fields) o[f] = u[f] ?? null;
        return o;
      }
      : toClerkUser;
    const snapshot = users.slice();
    let i = 0;
    res.write('[');
    const step = () => {
      let chunk = '';
      const end = Math.min(i + 1000, snapshot.length);
      for (; i < end; i++) chunk += (i ? ',' : '') + JSON.stringify(project(snapshot[i]));
      if (i >= snapshot.length) {
        res.end(chunk + ']');
        return;
      }
      if (res.write(chunk)) setImmediate(step);
      else res.once('drain', step);
    };
    step();
  }

  function specials() {
    const out = {};
    for (let i = 0; i < SPECIALS.length; i++) {
      const r = seededIds[i] !== undefined && index.has(seededIds[i]) ? seededIds[i] : null;
      out[SPECIALS[i][0]] = { id: r, why: SPECIALS[i][1] };
    }
    return out;
  }

  let seededIds = [];
  let seededWith = { count: 0, seed };

  function seedUsers(count, s) {
    const list = generateUsers(count, s);
    seededIds = list.slice(0, SPECIALS.length).map((r) => r.id);
    seededWith = { count, seed: s };
    replaceAll(list);
  }

  function resetAll() {
    replaceAll([]);
    seededIds = [];
    seededWith = { count: 0, seed };
    hooks = [];
    accepted = [];
    attempts = [];
    blockedUntil = 0;
    clockOffset = 0;
    traceCounter = 0;
    reseedRandom();
    resetStats();
  }

  async function handleControl(req, res, url, pathKey) {
    const ok = (body, status = 200) => send(res, status, body);
    const method = req.method;
    const p = url.pathname;

    if (p === '/_standin/users' && method === 'GET') {
      const fields = url.searchParams.get('fields');
      return sendUsers(res, fields ? fields.split(',').map((s) => s.trim()).filter(Boolean) : null);
    }
    if (p === '/_standin/users' && method === 'POST') {
      const body = await readJson(req);
      const list = Array.isArray(body) ? body : Array.isArray(body?.users) ? body.users : null;
      if (list) {
        // All or nothing: check ids first so a bad element adds no user.
        const ids = new Set();
        for (const b of list) {
          if (b && typeof b.id === 'string') {
            if (ids.has(b.id) || index.has(b.id)) throw new ControlError(409, `a user with id ${b.id} already exists`);
            ids.add(b.id);
          }
          checkUserFields(b);
        }
        return ok(list.map((b) => toClerkUser(createRecord(b))), 201);
      }
      return ok(toClerkUser(createRecord(body)), 201);
    }
    if (pathKey === '/_standin/users/{id}') {
      const id = decodeURIComponent(p.slice('/_standin/users/'.length));
      if (method === 'GET') {
        const i = index.get(id);
        if (i === undefined) throw new ControlError(404, `no user ${id}`);
        return ok(toClerkUser(users[i]));
      }
      if (method === 'PATCH') {
        const body = await readJson(req);
        return ok(toClerkUser(patchRecord(id, body)));
      }
      if (method === 'DELETE') {
        const r = removeRecord(id);
        if (!r) throw new ControlError(404, `no user ${id}`);
        return ok({ deleted: true, id, object: 'user' });
      }
    }
    if (p === '/_standin/reset' && method === 'POST') {
      await readBody(req);
      resetAll();
      return ok({ ok: true, users: 0 });
    }
    if (p === '/_standin/seed' && method === 'POST') {
      const body = await readJson(req, false);
      const count = body.count ?? 0;
      if (!Number.isSafeInteger(count) || count < 0 || count > 10_000_000) throw new ControlError(400, 'count must be an integer from 0 to 10000000');
      const s = body.seed ?? seed;
      if (typeof s !== 'number' && typeof s !== 'string') throw new ControlError(400, 'seed must be a number or a string');
      const t0 = Date.now();
      seedUsers(count, s);
      return ok({ ok: true, users: users.length, seed: s, ms: Date.now() - t0, specials: specials() });
    }
    if (p === '/_standin/specials' && method === 'GET') return ok(specials());
    if (p === '/_standin/stats' && method === 'GET') {
      return ok({ ...stats, users: users.length, now: now(), blocked_until: blockedUntil > now() ? blockedUntil : null, config });
    }
    if (p === '/_standin/stats/reset' && method === 'POST') {
      await readBody(req);
      resetStats();
      return ok({ ok: true });
    }
    if (p === '/_standin/config' && method === 'GET') return ok(config);
    if (p === '/_standin/config' && method === 'POST') {
      const body = await readJson(req);
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ControlError(400, 'config is a JSON object');
      const next = {};
      for (const [k, v] of Object.entries(body)) next[k] = validateConfigValue(k, v);
      Object.assign(config, next);
      return ok(config);
    }
    if (p === '/_standin/clock' && method === 'GET') return ok({ now: now(), offset_ms: clockOffset });
    if (p === '/_standin/clock' && method === 'POST') {
      const body = await readJson(req);
      const ms = body.advance_ms;
      if (!Number.isSafeInteger(ms) || ms < 0) throw new ControlError(400, 'advance_ms must be an integer >= 0');
      clockOffset += ms;
      return ok({ now: now(), offset_ms: clockOffset });
    }
    if (p === '/_standin/on-request' && method === 'GET') return ok(hooks);
    if (p === '/_standin/on-request' && method === 'DELETE') {
      hooks = [];
      return ok({ ok: true });
    }
    if (p === '/_standin/on-request' && method === 'POST') {
      const body = await readJson(req);
      const after = body.after;
      if (!Number.isSafeInteger(after) || after < 1) throw new ControlError(400, 'after must be an integer >= 1');
      const on = body.on ?? 'list';
      if (on !== 'list' && on !== 'any') throw new ControlError(400, 'on must be "list" or "any"');
      const actions = body.actions ?? (body.action !== undefined ? [body.action] : null);
      if (!Array.isArray(actions) || actions.length === 0) throw new ControlError(400, 'give "action": {...} or "actions": [...]');
      actions.forEach(validateAction);
      const hook = { id: ++hookSeq, after, on, actions, seen: 0, fired: false, results: null };
      hooks.push(hook);
      return ok({ hook_id: hook.id }, 201);
    }
    if (p === '/_standin' || p === '/_standin/') {
      return ok({
        endpoints: [
          'GET /_standin/users[?fields=a,b]', 'POST /_standin/users', 'GET|PATCH|DELETE /_standin/users/{id}',
          'POST /_standin/reset', 'POST /_standin/seed {"count","seed"}', 'GET /_standin/specials',
          'GET /_standin/stats', 'POST /_standin/stats/reset', 'GET|POST /_standin/config',
          'GET|POST /_standin/clock {"advance_ms"}', 'GET|POST|DELETE /_standin/on-request',
        ],
        seeded: seededWith,
      });
    }
    throw new ControlError(404, `no control endpoint ${method} ${p}`);
  }

  async function handle(req, res) {
    const started = Date.now();
    stats.requests_total++;
    let url;
    try {
      url = new URL(req.url, 'http://127.0.0.1');
    } catch {
      return send(res, 400, { error: 'bad request target' });
    }
    const pathKey = normalizePath(url.pathname);
    const key = `${req.method} ${pathKey}`;
    stats.per_path[key] = (stats.per_path[key] ?? 0) + 1;

    // Loopback only, and not reachable from a web page: a browser names
    // another Host after DNS rebinding and always sends Origin cross-site.
    if (!isLoopbackAddress(req.socket.remoteAddress) || !isLoopbackHost(hostHeaderName(req.headers.host))) {
      return send(res, 403, { error: 'the stand-in answers loopback requests with a loopback Host only' });
    }
    try {
      if (url.pathname.startsWith('/v1/')) return await handleV1(req, res, url, pathKey, started);
      if (url.pathname === '/_standin' || url.pathname.startsWith('/_standin/')) {
        if (req.headers.origin !== undefined) {
          return send(res, 403, { error: 'the control surface refuses requests that carry an Origin header (browsers)' });
        }
        await handleControl(req, res, url, pathKey);
        if (config.verbose) log(`${req.method} ${pathKey} ${res.statusCode} ${Date.now() - started}ms`);
        return undefined;
      }
      return send(res, 404, { error: 'not found: Clerk paths start with /v1/, the control surface with /_standin/' });
    } catch (e) {
      if (e instanceof ControlError) return send(res, e.status, { error: e.message });
      if (!res.headersSent) return send(res, 500, { error: `stand-in bug: ${e && e.message}` });
      res.destroy();
      return undefined;
    }
  }

  // --- start state
  reseedRandom();
  resetStats();
  if (options.users) seedUsers(options.users, seed);

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) send(res, 500, { error: `stand-in bug: ${e && e.message}` });
    });
  });
  server.keepAliveTimeout = 30_000;

  return {
    server,
    config,
    /** Listen on host:port (port 0: any free one); resolves to the port. */
    listen(port = DEFAULT_PORT, host = DEFAULT_HOST) {
      if (!isLoopbackHost(host)) return Promise.reject(new Error(`host ${host} is not a loopback address`));
      return new Promise((resolve, reject) => {
        const onError = (e) => reject(e);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          resolve(server.address().port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
    userCount: () => users.length,
  };
}

// ---------------------------------------------------------------------- CLI

const USAGE = `usage: node standins/clerk-api/server.mjs [flags]

A loopback stand-in for Clerk's Backend API (GET /v1/users, /v1/users/count,
/v1/users/{id}) with a control surface under /_standin/. See README.md.

  --port N                 listen port, 0 = any free one     (env CLERK_STANDIN_PORT, default ${DEFAULT_PORT})
  --host H                 loopback host only                (env CLERK_STANDIN_HOST, default ${DEFAULT_HOST})
  --secret-key K           the Bearer key /v1/* wants        (env CLERK_STANDIN_SECRET_KEY, default ${DEFAULT_SECRET_KEY})
  --users N                seed N deterministic users        (env CLERK_STANDIN_USERS, default 0)
  --seed S                 seed for users and failures       (env CLERK_STANDIN_SEED, default 1)
  --rate-limit-per-10s N   requests per 10 s, 0 = no limit   (env RATE_LIMIT_PER_10S, default ${DEFAULT_RATE_LIMIT})
  --fail-rate F            fraction of /v1 requests failed   (env CLERK_STANDIN_FAIL_RATE, default 0)
  --fail-statuses L        what a failure answers            (env CLERK_STANDIN_FAIL_STATUSES, default 500,429)
  --latency-ms N           delay before each /v1 answer      (env CLERK_STANDIN_LATENCY_MS, default 0)
  --limit-out-of-range M   reject (422) | default (page of 10) (default reject)
  --cursor-missing M       continue | error (422) for a starting_after user deleted meanwhile (default continue)
  --verbose                one line per request (no personal data)
  --exit-with-parent       exit when the parent process goes away (re-parented, or stdin pipe closed)
  --parent-pid N           exit when process N is gone (race-free: the spawner passes its own pid)
  --help                   this text
`;

function parseArgs(argv, env) {
  const o = {
    port: env.CLERK_STANDIN_PORT,
    host: env.CLERK_STANDIN_HOST,
    'secret-key': env.CLERK_STANDIN_SECRET_KEY,
    users: env.CLERK_STANDIN_USERS,
    seed: env.CLERK_STANDIN_SEED,
    'rate-limit-per-10s': env.RATE_LIMIT_PER_10S ?? env.CLERK_STANDIN_RATE_LIMIT_PER_10S,
    'fail-rate': env.CLERK_STANDIN_FAIL_RATE,
    'fail-statuses': env.CLERK_STANDIN_FAIL_STATUSES,
    'latency-ms': env.CLERK_STANDIN_LATENCY_MS,
    'limit-out-of-range': undefined,
    'cursor-missing': undefined,
    verbose: env.CLERK_STANDIN_VERBOSE === '1' || env.CLERK_STANDIN_VERBOSE === 'true',
    'exit-with-parent': false,
    'parent-pid': undefined,
    help: false,
  };
  const flags = new Set(['verbose', 'exit-with-parent', 'help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (!(name in o)) throw new Error(`unknown flag --${name}`);
    if (flags.has(name)) {
      if (eq !== -1) throw new Error(`--${name} takes no value`);
      o[name] = true;
      continue;
    }
    const value = eq === -1 ? argv[++i] : a.slice(eq + 1);
    if (value === undefined) throw new Error(`--${name} needs a value`);
    o[name] = value;
  }
  const int = (name, v, min) => {
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(String(v)) || Number(v) < min) throw new Error(`--${name} must be an integer >= ${min}, not ${v}`);
    return Number(v);
  };
  const port = int('port', o.port, 0) ?? DEFAULT_PORT;
  if (port > 65535) throw new Error(`--port must be at most 65535, not ${port}`);
  let failRate;
  if (o['fail-rate'] !== undefined && o['fail-rate'] !== '') {
    failRate = Number(o['fail-rate']);
    if (!(failRate >= 0 && failRate <= 1)) throw new Error(`--fail-rate must be from 0 to 1, not ${o['fail-rate']}`);
  }
  const seed = o.seed === undefined || o.seed === '' ? 1 : (/^\d+$/.test(o.seed) ? Number(o.seed) : o.seed);
  return {
    help: o.help,
    port,
    host: o.host || DEFAULT_HOST,
    exitWithParent: o['exit-with-parent'],
    parentPid: int('parent-pid', o['parent-pid'], 1),
    standin: {
      secretKey: o['secret-key'] || DEFAULT_SECRET_KEY,
      users: int('users', o.users, 0) ?? 0,
      seed,
      rate_limit_per_10s: int('rate-limit-per-10s', o['rate-limit-per-10s'], 0),
      fail_rate: failRate,
      fail_statuses: o['fail-statuses'] || undefined,
      latency_ms: int('latency-ms', o['latency-ms'], 0),
      limit_out_of_range: o['limit-out-of-range'],
      cursor_missing: o['cursor-missing'],
      verbose: o.verbose,
    },
  };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), process.env);
  } catch (e) {
    process.stderr.write(`clerk stand-in: ${e.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!isLoopbackHost(args.host)) {
    process.stderr.write(`clerk stand-in: refusing to listen on ${args.host}: it serves loopback only (127.0.0.1, ::1, localhost)\n`);
    process.exit(2);
  }
  let standin;
  try {
    standin = createStandin(args.standin);
  } catch (e) {
    process.stderr.write(`clerk stand-in: ${e.message}\n`);
    process.exit(2);
  }
  let port;
  try {
    port = await standin.listen(args.port, args.host);
  } catch (e) {
    const why = e.code === 'EADDRINUSE' ? 'is already in use'
      : e.code === 'EACCES' ? 'needs privileges this user does not have'
        : e.code === 'EADDRNOTAVAIL' ? `cannot be bound on ${args.host}`
          : `could not be opened (${e.code || e.message})`;
    process.stderr.write(`clerk stand-in: port ${args.port} ${why}\n`);
    process.exit(1);
  }
  const shown = args.host.includes(':') ? `[${args.host}]` : args.host;
  process.stdout.write(`clerk stand-in listening on http://${shown}:${port}\n`);

  const stop = () => {
    standin.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (args.exitWithParent) {
    // The parent is gone when we are re-parented, or when stdin is a pipe
    // from it and reaches its end.
    if (process.ppid !== PARENT_PID) stop();
    setInterval(() => {
      if (process.ppid !== PARENT_PID) stop();
    }, 500).unref();
    let stdinIsPipe = false;
    try {
      stdinIsPipe = fs.fstatSync(0).isFIFO();
    } catch {
      // no stdin
    }
    if (stdinIsPipe) {
      process.stdin.on('end', stop);
      process.stdin.on('error', stop);
      process.stdin.resume();
    }
  }
  if (args.parentPid !== undefined) {
    const alive = () => {
      try {
        process.kill(args.parentPid, 0);
        return true;
      } catch (e) {
        return e.code === 'EPERM'; // exists, but not ours to signal
      }
    };
    if (!alive()) stop();
    setInterval(() => {
      if (!alive()) stop();
    }, 500).unref();
  }
}

const invokedDirectly = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) main();
