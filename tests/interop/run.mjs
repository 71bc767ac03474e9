// Portcullis against real third-party software: an `oidc-provider` authorization server and the official MCP
// TypeScript SDK client. Run from anywhere:
//
//   node tests/interop/run.mjs
//
// 1. `npm ci` here when `node_modules` is missing.
// 2. `cargo build -p portcullis-examples --example axum_mcp -p portcullis-gateway --bin portcullis` into a target directory of its
//    own (`target/interop`, or `PORTCULLIS_INTEROP_TARGET_DIR`), so that it never waits on the lock of a
//    `cargo test` that runs this script.
// 3. Starts, all on 127.0.0.1 and free ports: the authorization server (`as.mjs`), the `axum_mcp` example, a
//    simple MCP upstream (`upstream.mjs`), the gateway in front of it with JWT access tokens, and a second gateway
//    for a second resource whose tokens are opaque (RFC 7662 introspection). The example and the JWT gateway know
//    only the issuer URL: keys come through discovery.
// 4. The SDK checks (`client.mjs`), with the SDK's 1.x client and its 2.x client (`@modelcontextprotocol/client`,
//    which speaks 2026-07-28 with its mirrored request headers), against the example and the JWT gateway, then
//    negative runs with real tokens:
//    another resource's token (401), another site's token (403), an opaque token (allowed) and after revocation
//    (401 once the introspection cache entry has expired, 60 s), expired tokens.
// 5. Stops every process (also on failure or a signal); prints `N passed, M failed`; exits 1 if anything failed.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ----------------------------------------------------------------------------------------------------------------
// Processes
// ----------------------------------------------------------------------------------------------------------------

const processes = [];
const LOG_LINES = 40;

function start(name, command, args, env = {}) {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = { name, child, lines: [], exited: null };
  const keep = (chunk) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      entry.lines.push(line);
      if (entry.lines.length > LOG_LINES) entry.lines.shift();
      if (process.env.PORTCULLIS_INTEROP_VERBOSE) console.error(`[${name}] ${line}`);
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', (code, signal) => {
    entry.exited = signal ?? code;
  });
  child.on('error', (err) => {
    entry.lines.push(`cannot run ${command}: ${err.message}`);
    entry.exited = err.code ?? 'error';
  });
  processes.push(entry);
  return entry;
}

async function stopAll() {
  await Promise.all(
    processes.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i += 1) await sleep(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }),
  );
}

function printLogs() {
  for (const { name, lines, exited } of processes) {
    console.log(`--- last ${lines.length} log lines of ${name}${exited !== null ? ` (exited: ${exited})` : ''} ---`);
    for (const line of lines) console.log(`    ${line}`);
  }
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    console.log(`interrupted (${signal}): stopping every process`);
    await stopAll();
    process.exit(130);
  });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Waits until `url` answers with `status` (any status when undefined). */
async function waitFor(entry, url, status) {
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (entry.exited !== null) throw new Error(`${entry.name} exited (${entry.exited}) before it was ready`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (status === undefined || res.status === status) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err?.cause?.code ?? err?.message ?? String(err);
    }
    await sleep(200);
  }
  throw new Error(`${entry.name} is not ready at ${url}: ${last}`);
}

// ----------------------------------------------------------------------------------------------------------------
// Main
// ----------------------------------------------------------------------------------------------------------------

let report;
let step = 'setup';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'portcullis-interop-'));

