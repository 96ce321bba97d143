// Tests of the Clerk Backend API stand-in: `node --test standins/`.
// Every test drives a real child process on an ephemeral loopback port, as
// the Rust integration tests do. Nothing here depends on timing except where
// a test says so: the rate-limit tests count requests in a window made long
// enough that a stalled machine cannot split it, and move the stand-in's
// clock instead of sleeping.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('./server.mjs', import.meta.url));
const KEY = 'sk_test_standin';

/** Start the stand-in; resolves once it printed its ready line. */
function start(args = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill();
      reject(new Error(`no ready line in 15 s; stdout: ${out} stderr: ${err}`));
    }, 15_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /clerk stand-in listening on http:\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
      if (m && !proc.ready) {
        proc.ready = true;
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({
          proc,
          port,
          base: `http://127.0.0.1:${port}`,
          stdout: () => out,
          stop: () => new Promise((r) => {
            if (proc.exitCode !== null) return r();
            proc.once('exit', () => r());
            proc.kill('SIGTERM');
          }),
        });
      }
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.once('exit', (code) => {
      if (!proc.ready) {
        clearTimeout(timer);
        reject(new Error(`exited ${code} before ready; stderr: ${err}`));
      }
    });
  });
}

/** Run the stand-in to its exit (for the ways it refuses to start). */
function runToExit(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`still running after 15 s; stdout: ${out}`));
    }, 15_000);
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out, stderr: err });
    });
  });
}

let S; // the shared stand-in

async function api(path, { key = KEY, auth } = {}) {
  const headers = {};
  if (auth !== undefined) headers.Authorization = auth;
  else if (key !== null) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(S.base + path, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : undefined };
}

async function ctl(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(S.base + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Reset, set the test's config, seed `count` users. */
async function fresh(count = 0, seed = 1, config = {}) {
  assert.equal((await ctl('POST', '/_standin/reset')).status, 200);
  const cfg = {
    rate_limit_per_10s: 0, rate_window_ms: 10_000, fail_rate: 0, fail_statuses: [500, 429], latency_ms: 0,
    limit_out_of_range: 'reject', cursor_missing: 'continue', ...config,
  };
  assert.equal((await ctl('POST', '/_standin/config', cfg)).status, 200);
  if (count) assert.equal((await ctl('POST', '/_standin/seed', { count, seed })).status, 200);
}

/** The truth: every user, oldest first. */
async function truth() {
  return (await ctl('GET', '/_standin/users')).body;
}

function assertClerkError(r, status, code, paramName) {
  assert.equal(r.status, status, r.text);
  assert.ok(Array.isArray(r.body.errors) && r.body.errors.length === 1, r.text);
  const e = r.body.errors[0];
  assert.equal(e.code, code, r.text);
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.long_message, 'string');
  assert.equal(typeof r.body.clerk_trace_id, 'string');
  if (paramName) assert.equal(e.meta?.param_name, paramName, r.text);
}

/** Walk /v1/users with starting_after; returns the users in order. */
async function walk(order, limit, extra = '') {
  const seen = [];
  let cursor = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const q = `?limit=${limit}&order_by=${encodeURIComponent(order)}${cursor ? `&starting_after=${cursor}` : ''}${extra}`;
    const r = await api(`/v1/users${q}`);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.body);
    if (r.body.length < limit) return seen;
    cursor = r.body[r.body.length - 1].id;
  }
  throw new Error('the walk did not end');
}

