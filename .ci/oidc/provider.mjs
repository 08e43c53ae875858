// Throw-away OpenID Connect provider for Kairo's integration tests.
//
// Started by .ci/start-oidc.sh (which installs oidc-provider into a cache
// directory, copies this file into a state directory next to a node_modules
// symlink, and waits for the discovery document). Nothing here is for
// production: the login form accepts any password, keys and secrets are made
// at start-up and live only in memory, and the issuer is plain http on
// loopback.
//
// Environment (all set by start-oidc.sh):
//   KAIRO_OIDC_PORT                 port to listen on (127.0.0.1 only)      [required]
//   KAIRO_OIDC_ISSUER               issuer URL        (default http://127.0.0.1:$PORT)
//   KAIRO_OIDC_REDIRECT_URIS        kairo-web redirect URIs, comma-separated
//                                   (default http://127.0.0.1:8080/auth/oidc/callback)
//   KAIRO_OIDC_WEB_CLIENT_SECRET    secret of kairo-web     (default: random)
//   KAIRO_OIDC_CI_CLIENT_SECRET     secret of kairo-ci      (default: random)
//   KAIRO_OIDC_CI_ES_CLIENT_SECRET  secret of kairo-ci-es   (default: random)
//
// ---------------------------------------------------------------------------
// Accounts (static; the password is never checked, any non-empty one works):
//   alice -> groups ["ml-scientists"]     bob  -> ["ml-approvers"]
//   carol -> ["ml-admins"]                dave -> ["ml-deployers"]
//   erin  -> []
// sub = the login name; claims: email NAME@example.com, email_verified true,
// name, preferred_username, groups. A login name outside this table is
// refused: the login form is shown again with an error (HTTP 200, no redirect).
//
// Scopes: openid, email (email, email_verified), profile (name,
// preferred_username), groups (groups), offline_access, and the API scope
// kairo:api of the resource urn:kairo. conformIdTokenClaims is false, so the
// ID token carries every claim of the granted scopes: ask for
// `scope=openid email profile groups` and the ID token has email, name,
// preferred_username and groups (erin's is the empty array).
//
// Clients:
//   kairo-web    confidential, client_secret_basic, authorization_code +
//                refresh_token, redirect_uris from KAIRO_OIDC_REDIRECT_URIS.
//                A refresh token is issued with every code exchange (no
//                offline_access / prompt=consent dance needed).
//   kairo-ci     confidential, client_secret_basic, client_credentials only;
//                its access tokens carry groups ["ml-deployers"].
//   kairo-ci-es  like kairo-ci, but its urn:kairo access tokens are ES256.
//   Dynamic registration is open (POST /reg, no initial access token), e.g.
//     {"redirect_uris":["http://127.0.0.1:PORT/cb"],"grant_types":["authorization_code"],
//      "response_types":["code"],"token_endpoint_auth_method":"client_secret_basic"}
//   Two extra client metadata fields are accepted there (and used above):
//     kairo_groups             array of strings: the groups claim of the
//                              client's client_credentials tokens
//     kairo_access_token_alg   "RS256" (default) or "ES256": how its urn:kairo
//                              access tokens are signed
//   PKCE (S256, the only method) is required of every authorization request.
//
// Access tokens: a token request with resource=urn:kairo (client_credentials,
// authorization_code or refresh_token) returns a JWT access token
// (RFC 9068, header typ "at+jwt") signed RS256 (or ES256, see above) with
// iss, aud "urn:kairo", exp, iat, jti, client_id, scope (the granted kairo:api,
// absent when none was asked for), sub (the account; the client id for
// client_credentials) and groups (the account's groups; for
// client_credentials the client's kairo_groups, [] when it has none).
// client_credentials without a resource parameter defaults to urn:kairo too.
// A code exchange WITHOUT resource=urn:kairo returns an opaque access token for
// the userinfo endpoint (GET /me) instead, as the spec wants when openid was
// asked for. The authorization request itself needs no resource parameter
// (urn:kairo is its default resource).
//
// JWKS (GET /jwks): one RSA-2048 key (kid "rs256-<n>", alg RS256) and one
// P-256 key (kid "es256-<n>", alg ES256), generated at start-up. ID tokens
// are RS256.
//
// ---------------------------------------------------------------------------
// Non-browser login (a test client with a cookie jar that honours cookie
// paths, and automatic redirects OFF; resolve every Location against the
// issuer: some are relative (/interaction/UID), some absolute):
//
//  1. GET /auth?client_id=CID&response_type=code&redirect_uri=RURI
//         &scope=openid%20email%20profile%20groups[%20kairo:api]
//         &state=STATE&nonce=NONCE
//         &code_challenge=BASE64URL(SHA256(VERIFIER))&code_challenge_method=S256
//     -> 303, Location: /interaction/UID
//        Set-Cookie: _interaction (Path=/interaction/UID) and
//                    _interaction_resume (Path=/auth/UID), each with a .sig twin.
//  2. (optional) GET /interaction/UID -> 200, the HTML login form
//        (<input type="hidden" name="prompt" value="login"/>, fields login, password).
//  3. POST /interaction/UID, Content-Type: application/x-www-form-urlencoded,
//        body prompt=login&login=alice&password=anything
//     -> 303, Location: ISSUER/auth/UID
//        (unknown login name: 200 with the form again and "unknown account")
//  4. GET ISSUER/auth/UID
//     -> 303, Location: /interaction/UID2 (a new uid: the consent prompt);
//        Set-Cookie: _session (Path=/) and new interaction cookies for UID2.
//  5. POST /interaction/UID2, body prompt=consent
//     -> 303, Location: ISSUER/auth/UID2
//  6. GET ISSUER/auth/UID2
//     -> 303, Location: RURI?code=CODE&state=STATE&iss=ISSUER (iss URL-encoded)
//  7. POST /token, Authorization: Basic base64(urlenc(CID):urlenc(SECRET)),
//        Content-Type: application/x-www-form-urlencoded,
//        body grant_type=authorization_code&code=CODE&redirect_uri=RURI
//             &code_verifier=VERIFIER[&resource=urn:kairo]
//     -> 200 {"access_token","expires_in","id_token","refresh_token"(if the
//             client may refresh),"scope","token_type":"Bearer"}
//
// A code is single-use and lives 5 minutes; using it twice revokes the
// tokens issued from it. With the same cookie jar a later /auth for the same
// client and scopes skips both prompts: step 1 answers 303 straight to
// RURI?code=... . prompt=login at /auth forces step 3 again (switch users);
// a new account or new scopes bring the consent prompt back. Robust driver:
// follow Location while it is on the issuer; at /interaction/UID, POST
// prompt=login&login=..&password=.. or prompt=consent (GET the page and read
// its hidden "prompt" input to know which); stop when Location starts with
// RURI. GET /interaction/UID/abort instead ends in RURI?error=access_denied.
// .ci/oidc/smoke.mjs does all of this.
// ---------------------------------------------------------------------------