async function main() {
  step = 'npm ci';
  const pkg = JSON.parse(readFileSync(path.join(here, 'package.json'), 'utf8'));
  const missing = Object.keys(pkg.dependencies).filter((name) => !existsSync(path.join(here, 'node_modules', name)));
  if (missing.length) {
    console.log(`# npm ci (node_modules lacks ${missing.join(', ')})`);
    const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: ['ignore', 2, 2] });
    if (npm.status !== 0) throw new Error(`npm ci failed (exit ${npm.status ?? npm.error})`);
  }
  const client = await import('./client.mjs');
  const { assert, createReporter, decodeJwt, loadSdk, sdkChecks, SITE, SDK_MAJORS } = client;
  report = createReporter();

  step = 'cargo build';
  const targetDir = process.env.PORTCULLIS_INTEROP_TARGET_DIR || path.join(root, 'target', 'interop');
  console.log(`# cargo build (target dir ${path.relative(root, targetDir) || targetDir})`);
  const cargo = spawnSync(
    process.env.CARGO || 'cargo',
    ['build', '-p', 'portcullis-examples', '--example', 'axum_mcp', '-p', 'portcullis-gateway', '--bin', 'portcullis'],
    { cwd: root, env: { ...process.env, CARGO_TARGET_DIR: targetDir }, stdio: ['ignore', 2, 2] },
  );
  if (cargo.status !== 0) throw new Error(`cargo build failed (exit ${cargo.status ?? cargo.error})`);
  const exe = process.platform === 'win32' ? '.exe' : '';
  const axumBin = path.join(targetDir, 'debug', 'examples', `axum_mcp${exe}`);
  const gatewayBin = path.join(targetDir, 'debug', `portcullis${exe}`);

  step = 'start processes';
  const [asPort, axumPort, upstreamPort, gatewayPort, opaquePort] = await Promise.all(
    Array.from({ length: 5 }, freePort),
  );
  const issuer = `http://127.0.0.1:${asPort}`;
  const axumResource = `http://127.0.0.1:${axumPort}/mcp`;
  const gatewayResource = `http://127.0.0.1:${gatewayPort}/mcp`;
  const opaqueResource = `http://127.0.0.1:${opaquePort}/mcp`;
  const introspectionSecret = randomBytes(24).toString('hex');
  const logEnv = { RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' };

  const as = start('authorization server', process.execPath, [path.join(here, 'as.mjs'), String(asPort)], {
    OPAQUE_RESOURCES: opaqueResource,
    INTROSPECTION_SECRET: introspectionSecret,
  });
  const upstream = start('MCP upstream', process.execPath, [path.join(here, 'upstream.mjs'), String(upstreamPort)]);
  await waitFor(as, `${issuer}/.well-known/openid-configuration`, 200);

  const axum = start('axum_mcp', axumBin, [], {
    ...logEnv,
    PORTCULLIS_LISTEN: `127.0.0.1:${axumPort}`,
    PORTCULLIS_RESOURCE: axumResource,
    PORTCULLIS_ISSUER: issuer,
    PORTCULLIS_SITE_CLAIM: 'https://example.com/sites',
  });
  const common = (resource) => `resource = "${resource}"
scopes_supported = ["mcp:read", "mcp:write"]

[tokens]
site_claim = "https://example.com/sites"
# No clock leeway, so that the expiry check does not wait a minute.
leeway_seconds = 0

[scopes.tools]
create_page = ["mcp:write"]
`;
  const gatewayToml = path.join(tmp, 'gateway.toml');
  writeFileSync(
    gatewayToml,
    `${common(gatewayResource)}
# The issuer URL only: keys through discovery.
[[issuer]]
issuer = "${issuer}"

[gateway]
listen = "127.0.0.1:${gatewayPort}"
upstream = "http://127.0.0.1:${upstreamPort}"
`,
  );
  const opaqueToml = path.join(tmp, 'gateway-opaque.toml');
  writeFileSync(
    opaqueToml,
    `authorization_servers = ["${issuer}"]
${common(opaqueResource)}
[introspection]
endpoint = "${issuer}/token/introspection"
client_id = "portcullis-introspector"
client_secret_env = "PORTCULLIS_INTROSPECTION_SECRET"
issuer = "${issuer}"

[gateway]
listen = "127.0.0.1:${opaquePort}"
upstream = "http://127.0.0.1:${upstreamPort}"
`,
  );
  const gateway = start('gateway (JWT)', gatewayBin, ['serve', '--config', gatewayToml], logEnv);
  const opaque = start('gateway (opaque, introspection)', gatewayBin, ['serve', '--config', opaqueToml], {
    ...logEnv,
    PORTCULLIS_INTROSPECTION_SECRET: introspectionSecret,
  });
  await waitFor(upstream, `http://127.0.0.1:${upstreamPort}/`);
  await waitFor(axum, `http://127.0.0.1:${axumPort}/.well-known/oauth-protected-resource/mcp`, 200);
  await waitFor(gateway, `http://127.0.0.1:${gatewayPort}/health`, 200);
  await waitFor(opaque, `http://127.0.0.1:${opaquePort}/health`, 200);
  console.log(`# everything is up (${elapsed()}): authorization server ${issuer}`);

  // --------------------------------------------------------------------------------------------------------------
  // Helpers for the negative runs: tokens straight from the authorization server, raw and SDK calls.
  // --------------------------------------------------------------------------------------------------------------

  async function register(name) {
    const res = await fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: name,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    const body = await res.json();
    assert(res.status === 201, `registration: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body;
  }
  const basic = (c) => `Basic ${Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64')}`;
  async function token(c, resource, scope = 'mcp:read') {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(c), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
    });
    const body = await res.json();
    assert(res.status === 200, `token: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.access_token;
  }
  async function revoke(c, accessToken) {
    const res = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { authorization: basic(c), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: accessToken, token_type_hint: 'access_token' }),
    });
    await res.arrayBuffer();
    assert(res.status === 200, `revocation: HTTP ${res.status}`);
  }
  /** A raw `tools/call` (the stack answers before the MCP server looks for a session). */
  async function rawCall(serverUrl, accessToken, name, args) {
    const res = await fetch(serverUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: args } }),
    });
    await res.arrayBuffer();
    return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '' };
  }
  async function expectRejected(serverUrl, accessToken, status, error, args = { cloudId: SITE }) {
    const { status: got, challenge } = await rawCall(serverUrl, accessToken, 'whoami', args);
    assert(got === status, `HTTP ${got}, expected ${status} (${challenge})`);
    if (error) assert(challenge.includes(`error="${error}"`), `challenge ${challenge}`);
    assert(challenge.includes('resource_metadata="'), `no resource_metadata in ${challenge}`);
  }
  /** A whole MCP session with the SDK and a fixed Bearer token; returns what `whoami` answered. */
  async function whoami(serverUrl, accessToken, cloudId = SITE) {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
      requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
    });
    const mcp = new Client({ name: 'portcullis-interop-fixed-token', version: '0.0.0' });
    await mcp.connect(transport);
    try {
      const result = await mcp.callTool({ name: 'whoami', arguments: { cloudId } });
      assert(!result.isError, `the tool failed: ${JSON.stringify(result.content)}`);
      return result.structuredContent ?? JSON.parse(result.content[0].text);
    } finally {
      await mcp.close().catch(() => {});
    }
  }

  // --------------------------------------------------------------------------------------------------------------
  // Timed checks, started first: their second half runs after the caches' lifetimes, at the end.
  // --------------------------------------------------------------------------------------------------------------

  step = 'timed checks (first half)';
  const later = [];
  const minute = 60_000 + 2_000;
  {
    // Expired JWT against the example, whose clock leeway is the default 60 s.
    const shortLived = await register('interop short-lived');
    const accessToken = await token(shortLived, axumResource);
    const exp = decodeJwt(accessToken).payload.exp * 1000;
    await report.check('axum_mcp: short-lived JWT allowed while fresh', async () => {
      const who = await whoami(axumResource, accessToken);
      assert(who.siteId === SITE, `site ${who.siteId}`);
    });
    later.push({
      at: exp + minute,
      name: 'axum_mcp: expired JWT (past exp + 60 s leeway) gets 401 invalid_token',
      run: () => expectRejected(axumResource, accessToken, 401, 'invalid_token'),
    });
  }
  {
    // Opaque tokens through introspection, then revocation at the authorization server.
    const opaqueClient = await register('interop opaque');
    const accessToken = await token(opaqueClient, opaqueResource);
    const revokedUnused = await token(opaqueClient, opaqueResource);
    await report.check('opaque token: not a JWT (issued opaque for the second resource)', async () => {
      assert(!decodeJwt(accessToken), 'the token is a JWT');
    });
    const firstUse = Date.now();
    await report.check('gateway (introspection): opaque token allowed', async () => {
      const who = await whoami(opaqueResource, accessToken);
      assert(who.accountId === opaqueClient.client_id, `account ${who.accountId}`);
      assert(who.siteId === SITE, `site ${who.siteId}`);
      assert(who.authorizationForwarded === false, 'the Authorization header reached the upstream');
    });
    await report.check('opaque token: revoked at the authorization server', async () => {
      await revoke(opaqueClient, accessToken);
      await revoke(opaqueClient, revokedUnused);
    });
    await report.check('gateway (introspection): token revoked before first use gets 401', () =>
      expectRejected(opaqueResource, revokedUnused, 401, 'invalid_token'),
    );
    later.push({
      at: firstUse + minute,
      name: 'gateway (introspection): revoked token gets 401 once the 60 s cache entry expired',
      run: () => expectRejected(opaqueResource, accessToken, 401, 'invalid_token'),
    });
  }

  // --------------------------------------------------------------------------------------------------------------
  // The official SDK client against the example and the gateway.
  // --------------------------------------------------------------------------------------------------------------

  for (const major of SDK_MAJORS) {
    const sdk = await loadSdk(major);
    for (const [label, serverUrl] of [
      ['axum_mcp', axumResource],
      ['gateway', gatewayResource],
    ]) {
      step = `SDK ${sdk.label} client against ${label}`;
      console.log(`# ${step} (${serverUrl})`);
      const prefixed = createReporter(`SDK ${sdk.label}, ${label}: `);
      // The 2.x client speaks 2026-07-28 where the server does: the example (rmcp 3.11) does, the gateway's
      // upstream (the 1.x SDK's server) does not.
      const modern = sdk.major === '2' && label === 'axum_mcp';
      await sdkChecks(prefixed, { serverUrl, issuer, sdk, modern });
      for (const r of prefixed.results) report.results.push(r);
    }
  }

  // --------------------------------------------------------------------------------------------------------------
  // Negative runs with real tokens.
  // --------------------------------------------------------------------------------------------------------------

  step = 'negative runs';
  console.log(`# ${step}`);
  const siteA = await register('interop site-a');
  const siteB = await register('interop site-b');
  const shortLived = await register('interop short-lived gateway');
  const forAxum = await token(siteA, axumResource);
  const forGateway = await token(siteA, gatewayResource);
  for (const [label, serverUrl, otherToken, resource] of [
    ['axum_mcp', axumResource, forGateway, gatewayResource],
    ['gateway', gatewayResource, forAxum, axumResource],
  ]) {
    await report.check(`${label}: JWT for another resource (aud ${resource}) gets 401`, () =>
      expectRejected(serverUrl, otherToken, 401, 'invalid_token'),
    );
    const siteBToken = await token(siteB, serverUrl);
    await report.check(`${label}: token for another site (site-b) calling site-a gets 403`, async () => {
      const sites = decodeJwt(siteBToken).payload['https://example.com/sites'];
      assert(JSON.stringify(sites) === '["site-b"]', `sites ${JSON.stringify(sites)}`);
      await expectRejected(serverUrl, siteBToken, 403);
    });
    await report.check(`${label}: the site-b token is allowed on site-b`, async () => {
      const who = await whoami(serverUrl, siteBToken, 'site-b');
      assert(who.siteId === 'site-b', `site ${who.siteId}`);
    });
  }
  await report.check('gateway (introspection): JWT (for the JWT gateway) gets 401', () =>
    expectRejected(opaqueResource, forGateway, 401, 'invalid_token'),
  );
  {
    const accessToken = await token(shortLived, gatewayResource);
    const exp = decodeJwt(accessToken).payload.exp * 1000;
    await report.check('gateway: short-lived JWT allowed while fresh', async () => {
      await whoami(gatewayResource, accessToken);
    });
    await sleep(Math.max(0, exp + 1_500 - Date.now()));
    await report.check('gateway: expired JWT (leeway 0) gets 401 invalid_token', () =>
      expectRejected(gatewayResource, accessToken, 401, 'invalid_token'),
    );
  }

  // --------------------------------------------------------------------------------------------------------------
  // The second halves of the timed checks.
  // --------------------------------------------------------------------------------------------------------------

  step = 'timed checks (second half)';
  later.sort((a, b) => a.at - b.at);
  const wait = Math.max(0, later[later.length - 1].at - Date.now());
  if (wait > 0) console.log(`# waiting ${(wait / 1000).toFixed(0)} s for the caches and the clock leeway`);
  for (const { at, name, run } of later) {
    await sleep(Math.max(0, at - Date.now()));
    await report.check(name, run);
  }
}

let fatal;
try {
  await main();
} catch (err) {
  fatal = err;
}
await stopAll();
rmSync(tmp, { recursive: true, force: true });

const results = report?.results ?? [];
const failedChecks = results.filter((r) => !r.ok);
if (fatal) {
  console.log(`not ok - ${step}: ${fatal?.stack ?? fatal}`);
  failedChecks.push({ name: step });
}
const failed = failedChecks.length;
const passed = results.length - results.filter((r) => !r.ok).length;
if (failed) {
  console.log(`# failed: ${failedChecks.map((r) => r.name).join('; ')}`);
  printLogs();
}
console.log(`# took ${elapsed()}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