// The user keys of a real Clerk user (captured user.created `data`), plus
// create_organizations_limit from Clerk's webhook OpenAPI example.
const USER_KEYS = [
  'backup_code_enabled', 'banned', 'create_organization_enabled', 'create_organizations_limit', 'created_at',
  'delete_self_enabled', 'email_addresses', 'enterprise_accounts', 'external_accounts', 'external_id', 'first_name',
  'has_image', 'id', 'image_url', 'last_active_at', 'last_name', 'last_sign_in_at', 'legal_accepted_at', 'locked',
  'lockout_expires_in_seconds', 'mfa_disabled_at', 'mfa_enabled_at', 'object', 'passkeys', 'password_enabled',
  'phone_numbers', 'primary_email_address_id', 'primary_phone_number_id', 'primary_web3_wallet_id',
  'private_metadata', 'profile_image_url', 'public_metadata', 'saml_accounts', 'totp_enabled', 'two_factor_enabled',
  'unsafe_metadata', 'updated_at', 'username', 'verification_attempts_remaining', 'web3_wallets',
];
const EMAIL_KEYS = ['created_at', 'email_address', 'id', 'linked_to', 'matches_sso_connection', 'object', 'reserved',
  'updated_at', 'verification'];

before(async () => {
  S = await start(['--rate-limit-per-10s', '0', '--verbose']);
});

after(async () => {
  if (S) await S.stop();
});

test('prints its real port when started with --port 0 and answers at once', async () => {
  assert.ok(S.port > 0);
  const r = await ctl('GET', '/_standin/stats');
  assert.equal(r.status, 200);
});

test('auth: no key, a malformed header and a wrong key are 401s in Clerk\'s error shape', async () => {
  await fresh(3);
  assertClerkError(await api('/v1/users', { key: null }), 401, 'authentication_invalid');
  assertClerkError(await api('/v1/users', { auth: 'Basic abc' }), 401, 'authorization_header_format_invalid');
  assertClerkError(await api('/v1/users', { auth: KEY }), 401, 'authorization_header_format_invalid');
  assertClerkError(await api('/v1/users', { key: 'sk_test_wrong' }), 401, 'clerk_key_invalid');
  assertClerkError(await api('/v1/users/count', { key: 'sk_test_wrong' }), 401, 'clerk_key_invalid');
  assertClerkError(await api('/v1/users/user_x', { key: null }), 401, 'authentication_invalid');
  const ok = await api('/v1/users');
  assert.equal(ok.status, 200);
  assert.ok(ok.headers.get('clerk-trace-id'));
});

test('GET /v1/users is a bare array of Clerk user objects: 10 by default, newest first', async () => {
  await fresh(25, 3);
  const r = await api('/v1/users');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.ok(Array.isArray(r.body), 'a bare array, no {data, total_count} wrapper');
  assert.equal(r.body.length, 10);
  const all = await truth();
  assert.deepEqual(r.body.map((u) => u.id), all.slice(-10).reverse().map((u) => u.id));
  for (const u of r.body) {
    assert.deepEqual(Object.keys(u).sort(), USER_KEYS);
    assert.equal(u.object, 'user');
    assert.match(u.id, /^user_[0-9A-Za-z]{27}$/);
    assert.ok(Number.isSafeInteger(u.created_at) && u.created_at > 1.6e12, 'Unix milliseconds');
    assert.ok(u.updated_at >= u.created_at);
    for (const e of u.email_addresses) {
      assert.deepEqual(Object.keys(e).sort(), EMAIL_KEYS);
      assert.match(e.id, /^idn_[0-9A-Za-z]{27}$/);
      assert.equal(e.object, 'email_address');
      assert.deepEqual(e.linked_to, []);
      assert.ok(['verified', 'unverified'].includes(e.verification.status));
      assert.equal(typeof e.verification.strategy, 'string');
    }
  }
  for (let i = 1; i < r.body.length; i++) assert.ok(r.body[i - 1].created_at > r.body[i].created_at);
});

