// The official MCP TypeScript SDK clients, headless, against a protected MCP server.
//
//   node client.mjs SERVER_URL [ISSUER]      e.g. node client.mjs http://127.0.0.1:8080/mcp http://127.0.0.1:9000
//
// Runs with the SDK's 1.x client (`@modelcontextprotocol/sdk`) or its 2.x client (`@modelcontextprotocol/client`,
// probing for 2026-07-28 and speaking it where the server does); see `loadSdk`.
//
// Checks, one line each (`ok - <name>` / `not ok - <name>: <reason>`), then `N passed, M failed`:
//   - an unauthenticated request gets 401 with `WWW-Authenticate: Bearer resource_metadata="..."` and no `error`
//   - the SDK discovers the RFC 9728 resource metadata (its `resource` is the server URL) and the authorization
//     server's RFC 8414 metadata (with a registration endpoint)
//   - client credentials: the SDK gets the 401, discovers, registers dynamically, gets a token and calls `whoami`
//   - authorization code + PKCE: the SDK registers, a scripted browser follows the authorization server's login
//     and consent form (the user allows `mcp:read` only), the SDK exchanges the code and calls `whoami`; then
//     `create_page` gets 403 `insufficient_scope`, the SDK steps up (the user allows what is asked), and the call
//     succeeds with the new token.
//   - the tools/call went out with the 2026-07-28 headers (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version` equal to
//     the body's) where the client speaks that revision, and without them elsewhere
//   - a tools/call whose `Mcp-Name` the client's fetch rewrites gets 400 with the JSON-RPC error -32020 and the
//     stack's reason `header_mismatch`, to the request's id: the stack answered, the MCP server never saw it
//
// `run.mjs` imports `sdkChecks` and reports through its own reporter.

import { pathToFileURL } from 'node:url';

/** The SDK client majors the checks run with. */
export const SDK_MAJORS = ['1', '2'];

/**
 * What the checks use of one SDK major: 1.x (`@modelcontextprotocol/sdk`) or 2.x (`@modelcontextprotocol/client`,
 * which speaks 2026-07-28: stateless requests with `Mcp-Method` / `Mcp-Name` mirrored from the body).
 */
export async function loadSdk(major) {
  if (major === '1') {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const auth = await import('@modelcontextprotocol/sdk/client/auth.js');
    return {
      label: '1.x',
      major,
      Client,
      StreamableHTTPClientTransport,
      UnauthorizedError: auth.UnauthorizedError,
      discoverAuthorizationServerMetadata: auth.discoverAuthorizationServerMetadata,
      discoverOAuthProtectedResourceMetadata: auth.discoverOAuthProtectedResourceMetadata,
    };
  }
  const sdk = await import('@modelcontextprotocol/client');
  return {
    label: '2.x',
    major,
    // Probe for 2026-07-28 (`server/discover`) and speak it where the server does; the default is 'legacy'.
    clientOptions: { versionNegotiation: { mode: 'auto' } },
    Client: sdk.Client,
    StreamableHTTPClientTransport: sdk.StreamableHTTPClientTransport,
    UnauthorizedError: sdk.UnauthorizedError,
    discoverAuthorizationServerMetadata: sdk.discoverAuthorizationServerMetadata,
    discoverOAuthProtectedResourceMetadata: sdk.discoverOAuthProtectedResourceMetadata,
  };
}

export const SITE = 'site-a';
const REDIRECT_URL = 'http://127.0.0.1:9/callback';

/** Collects check results; prints one line per check. */
export function createReporter(prefix = '') {
  const results = [];
  const report = (name, ok, reason) => {
    results.push({ name: prefix + name, ok, reason });
    console.log(ok ? `ok - ${prefix}${name}` : `not ok - ${prefix}${name}: ${reason}`);
    return ok;
  };
  /** Runs `fn`; a throw is a failed check. Returns what `fn` returned, or undefined on failure. */
  report.check = async (name, fn) => {
    try {
      const value = await fn();
      report(name, true);
      return value ?? true;
    } catch (err) {
      report(name, false, err?.message ?? String(err));
      return undefined;
    }
  };
  report.results = results;
  report.summary = () => {
    const failed = results.filter((r) => !r.ok).length;
    return { passed: results.length - failed, failed };
  };
  return report;
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Header and payload of a JWT, or undefined for an opaque token. */
export function decodeJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return undefined;
  const [header, payload] = parts
    .slice(0, 2)
    .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')));
  return { header, payload };
}