import * as crypto from 'node:crypto';
import { Provider, errors } from 'oidc-provider';

const PORT = Number.parseInt(process.env.KAIRO_OIDC_PORT ?? '', 10);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) {
  console.error('provider.mjs: KAIRO_OIDC_PORT must be set to a port number');
  process.exit(3);
}
const ISSUER = process.env.KAIRO_OIDC_ISSUER || `http://127.0.0.1:${PORT}`;
const RESOURCE = 'urn:kairo';
const API_SCOPE = 'kairo:api';
const randomSecret = () => crypto.randomBytes(24).toString('base64url');
const envList = (value, fallback) => (value ?? fallback)
  .split(',').map((s) => s.trim()).filter(Boolean);

// ------------------------------------------------------------------ accounts
const ACCOUNTS = {
  alice: { name: 'Alice Scientist', groups: ['ml-scientists'] },
  bob: { name: 'Bob Approver', groups: ['ml-approvers'] },
  carol: { name: 'Carol Admin', groups: ['ml-admins'] },
  dave: { name: 'Dave Deployer', groups: ['ml-deployers'] },
  erin: { name: 'Erin Nogroups', groups: [] },
};
const hasAccount = (id) => typeof id === 'string' && Object.hasOwn(ACCOUNTS, id);

async function findAccount(_ctx, id) {
  if (!hasAccount(id)) return undefined;
  const { name, groups } = ACCOUNTS[id];
  return {
    accountId: id,
    // The provider filters these by the granted scopes/claims.
    async claims() {
      return {
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        name,
        preferred_username: id,
        groups: [...groups],
      };
    },
  };
}