test('user ids are KSUIDs, as Clerk\'s: they sort by creation time to the second', async () => {
  const all = await truth();
  assert.ok(all.length > 10);
  let pairs = 0;
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1], all[i]];
    if (Math.floor(a.created_at / 1000) < Math.floor(b.created_at / 1000)) {
      assert.ok(a.id < b.id, `${a.id} (created ${a.created_at}) sorts before ${b.id} (created ${b.created_at})`);
      pairs += 1;
    }
  }
  assert.ok(pairs > 0);
  // The first 4 bytes of the 20 are the seconds since the KSUID epoch.
  const seconds = BigInt(Math.floor(all[0].created_at / 1000)) - 1_400_000_000n;
  let n = 0n;
  for (const c of all[0].id.slice('user_'.length)) {
    n = n * 62n + BigInt('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.indexOf(c));
  }
  assert.equal(n >> 128n, seconds, 'the first 4 bytes are the seconds since the KSUID epoch');
});

test('limit must be 1..500 and offset >= 0, else 422 form_param_value_invalid', async () => {
  await fresh(600, 4);
  for (const bad of ['0', '501', '-1', 'abc', '', '10.5', '1e2']) {
    assertClerkError(await api(`/v1/users?limit=${bad}`), 422, 'form_param_value_invalid', 'limit');
  }
  for (const bad of ['-1', 'x', '']) {
    assertClerkError(await api(`/v1/users?offset=${bad}`), 422, 'form_param_value_invalid', 'offset');
  }
  assert.equal((await api('/v1/users?limit=1')).body.length, 1);
  assert.equal((await api('/v1/users?limit=500')).body.length, 500);
  assert.equal((await api('/v1/users?limit=500&offset=500')).body.length, 100, 'a page shorter than limit is the last');
  assert.equal((await api('/v1/users?limit=5&offset=600')).body.length, 0);
  // What Clerk has been seen to do instead (clerk-sdk-python#166): a page of 10.
  await ctl('POST', '/_standin/config', { limit_out_of_range: 'default' });
  assert.equal((await api('/v1/users?limit=501')).body.length, 10);
  assertClerkError(await api('/v1/users?limit=abc'), 422, 'form_param_value_invalid', 'limit');
});

test('starting_after: 422 with a non-zero offset, with a non-created_at order or an unknown id', async () => {
  await fresh(20, 5);
  const [first] = (await api('/v1/users?limit=1')).body;
  assertClerkError(await api(`/v1/users?starting_after=${first.id}&offset=3`), 422, 'form_conditional_param_disallowed', 'offset');
  assert.equal((await api(`/v1/users?starting_after=${first.id}&offset=0`)).status, 200);
  assertClerkError(await api(`/v1/users?starting_after=${first.id}&order_by=-updated_at`), 422,
    'form_conditional_param_disallowed', 'starting_after');
  for (const order of ['created_at', '%2Bcreated_at', '-created_at']) {
    assert.equal((await api(`/v1/users?starting_after=${first.id}&order_by=${order}`)).status, 200, order);
  }
  assertClerkError(await api('/v1/users?starting_after=user_2nope'), 422, 'form_param_value_invalid', 'starting_after');
  assertClerkError(await api('/v1/users?order_by=-shoe_size'), 422, 'form_param_value_invalid', 'order_by');
  const plus = await api('/v1/users?order_by=+created_at'); // '+' unencoded is a space
  assertClerkError(plus, 422, 'form_param_value_invalid', 'order_by');
  assert.match(plus.body.errors[0].long_message, /%2B/);
});

test('cursor paging walks every user exactly once, in created_at order, both ways', async () => {
  await fresh(1234, 6);
  const all = await truth();
  const asc = all.map((u) => u.id);
  const down = await walk('-created_at', 100);
  assert.equal(down.length, 1234);
  assert.deepEqual(down.map((u) => u.id), [...asc].reverse());
  const up = await walk('+created_at', 500);
  assert.deepEqual(up.map((u) => u.id), asc);
  for (let i = 1; i < up.length; i++) assert.ok(up[i - 1].created_at < up[i].created_at);
  // offset paging gives the same order
  const byOffset = [];
  for (let off = 0; off < 1234; off += 300) byOffset.push(...(await api(`/v1/users?limit=300&offset=${off}`)).body);
  assert.deepEqual(byOffset.map((u) => u.id), [...asc].reverse());
  // a filtered walk pages within the filter
  const someIds = asc.filter((_, i) => i % 7 === 0).slice(0, 60);
  const filtered = await walk('-created_at', 25, someIds.map((id) => `&user_id=${id}`).join(''));
  assert.deepEqual(filtered.map((u) => u.id), [...someIds].reverse());
});