/**
 * A fetch that records every exchange: the request's method, MCP headers and JSON-RPC body, the response's status,
 * `WWW-Authenticate` and (for a JSON answer) body. `tamper(headers, body)` may change the request's headers first.
 */
function recordingFetch(log, tamper) {
  return async (url, init) => {
    const headers = new Headers(init?.headers);
    let body;
    try {
      body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    } catch {
      body = undefined;
    }
    if (tamper) tamper(headers, body);
    const res = await fetch(url, { ...init, headers });
    const json = (res.headers.get('content-type') ?? '').startsWith('application/json')
      ? await res.clone().json().catch(() => undefined)
      : undefined;
    log.push({
      url: String(url),
      method: init?.method ?? 'GET',
      mcpMethod: headers.get('mcp-method'),
      mcpName: headers.get('mcp-name'),
      protocolVersion: headers.get('mcp-protocol-version'),
      body,
      status: res.status,
      wwwAuthenticate: res.headers.get('www-authenticate'),
      json,
    });
    return res;
  };
}

/** In-memory OAuth client state shared by both providers. */
class MemoryProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.registrations = 0;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    if (!this._client) this.registrations += 1;
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }
  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier');
    return this._verifier;
  }
}

/** Client credentials (machine to machine): no redirect URL, so the SDK fetches tokens directly. */
export class ClientCredentialsClient extends MemoryProvider {
  constructor({ name = 'interop client-credentials', scope = 'mcp:read' } = {}) {
    super();
    this.name = name;
    this.scope = scope;
  }
  get redirectUrl() {
    return undefined;
  }
  get clientMetadata() {
    return {
      client_name: this.name,
      redirect_uris: [],
      response_types: [],
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: this.scope,
    };
  }
  redirectToAuthorization() {
    throw new Error('client credentials never redirect');
  }
  prepareTokenRequest(scope) {
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    if (scope) params.set('scope', scope);
    return params;
  }
}

/**
 * Authorization code + PKCE with a scripted user: `redirectToAuthorization` drives the authorization server's
 * login/consent form over HTTP (with a cookie jar) and keeps the code for `finishAuth`.
 */
export class ScriptedUserClient extends MemoryProvider {
  /** `consent(requestedScope, round)` returns the scopes the user allows. */
  constructor({ login = 'alice', consent = (requested) => requested } = {}) {
    super();
    this.login = login;
    this.consent = consent;
    this.rounds = [];
    this.pendingCode = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: 'interop authorization-code',
      redirect_uris: [REDIRECT_URL],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'none',
    };
  }
  async redirectToAuthorization(authorizationUrl) {
    const requested = authorizationUrl.searchParams.get('scope') ?? '';
    const round = this.rounds.length + 1;
    const allowed = this.consent(requested, round);
    this.rounds.push({
      requested,
      allowed,
      resource: authorizationUrl.searchParams.get('resource'),
      pkce: authorizationUrl.searchParams.get('code_challenge_method'),
    });
    const back = await followLogin(authorizationUrl, REDIRECT_URL, this.login, allowed);
    const error = back.searchParams.get('error');
    if (error) throw new Error(`authorization failed: ${error} ${back.searchParams.get('error_description') ?? ''}`);
    this.pendingCode = back.searchParams.get('code');
    if (!this.pendingCode) throw new Error('no code in the redirect');
    this.pendingCallback = back.searchParams;
  }
  takeCode() {
    const code = this.pendingCode;
    this.pendingCode = undefined;
    if (!code) throw new Error('the SDK did not start an authorization');
    return code;
  }
  /** The whole callback (`code`, `state`, and the RFC 9207 `iss` that the 2.x SDK checks). */
  takeCallback() {
    this.takeCode();
    return this.pendingCallback;
  }
}

/**
 * A headless browser for one authorization: follows redirects with a cookie jar, submits the login/consent form
 * it finds, and stops at `redirectUrl`, which it returns (with `code`, `state` and `iss`).
 */
