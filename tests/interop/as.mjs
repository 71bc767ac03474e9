// A real OAuth 2.1 authorization server for the interop run: npm `oidc-provider`, on 127.0.0.1 only.
//
//   node as.mjs PORT
//
// Environment:
//   OPAQUE_RESOURCES        resource indicators (comma-separated) whose access tokens are opaque (introspection);
//                           every other resource gets RFC 9068 JWT access tokens (`typ: at+jwt`, `aud` = resource)
//   INTROSPECTION_SECRET    secret of the static client `portcullis-introspector` (the resource servers' client
//                           for RFC 7662 introspection)
//
// Features: client credentials, authorization code + PKCE (S256), open dynamic client registration (RFC 7591)
// with the client's `scope` dropped (a pinned scope would forbid step-up), resource indicators (RFC 8707),
// introspection, revocation, a site claim in every access token, and a scripted login/consent page without
// devInteractions:
//
//   GET  /interaction/:uid        an HTML page with one form (action, `login`, `scope`)
//   POST /interaction/:uid/login  `login=<account>&scope=<space-separated scopes the user consents to>`;
//                                 requested scopes left out are rejected (so the token carries only the others)
//
// Test fixtures: accounts `alice` (sites ["site-a"]) and `bob` (["site-b"]); a client-credentials client whose
// `client_name` contains `site-b` gets ["site-b"], others ["site-a"]; a client whose `client_name` contains
// `short-lived` gets access tokens that live 3 seconds. A fresh RSA key with a fresh `kid` at every start.

import http from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.AS_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node as.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const SITE_CLAIM = 'https://example.com/sites';
const RESOURCE_SCOPES = 'mcp:read mcp:write';
const OIDC_SCOPES = new Set(['openid', 'offline_access']);
const opaqueResources = new Set(
  (process.env.OPAQUE_RESOURCES ?? '').split(',').map((s) => s.trim()).filter(Boolean),
);
const introspectionSecret = process.env.INTROSPECTION_SECRET || randomBytes(24).toString('hex');

const ACCOUNTS = { alice: ['site-a'], bob: ['site-b'] };

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const isShortLived = (client) => (client?.clientName ?? '').includes('short-lived');
const ttl = (fallback) => (ctx, token, client) =>
  isShortLived(client) ? 3 : token.resourceServer?.accessTokenTTL || fallback;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'portcullis-introspector',
      client_secret: introspectionSecret,
      client_name: 'Portcullis resource servers (introspection)',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: [...OIDC_SCOPES],
  claims: { openid: ['sub'] },
  findAccount: async (ctx, id) =>
    ACCOUNTS[id] ? { accountId: id, claims: async () => ({ sub: id }) } : undefined,
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    introspection: {
      enabled: true,
      // Only the resource servers' client may introspect.
      allowedPolicy: (ctx, client) => client.clientId === 'portcullis-introspector',
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) =>
        opaqueResources.has(resource)
          ? { scope: RESOURCE_SCOPES, audience: resource, accessTokenFormat: 'opaque' }
          : {
              scope: RESOURCE_SCOPES,
              audience: resource,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            },
    },
  },
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'AccessToken' && token.kind !== 'ClientCredentials') return undefined;
    const sites = token.accountId
      ? ACCOUNTS[token.accountId] ?? []
      : (ctx.oidc.client?.clientName ?? '').includes('site-b')
        ? ['site-b']
        : ['site-a'];
    return { [SITE_CLAIM]: sites };
  },
  ttl: { AccessToken: ttl(600), ClientCredentials: ttl(600) },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// Dynamic registration must not pin the client's scope: oidc-provider would then refuse any scope outside it,
// and a client that registered with "mcp:read" could never step up. Drop `scope` from registration requests.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/reg' && ctx.is('application/json')) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = {};
    }
    if (body && typeof body === 'object') delete body.scope;
    ctx.req.body = body;
  }
  await next();
});

provider.use(async (ctx, next) => {
  await next();
  console.error(`as: ${ctx.method} ${ctx.path} ${ctx.status}`);
});

const readForm = async (req) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
};

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid, isLogin) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { params, prompt } = details;
  if (!isLogin) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Sign in</title>
<p>Client ${escape(params.client_id)} asks for <code>${escape(params.scope ?? '')}</code> on
<code>${escape([].concat(params.resource ?? []).join(' '))}</code> (prompt ${escape(prompt.name)}).</p>
<form method="post" action="/interaction/${escape(uid)}/login">
<input name="login" value=""><input name="scope" value="${escape(params.scope ?? '')}">
<button type="submit">Sign in and allow</button></form>`);
    console.error(`as: GET /interaction/${uid} 200 (prompt ${prompt.name})`);
    return;
  }
  const form = await readForm(req);
  const accountId = form.get('login');
  if (!ACCOUNTS[accountId]) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('unknown account');
    return;
  }
  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const chosen = new Set((form.get('scope') ?? '').split(' ').filter(Boolean));
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  const oidc = requested.filter((s) => OIDC_SCOPES.has(s) && chosen.has(s));
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  const resourceScopes = requested.filter((s) => !OIDC_SCOPES.has(s));
  const granted = resourceScopes.filter((s) => chosen.has(s));
  const rejected = resourceScopes.filter((s) => !chosen.has(s));
  for (const resource of [].concat(params.resource ?? [])) {
    if (granted.length) grant.addResourceScope(resource, granted.join(' '));
    if (rejected.length) grant.rejectResourceScope(resource, rejected.join(' '));
  }
  const grantId = await grant.save();
  console.error(
    `as: POST /interaction/${uid}/login ${accountId} granted [${granted.join(' ')}] rejected [${rejected.join(' ')}]`,
  );
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const match = path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) {
    callback(req, res);
    return;
  }
  const isLogin = Boolean(match[2]);
  if (isLogin !== (req.method === 'POST') || (!isLogin && req.method !== 'GET')) {
    res.writeHead(405).end();
    return;
  }
  interaction(req, res, match[1], isLogin).catch((err) => {
    console.error(`as: interaction failed: ${err?.stack ?? err}`);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('interaction failed');
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`authorization server ${issuer} (kid ${signingKey.kid})`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