test('order_by other fields: sorted with offset paging; only the first order_by counts', async () => {
  await fresh(80, 18);
  const all = await truth();
  const byUpdated = [...all].sort((a, b) => b.updated_at - a.updated_at || (a.id < b.id ? 1 : -1));
  const pages = [];
  for (let off = 0; off < 80; off += 30) pages.push(...(await api(`/v1/users?order_by=-updated_at&limit=30&offset=${off}`)).body);
  assert.deepEqual(pages.map((u) => u.id), byUpdated.map((u) => u.id));
  const byName = (await api('/v1/users?order_by=first_name&limit=500')).body;
  const names = byName.map((u) => u.first_name);
  const firstNull = names.indexOf(null);
  assert.ok(firstNull > 0, 'some first names are null');
  assert.ok(names.slice(firstNull).every((n) => n === null), 'ascending: nulls last');
  for (let i = 1; i < firstNull; i++) assert.ok(names[i - 1] <= names[i]);
  const twice = await api('/v1/users?order_by=%2Bcreated_at&order_by=-created_at&limit=3');
  assert.deepEqual(twice.body.map((u) => u.id), all.slice(0, 3).map((u) => u.id));
});

test('user_id, email_address and external_id may repeat; different filters narrow each other', async () => {
  await fresh(40, 7);
  const all = await truth();
  const sp = (await ctl('GET', '/_standin/specials')).body;
  const a = all[20];
  const b = all[30];
  const emailOf = (u) => u.email_addresses.find((e) => e.id === u.primary_email_address_id).email_address;

  let r = await api(`/v1/users?user_id=${a.id}&user_id=${b.id}&user_id=user_2doesNotExist000000000000`);
  assert.deepEqual(r.body.map((u) => u.id), [b.id, a.id], 'found ones only, newest first');

  r = await api(`/v1/users?email_address=${encodeURIComponent(emailOf(a).toUpperCase())}&email_address=nobody@example.com`);
  assert.deepEqual(r.body.map((u) => u.id), [a.id], 'email lookup ignores case');

  const mixed = all.find((u) => u.id === sp.mixed_case_email.id);
  r = await api(`/v1/users?email_address=${encodeURIComponent(emailOf(mixed).toLowerCase())}`);
  assert.deepEqual(r.body.map((u) => u.id), [mixed.id]);

  const ext = all.find((u) => u.id === sp.external_id.id);
  assert.ok(ext.external_id);
  r = await api(`/v1/users?external_id=${encodeURIComponent(ext.external_id)}&external_id=ext_none`);
  assert.deepEqual(r.body.map((u) => u.id), [ext.id]);

  // A second email (not the primary) finds its user too.
  const two = all.find((u) => u.id === sp.two_emails.id);
  r = await api(`/v1/users?email_address=${encodeURIComponent(two.email_addresses[0].email_address)}`);
  assert.deepEqual(r.body.map((u) => u.id), [two.id]);

  // Different filters: AND. Values of one filter: OR.
  r = await api(`/v1/users?user_id=${a.id}&email_address=${encodeURIComponent(emailOf(b))}`);
  assert.deepEqual(r.body, []);
  r = await api(`/v1/users?user_id=${a.id}&user_id=${b.id}&email_address=${encodeURIComponent(emailOf(b))}`);
  assert.deepEqual(r.body.map((u) => u.id), [b.id]);

  // '-' excludes (spec: user_id and external_id); '+' (sent as %2B) includes.
  r = await api(`/v1/users?limit=500&user_id=-${a.id}`);
  assert.equal(r.body.length, 39);
  assert.ok(!r.body.some((u) => u.id === a.id));
  r = await api(`/v1/users?user_id=%2B${a.id}`);
  assert.deepEqual(r.body.map((u) => u.id), [a.id]);

  // At most 100 values.
  const many = Array.from({ length: 101 }, (_, i) => `user_id=user_${i}`).join('&');
  assertClerkError(await api(`/v1/users?${many}`), 422, 'form_param_array_size_exceeded', 'user_id');
  const hundred = Array.from({ length: 100 }, (_, i) => `user_id=user_${i}`).join('&');
  assert.equal((await api(`/v1/users?${hundred}`)).status, 200);
});