async function followLogin(authorizationUrl, redirectUrl, login, scope) {
  const jar = new Map();
  let url = new URL(authorizationUrl);
  let init = { method: 'GET' };
  for (let hop = 0; hop < 20; hop += 1) {
    if (url.href.startsWith(redirectUrl)) return url;
    const headers = { ...(init.headers ?? {}) };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*expires=.*1970/i.test(a) || /^\s*max-age=0\s*$/i.test(a));
      if (!value || expired) jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      url = new URL(location, url);
      init = { method: 'GET' };
      continue;
    }
    const text = await res.text();
    const form = text.match(/<form[^>]*action="([^"]+)"/i);
    if (res.status === 200 && form) {
      url = new URL(form[1].replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c))), url);
      init = {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ login, scope }).toString(),
      };
      continue;
    }
    throw new Error(`the authorization stopped at ${url.pathname}: HTTP ${res.status} ${text.slice(0, 300)}`);
  }
  throw new Error('too many redirects during the authorization');
}

function toolResult(result) {
  assert(!result.isError, `the tool failed: ${JSON.stringify(result.content)}`);
  if (result.structuredContent) return result.structuredContent;
  const text = result.content?.find((c) => c.type === 'text')?.text;
  return text ? JSON.parse(text) : {};
}

const scopeList = (scopes) =>
  (Array.isArray(scopes) ? scopes : String(scopes ?? '').split(/[ ,]+/)).filter(Boolean).sort();

async function connect(sdk, serverUrl, provider, fetchLog, tamper) {
  const transport = new sdk.StreamableHTTPClientTransport(new URL(serverUrl), {
    authProvider: provider,
    fetch: recordingFetch(fetchLog, tamper),
  });
  const client = new sdk.Client({ name: 'portcullis-interop', version: '0.0.0' }, sdk.clientOptions);
  await client.connect(transport);
  return { client, transport };
}

/** Hands the scripted user's answer to the SDK: the code (1.x), or the whole callback with `iss` (2.x). */
async function finishAuth(sdk, transport, provider) {
  await transport.finishAuth(sdk.major === '1' ? provider.takeCode() : provider.takeCallback());
}

/** Connects, finishing an authorization-code flow when the SDK starts one. */
async function connectWithLogin(sdk, serverUrl, provider, fetchLog) {
  try {
    return await connect(sdk, serverUrl, provider, fetchLog);
  } catch (err) {
    if (!(err instanceof sdk.UnauthorizedError)) throw err;
  }
  // The SDK registered, built the authorization URL (PKCE) and "redirected"; the scripted user answered.
  const transport = new sdk.StreamableHTTPClientTransport(new URL(serverUrl), {
    authProvider: provider,
    fetch: recordingFetch(fetchLog),
  });
  await finishAuth(sdk, transport, provider);
  const client = new sdk.Client({ name: 'portcullis-interop', version: '0.0.0' }, sdk.clientOptions);
  await client.connect(transport);
  return { client, transport };
}

/**
 * The SDK checks against one server. `expect.jwt` says whether its tokens are JWTs (`at+jwt`, `aud` = resource).
 * Returns the providers, so that the caller can reuse their registrations and tokens.
 */