// ---------------------------------------------------------------------- keys
function signingKey(type, options, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = `${alg.toLowerCase()}-${crypto.randomBytes(6).toString('hex')}`;
  return { ...jwk, kid, alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

// ------------------------------------------------------------------- clients
const CLIENT_GROUPS = 'kairo_groups';
const CLIENT_TOKEN_ALG = 'kairo_access_token_alg';
const clients = [
  {
    client_id: 'kairo-web',
    client_secret: process.env.KAIRO_OIDC_WEB_CLIENT_SECRET || randomSecret(),
    client_name: 'Kairo web login',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: envList(
      process.env.KAIRO_OIDC_REDIRECT_URIS,
      'http://127.0.0.1:8080/auth/oidc/callback',
    ),
  },
  {
    client_id: 'kairo-ci',
    client_secret: process.env.KAIRO_OIDC_CI_CLIENT_SECRET || randomSecret(),
    client_name: 'Kairo CI (machine to machine)',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    [CLIENT_GROUPS]: ['ml-deployers'],
  },
  {
    client_id: 'kairo-ci-es',
    client_secret: process.env.KAIRO_OIDC_CI_ES_CLIENT_SECRET || randomSecret(),
    client_name: 'Kairo CI (machine to machine, ES256 access tokens)',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    [CLIENT_GROUPS]: ['ml-deployers'],
    [CLIENT_TOKEN_ALG]: 'ES256',
  },
];

// --------------------------------------------------------------- provider
const configuration = {
  clients,
  findAccount,
  jwks,
  cookies: { keys: [randomSecret(), randomSecret()] },

  // Which claims each scope releases; scopes named here are advertised.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
    acr: null,
    auth_time: null,
    iss: null,
    sid: null,
  },
  // Put every claim of the granted scopes into the ID token too, not only
  // into the userinfo response.
  conformIdTokenClaims: false,

  pkce: { required: () => true }, // S256 is the only method oidc-provider knows

  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'RS256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },

  extraClientMetadata: {
    properties: [CLIENT_GROUPS, CLIENT_TOKEN_ALG],
    validator(_ctx, key, value) {
      if (value === undefined) return;
      if (key === CLIENT_GROUPS
          && !(Array.isArray(value) && value.every((g) => typeof g === 'string'))) {
        throw new errors.InvalidClientMetadata(`${CLIENT_GROUPS} must be an array of strings`);
      }
      if (key === CLIENT_TOKEN_ALG && !['RS256', 'ES256'].includes(value)) {
        throw new errors.InvalidClientMetadata(`${CLIENT_TOKEN_ALG} must be RS256 or ES256`);
      }
    },
  },

  // Extra claims of access tokens (JWT payload; introspection for opaque ones).
  async extraTokenClaims(ctx, token) {
    if (token.accountId) {
      return { groups: hasAccount(token.accountId) ? [...ACCOUNTS[token.accountId].groups] : [] };
    }
    const client = ctx?.oidc?.client?.clientId === token.clientId
      ? ctx.oidc.client
      : await ctx.oidc.provider.Client.find(token.clientId);
    return { groups: [...(client?.[CLIENT_GROUPS] ?? [])] };
  },

  // Refresh tokens for every client allowed the refresh_token grant.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),

  features: {
    devInteractions: { enabled: true }, // built-in login + consent forms
    registration: { enabled: true }, // open dynamic client registration at /reg
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource at /auth or in a client_credentials request -> urn:kairo.
      // With oneOf (token endpoint, several granted) keep the default: fail.
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? RESOURCE,
      useGrantedResource: async () => false,
      async getResourceServerInfo(_ctx, resourceIndicator, client) {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: API_SCOPE,
          audience: RESOURCE,
          accessTokenTTL: 60 * 60,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: client?.[CLIENT_TOKEN_ALG] ?? 'RS256' } },
        };
      },
    },
  },

  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 60 * 60,
    AuthorizationCode: 5 * 60,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 60 * 60,
    DeviceCode: 10 * 60,
    BackchannelAuthenticationRequest: 10 * 60,
    IdToken: 60 * 60,
    RefreshToken: 24 * 60 * 60,
    Interaction: 60 * 60,
    Session: 24 * 60 * 60,
    Grant: 24 * 60 * 60,
    PreAuthorizedCode: 10 * 60,
  },

  clientBasedCORS: () => true,
};