test('GET /v1/users/count is {"object":"total_count","total_count":N} and takes the same filters', async () => {
  await fresh(57, 8);
  const all = await truth();
  let r = await api('/v1/users/count');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { object: 'total_count', total_count: 57 });
  r = await api(`/v1/users/count?user_id=${all[1].id}&user_id=${all[2].id}&user_id=user_2none`);
  assert.deepEqual(r.body, { object: 'total_count', total_count: 2 });
  r = await api(`/v1/users/count?limit=3&offset=2&order_by=bogus`);
  assert.equal(r.body.total_count, 57, 'count has no paging parameters');
});

test('GET /v1/users/{id}: the user, or 404 resource_not_found', async () => {
  await fresh(5, 9);
  const all = await truth();
  const r = await api(`/v1/users/${all[2].id}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, all[2]);
  const nf = await api('/v1/users/user_2missing');
  assertClerkError(nf, 404, 'resource_not_found');
  assert.match(nf.body.errors[0].long_message, /user_2missing/);
});

test('rate limit: over the window is 429 with an integer Retry-After; early retries are counted', async () => {
  // A 10-minute window: the test counts requests, no stall can split them.
  await fresh(3, 10, { rate_limit_per_10s: 5, rate_window_ms: 600_000 });
  for (let i = 0; i < 3; i++) assert.equal((await api('/v1/users', { key: 'sk_test_wrong' })).status, 401);
  const statuses = [];
  let retryAfter = null;
  for (let i = 0; i < 8; i++) {
    const r = await api('/v1/users?limit=1');
    statuses.push(r.status);
    if (r.status === 429) {
      assertClerkError(r, 429, 'too_many_requests');
      const ra = r.headers.get('retry-after');
      assert.match(ra, /^\d+$/);
      assert.ok(Number(ra) >= 1 && Number(ra) <= 600, ra);
      retryAfter ??= Number(ra);
    }
  }
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
  let st = (await ctl('GET', '/_standin/stats')).body;
  assert.equal(st.rate_limited, 3);
  assert.equal(st.retry_after_violations, 2, 'the 2nd and 3rd 429 came before the first Retry-After expired');
  assert.equal(st.max_served_in_window, 5);
  assert.equal(st.max_requests_in_window, 8, '401s do not count: they name no instance');
  assert.equal(st.by_status['401'], 3);

  // Once Retry-After has passed (moved on the stand-in's clock), it serves again.
  await ctl('POST', '/_standin/clock', { advance_ms: 600_001 });
  assert.equal((await api('/v1/users?limit=1')).status, 200);
  st = (await ctl('GET', '/_standin/stats')).body;
  assert.equal(st.retry_after_violations, 2);

  // With Clerk's own 10-second window Retry-After is 1..10 seconds.
  await fresh(3, 10, { rate_limit_per_10s: 1 });
  const t0 = Date.now();
  assert.equal((await api('/v1/users')).status, 200);
  const r = await api('/v1/users');
  if (Date.now() - t0 < 9_000) {
    assert.equal(r.status, 429);
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 10, String(ra));
  }
});

test('fail-rate answers a seeded share of requests with 500 or 429', async () => {
  await fresh(3, 11, { fail_rate: 1, fail_statuses: [500] });
  assertClerkError(await api('/v1/users'), 500, 'internal_clerk_error');

  await fresh(3, 11, { fail_rate: 1, fail_statuses: [429] });
  const r = await api('/v1/users');
  assertClerkError(r, 429, 'too_many_requests');
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal((await ctl('GET', '/_standin/stats')).body.injected_failures['429'], 1);

  // The same seed gives the same schedule.
  const schedule = async () => {
    await fresh(3, 11, { fail_rate: 0.5, fail_statuses: [500, 503] });
    const out = [];
    for (let i = 0; i < 30; i++) out.push((await api('/v1/users?limit=1')).status);
    return out;
  };
  const one = await schedule();
  const two = await schedule();
  assert.deepEqual(one, two);
  assert.ok(one.includes(200) && one.some((s) => s >= 500), one.join(' '));
  const st = (await ctl('GET', '/_standin/stats')).body;
  assert.equal((st.injected_failures['500'] ?? 0) + (st.injected_failures['503'] ?? 0), one.filter((s) => s >= 500).length);
});

test('control surface: create, patch (updated_at strictly increases), delete', async () => {
  await fresh(5, 12);
  const before = await truth();
  let r = await ctl('POST', '/_standin/users', { email: 'new.person@example.com', first_name: 'New' });
  assert.equal(r.status, 201);
  const created = r.body;
  assert.match(created.id, /^user_/);
  assert.equal(created.email_addresses[0].email_address, 'new.person@example.com');
  assert.equal(created.email_addresses[0].verification.status, 'verified');
  assert.equal(created.primary_email_address_id, created.email_addresses[0].id);
  assert.ok(created.created_at > before[before.length - 1].created_at, 'the stand-in clock runs ahead of the seed');
  assert.equal((await api('/v1/users?limit=1')).body[0].id, created.id, 'newest first');

  r = await ctl('POST', '/_standin/users', [
    { id: 'user_2fixedId0000000000000000000', email: 'a@example.com', email_verified: false },
    { email_addresses: [{ email_address: 'b@example.com' }], external_id: 'ext-b' },
  ]);
  assert.equal(r.status, 201);
  assert.equal(r.body[0].id, 'user_2fixedId0000000000000000000');
  assert.equal(r.body[0].email_addresses[0].verification.status, 'unverified');
  assert.equal(r.body[1].external_id, 'ext-b');
  assert.ok(r.body[1].created_at > r.body[0].created_at);
  assert.equal((await ctl('POST', '/_standin/users', { id: 'user_2fixedId0000000000000000000' })).status, 409);

  let last = created.updated_at;
  for (let i = 0; i < 3; i++) {
    r = await ctl('PATCH', `/_standin/users/${created.id}`, { first_name: `Renamed ${i}` });
    assert.equal(r.status, 200);
    assert.ok(r.body.updated_at > last);
    last = r.body.updated_at;
  }
  // Strictly later than the last version even when that is ahead of the clock
  // (set on purpose here), so two edits in one millisecond differ too.
  const ahead = Date.now() + 86_400_000;
  r = await ctl('PATCH', `/_standin/users/${created.id}`, { updated_at: ahead });
  assert.equal(r.body.updated_at, ahead);
  r = await ctl('PATCH', `/_standin/users/${created.id}`, { first_name: 'Renamed 2' });
  assert.equal(r.body.updated_at, ahead + 1);
  r = await ctl('PATCH', `/_standin/users/${created.id}`, { email: 'changed@example.com', email_verified: false });
  assert.equal(r.body.email_addresses[0].email_address, 'changed@example.com');
  assert.equal(r.body.email_addresses[0].verification.status, 'unverified');
  assert.equal((await api('/v1/users?email_address=changed@example.com')).body[0].id, created.id);
  assert.deepEqual((await api('/v1/users?email_address=new.person@example.com')).body, []);
  assert.equal((await ctl('PATCH', `/_standin/users/${created.id}`, { created_at: 5 })).status, 400);
  assert.equal((await api(`/v1/users/${created.id}`)).body.first_name, 'Renamed 2');

  assert.equal((await ctl('DELETE', `/_standin/users/${created.id}`)).status, 200);
  assertClerkError(await api(`/v1/users/${created.id}`), 404, 'resource_not_found');
  assert.equal((await ctl('DELETE', `/_standin/users/${created.id}`)).status, 404);
  assert.equal((await truth()).length, 7);
  assert.equal((await api('/v1/users/count')).body.total_count, 7);
});

test('seeding is deterministic, and the special users are there', async () => {
  await fresh(50, 42);
  const one = await truth();
  await fresh(50, 42);
  assert.deepEqual(await truth(), one);
  await fresh(50, 43);
  assert.notDeepEqual((await truth()).map((u) => u.id), one.map((u) => u.id));

  await fresh(50, 42);
  const sp = (await ctl('GET', '/_standin/specials')).body;
  const get = async (name) => (await api(`/v1/users/${sp[name].id}`)).body;
  const primary = (u) => u.email_addresses.find((e) => e.id === u.primary_email_address_id);
  assert.equal(primary(await get('unverified_email')).verification.status, 'unverified');
  assert.ok((await get('external_id')).external_id);
  const xss = await api(`/v1/users/${sp.script_name.id}`);
  assert.equal(xss.body.first_name, '<script>alert(1)</script>');
  assert.ok(xss.text.includes('<script>alert(1)</script>'), 'raw in the JSON, as Clerk sends it');
  const noEmail = await get('no_email');
  assert.deepEqual(noEmail.email_addresses, []);
  assert.equal(noEmail.primary_email_address_id, null);
  assert.equal(primary(await get('two_emails')).verification.status, 'verified');
  assert.equal(primary(await get('dangling_primary')), undefined);
  const unverifiedShare = one.filter((u) => u.email_addresses.some((e) => e.verification.status === 'unverified')).length;
  assert.ok(unverifiedShare >= 2);
});

test('on-request hook: delete the cursor user mid-walk; paging goes on, or 422 if configured', async () => {
  await fresh(30, 13);
  let r = await ctl('POST', '/_standin/on-request', { after: 1, action: { delete: '$last' } });
  assert.equal(r.status, 201);
  const seen = await walk('+created_at', 10);
  assert.equal(seen.length, 30, 'the deleted user had been served on page 1');
  assert.equal(new Set(seen.map((u) => u.id)).size, 30);
  const st = (await ctl('GET', '/_standin/stats')).body;
  assert.equal(st.hooks_fired.length, 1);
  assert.equal(st.hooks_fired[0].results[0].delete, seen[9].id);
  assert.equal((await truth()).length, 29);

  await fresh(30, 13, { cursor_missing: 'error' });
  await ctl('POST', '/_standin/on-request', { after: 1, action: { delete: '$last' } });
  const p1 = (await api('/v1/users?limit=10')).body;
  assertClerkError(await api(`/v1/users?limit=10&starting_after=${p1[9].id}`), 422, 'form_param_value_invalid', 'starting_after');
});

test('on-request hook: update and create while a run pages', async () => {
  await fresh(30, 14);
  const all = await truth();
  const oldest = all[0];
  await ctl('POST', '/_standin/on-request', {
    after: 2,
    actions: [
      { update: { id: oldest.id, first_name: 'Changed mid-run' } },
      { create: { email: 'late@example.com' } },
    ],
  });
  const seen = await walk('-created_at', 10);
  // Newest first: the user created after page 2 is behind the cursor, and the
  // oldest user, served on the last page, is served as changed.
  assert.equal(seen.length, 30);
  assert.ok(!seen.some((u) => u.email_addresses[0]?.email_address === 'late@example.com'));
  assert.equal(seen[29].id, oldest.id);
  assert.equal(seen[29].first_name, 'Changed mid-run');
  assert.ok(seen[29].updated_at > oldest.updated_at);
  assert.equal((await truth()).length, 31);
  assert.equal((await ctl('GET', '/_standin/on-request')).body[0].fired, true);
});

test('ending_before is not a Clerk parameter: ignored, and counted as unknown', async () => {
  await fresh(15, 15);
  const plain = await api('/v1/users');
  const withEb = await api(`/v1/users?ending_before=${plain.body[5].id}`);
  assert.deepEqual(withEb.body, plain.body);
  assert.equal((await ctl('GET', '/_standin/stats')).body.unknown_params.ending_before, 1);
});

test('stats count requests per path and status', async () => {
  await fresh(4, 16);
  await api('/v1/users');
  await api('/v1/users/user_2x');
  await api('/v1/users/count');
  const st = (await ctl('GET', '/_standin/stats')).body;
  assert.equal(st.per_path['GET /v1/users'], 1);
  assert.equal(st.per_path['GET /v1/users/{id}'], 1);
  assert.equal(st.per_path['GET /v1/users/count'], 1);
  assert.equal(st.by_status['200'], 2);
  assert.equal(st.by_status['404'], 1);
});

test('the control surface refuses browsers and foreign Host headers', async () => {
  const withOrigin = await fetch(`${S.base}/_standin/reset`, { method: 'POST', headers: { Origin: 'https://evil.example' } });
  assert.equal(withOrigin.status, 403);
  const status = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: S.port, path: '/_standin/stats', headers: { Host: 'evil.example' } },
      (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 403);
});

test('100,000 users: seeded in one go, pages of 500 by cursor and offset', async (t) => {
  await fresh(0);
  const r = await ctl('POST', '/_standin/seed', { count: 100_000, seed: 'bench' });
  assert.equal(r.status, 200);
  t.diagnostic(`seeded 100,000 users in ${r.body.ms} ms`);
  const t0 = Date.now();
  const p1 = await api('/v1/users?limit=500');
  assert.equal(p1.body.length, 500);
  const p2 = await api(`/v1/users?limit=500&starting_after=${p1.body[499].id}`);
  assert.equal(p2.body.length, 500);
  assert.ok(p2.body[0].created_at < p1.body[499].created_at);
  const deep = await api('/v1/users?limit=500&offset=99800');
  assert.equal(deep.body.length, 200);
  assert.equal((await api('/v1/users/count')).body.total_count, 100_000);
  t.diagnostic(`four requests took ${Date.now() - t0} ms`);
  await fresh(0); // give the memory back
});

test('a busy port: a second stand-in exits non-zero at once, naming the port', async () => {
  const r = await runToExit(['--port', String(S.port)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`clerk stand-in: port ${S.port} is already in use`));
  assert.equal(r.stdout, '');
});

test('refuses a non-loopback host and bad flags', async () => {
  let r = await runToExit(['--host', '0.0.0.0', '--port', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0/);
  r = await runToExit(['--fail-rate', '2']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--fail-rate/);
  r = await runToExit(['--no-such-flag']);
  assert.equal(r.code, 2);
});

test('--parent-pid: exits (0) once that process is gone', async () => {
  const parent = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300)'], { stdio: 'ignore' });
  const r = await runToExit(['--port', '0', '--parent-pid', String(parent.pid)]);
  assert.equal(r.code, 0, r.stderr);
});

test('--verbose logs one line per request and nothing personal', async () => {
  await fresh(3, 17);
  await api('/v1/users?email_address=someone.private@example.com');
  const out = S.stdout();
  assert.match(out, /GET \/v1\/users params=email_address 200 \d+ms/);
  assert.ok(!out.includes('@'), 'no email address in the log');
});