export async function sdkChecks(report, { serverUrl, issuer, jwt = true, sdk, modern = false }) {
  sdk ??= await loadSdk('1');
  const { UnauthorizedError, discoverAuthorizationServerMetadata, discoverOAuthProtectedResourceMetadata } = sdk;
  // 1. The 401, as any client first sees it.
  const metadataUrl = await report.check('unauthenticated request gets 401 with resource_metadata', async () => {
    const res = await fetch(serverUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '0' } },
      }),
    });
    await res.arrayBuffer();
    assert(res.status === 401, `HTTP ${res.status}`);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert(/^Bearer /.test(challenge), `challenge ${challenge}`);
    assert(!/error=/.test(challenge), `an error parameter without a credential: ${challenge}`);
    const m = challenge.match(/resource_metadata="([^"]+)"/);
    assert(m, `no resource_metadata in ${challenge}`);
    return m[1];
  });

  // 2. Discovery, with the SDK's own functions.
  const resourceMetadata = await report.check('SDK discovers the protected resource metadata', async () => {
    const prm = await discoverOAuthProtectedResourceMetadata(serverUrl, {
      resourceMetadataUrl: metadataUrl ? new URL(metadataUrl) : undefined,
    });
    assert(prm.resource === serverUrl, `resource ${prm.resource}, expected ${serverUrl}`);
    assert(prm.authorization_servers?.includes(issuer), `authorization_servers ${prm.authorization_servers}`);
    return prm;
  });
  await report.check('SDK discovers the authorization server metadata', async () => {
    const asUrl = resourceMetadata?.authorization_servers?.[0] ?? issuer;
    const asm = await discoverAuthorizationServerMetadata(asUrl);
    assert(asm?.issuer === issuer, `issuer ${asm?.issuer}`);
    assert(asm.registration_endpoint, 'no registration_endpoint');
    assert(asm.code_challenge_methods_supported?.includes('S256'), 'no S256 PKCE');
  });

  const checkToken = (tokens, scopes) => {
    assert(tokens?.access_token, 'no access token');
    if (jwt) {
      const decoded = decodeJwt(tokens.access_token);
      assert(decoded, 'the access token is not a JWT');
      assert(decoded.header.typ === 'at+jwt', `typ ${decoded.header.typ}`);
      assert(decoded.payload.aud === serverUrl, `aud ${decoded.payload.aud}`);
      assert(decoded.payload.iss === issuer, `iss ${decoded.payload.iss}`);
    }
    if (scopes) assert(scopeList(tokens.scope).join(' ') === scopeList(scopes).join(' '), `scope ${tokens.scope}`);
  };

  // 3. Client credentials.
  const cc = new ClientCredentialsClient({ scope: 'mcp:read' });
  const ccLog = [];
  const ccSession = await report.check('client credentials: 401, discovery, registration, token', async () => {
    const session = await connect(sdk, serverUrl, cc, ccLog);
    assert(ccLog.some((r) => r.status === 401 && r.url === serverUrl), 'the SDK never saw a 401');
    assert(cc.registrations === 1, `registrations ${cc.registrations}`);
    // 1.x asks for the scope the client registered with; 2.x for the scopes the 401 challenge names (the
    // resource's scopes_supported).
    checkToken(cc.tokens(), sdk.major === '1' ? 'mcp:read' : 'mcp:read mcp:write');
    return session;
  });
  if (ccSession) {
    await report.check('client credentials: tools/call whoami', async () => {
      const who = toolResult(await ccSession.client.callTool({ name: 'whoami', arguments: { cloudId: SITE } }));
      assert(who.accountId === cc.clientInformation().client_id, `account ${who.accountId}`);
      assert(who.siteId === SITE, `site ${who.siteId}`);
      assert(who.authorizationForwarded !== true, 'the Authorization header reached the upstream');
    });
    const era = modern ? 'as 2026-07-28, with the mirrored headers' : 'as an earlier revision, without them';
    await report.check(`the tools/call went out ${era}`, async () => {
      const call = ccLog.find((r) => r.body?.method === 'tools/call' && r.status === 200);
      assert(call, 'no successful tools/call was recorded');
      const meta = call.body.params?._meta?.['io.modelcontextprotocol/protocolVersion'];
      const seen = `MCP-Protocol-Version ${call.protocolVersion}, _meta version ${meta}, Mcp-Method ${call.mcpMethod}, Mcp-Name ${call.mcpName}`;
      assert((meta === '2026-07-28') === modern, seen);
      if (modern) {
        // A 2026-07-28 request: the mirrored headers, which the stack checked against the body.
        assert(call.mcpMethod === 'tools/call', `Mcp-Method ${call.mcpMethod}`);
        assert(call.mcpName === 'whoami', `Mcp-Name ${call.mcpName}`);
        assert(call.protocolVersion === meta, `MCP-Protocol-Version ${call.protocolVersion}`);
      } else {
        // An earlier revision: none of the 2026-07-28 headers.
        assert(call.mcpMethod === null && call.mcpName === null, `Mcp-Method ${call.mcpMethod}, Mcp-Name ${call.mcpName}`);
      }
    });
    await ccSession.client.close().catch(() => {});

    // The same client whose fetch rewrites Mcp-Name on tools/call: the stack refuses it before the MCP server.
    const tamperedLog = [];
    await report.check('an Mcp-Name that disagrees with the body gets 400 -32020 from the stack', async () => {
      const tamper = (headers, body) => {
        if (body?.method === 'tools/call') headers.set('mcp-name', `not-${body.params?.name}`);
      };
      const session = await connect(sdk, serverUrl, cc, tamperedLog, tamper);
      try {
        let failed = false;
        try {
          await session.client.callTool({ name: 'whoami', arguments: { cloudId: SITE } });
        } catch {
          failed = true;
        }
        assert(failed, 'the call succeeded');
      } finally {
        await session.client.close().catch(() => {});
      }
      const refused = tamperedLog.find((r) => r.body?.method === 'tools/call');
      assert(refused, 'the tools/call was never sent');
      assert(refused.status === 400, `HTTP ${refused.status}`);
      assert(refused.json?.error?.code === -32020, `body ${JSON.stringify(refused.json)}`);
      // Answered by Portcullis (its typed reason), so the request stopped in the stack.
      assert(refused.json?.error?.data?.reason === 'header_mismatch', `body ${JSON.stringify(refused.json)}`);
      assert(refused.json?.id === refused.body.id, `id ${refused.json?.id}, sent ${refused.body.id}`);
    });
  }

  // 4. Authorization code + PKCE, with step-up.
  const user = new ScriptedUserClient({
    login: 'alice',
    // First round: the user allows reading only. Later rounds (step-up): whatever is asked.
    consent: (requested, round) => (round === 1 ? 'mcp:read' : requested),
  });
  const userLog = [];
  const userSession = await report.check('authorization code + PKCE: registration, scripted login, token', async () => {
    const session = await connectWithLogin(sdk, serverUrl, user, userLog);
    assert(user.registrations === 1, `registrations ${user.registrations}`);
    assert(user.rounds.length === 1, `authorizations ${user.rounds.length}`);
    assert(user.rounds[0].pkce === 'S256', `code_challenge_method ${user.rounds[0].pkce}`);
    assert(user.rounds[0].resource === serverUrl, `resource ${user.rounds[0].resource}`);
    checkToken(user.tokens(), 'mcp:read');
    return session;
  });
  if (userSession) {
    await report.check('authorization code: tools/call whoami', async () => {
      const who = toolResult(await userSession.client.callTool({ name: 'whoami', arguments: { cloudId: SITE } }));
      assert(who.accountId === 'alice', `account ${who.accountId}`);
      assert(who.siteId === SITE, `site ${who.siteId}`);
      assert(scopeList(who.scopes).join(' ') === 'mcp:read', `scopes ${who.scopes}`);
    });
    await report.check('create_page: 403 insufficient_scope, step-up, success', async () => {
      const call = () =>
        userSession.client.callTool({ name: 'create_page', arguments: { cloudId: SITE, title: 'Interop' } });
      let result;
      try {
        result = await call();
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        // The SDK saw the 403, asked for the scope it names, and "redirected": finish and call again.
        await finishAuth(sdk, userSession.transport, user);
        result = await call();
      }
      const forbidden = userLog.find((r) => r.status === 403);
      assert(forbidden, 'no 403 was seen');
      assert(/error="insufficient_scope"/.test(forbidden.wwwAuthenticate ?? ''), `challenge ${forbidden.wwwAuthenticate}`);
      assert(/scope="[^"]*mcp:write[^"]*"/.test(forbidden.wwwAuthenticate ?? ''), `challenge ${forbidden.wwwAuthenticate}`);
      assert(user.rounds.length === 2, `authorizations ${user.rounds.length}`);
      assert(/mcp:write/.test(user.rounds[1].requested), `step-up asked for ${user.rounds[1].requested}`);
      checkToken(user.tokens());
      assert(scopeList(user.tokens().scope).includes('mcp:write'), `scope ${user.tokens().scope}`);
      const page = toolResult(result);
      assert(page.siteId === SITE && page.title === 'Interop', `page ${JSON.stringify(page)}`);
    });
    await userSession.client.close().catch(() => {});
  }
  return { cc, user };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [serverUrl, issuer = 'http://127.0.0.1:9000'] = process.argv.slice(2);
  if (!serverUrl) {
    console.error('usage: node client.mjs SERVER_URL [ISSUER]');
    process.exit(2);
  }
  const report = createReporter();
  await sdkChecks(report, { serverUrl, issuer });
  const { passed, failed } = report.summary();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