const provider = new Provider(ISSUER, configuration);
// Plain http straight to Node on loopback: no TLS-offloading proxy, so no
// X-Forwarded-* headers are to be trusted (provider.proxy stays false).
provider.proxy = false;

// Refuse login names outside the account table in the dev login form: render
// the form again with an error instead of letting the login through.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)
      && ctx.is('application/x-www-form-urlencoded')) {
    const raw = await readBody(ctx.req);
    const form = new URLSearchParams(raw);
    if (form.get('prompt') === 'login' && !hasAccount(form.get('login'))) {
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><p class="error">unknown account</p>
<form autocomplete="off" action="${ctx.path}" method="post">
<input type="hidden" name="prompt" value="login"/>
<input required type="text" name="login" placeholder="Enter a login (alice, bob, carol, dave, erin)"/>
<input required type="password" name="password" placeholder="and any password"/>
<button type="submit">Sign-in</button></form></body></html>`;
      return;
    }
    // The stream is consumed: oidc-provider's parser falls back to req.body.
    ctx.req.body = raw;
  }
  await next();
});

// One line per request in the log.
provider.use(async (ctx, next) => {
  const started = process.hrtime.bigint();
  try {
    await next();
  } finally {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`${new Date().toISOString()} ${ctx.method} ${ctx.path} -> ${ctx.status} (${ms.toFixed(1)} ms)`);
  }
});

for (const event of ['server_error', 'authorization.error', 'grant.error',
  'registration_create.error', 'introspection.error', 'userinfo.error',
  'end_session.error', 'backchannel.error']) {
  provider.on(event, (ctx, err) => {
    const e = err ?? ctx;
    const cause = e?.cause ? ` (cause: ${e.cause.message ?? e.cause})` : '';
    console.log(`${new Date().toISOString()} ${event}: ${e?.name ?? ''} ${e?.message ?? e} ${e?.error_description ?? ''}${cause}`);
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Static clients are validated lazily by oidc-provider; check them now so a
// bad KAIRO_OIDC_REDIRECT_URIS fails the start instead of the first login.
for (const { client_id: id } of clients) {
  try {
    if (!await provider.Client.find(id)) throw new Error('not found');
  } catch (err) {
    console.error(`client ${id} is invalid: ${err.message} ${err.error_description ?? ''}`);
    process.exit(3); // start-oidc.sh: configuration error, do not retry
  }
}

const server = provider.listen(PORT, '127.0.0.1', () => {
  console.log(`${new Date().toISOString()} oidc-provider listening: issuer ${ISSUER}, `
    + `discovery ${ISSUER}/.well-known/openid-configuration, `
    + `kids ${jwks.keys.map((k) => k.kid).join(' ')}`);
});
server.on('error', (err) => {
  console.error(`listen failed: ${err.message}`);
  process.exit(1);
});

function shutdown(signal) {
  console.log(`${new Date().toISOString()} ${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
