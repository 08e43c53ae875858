// End-to-end check of the provider started by .ci/start-oidc.sh, driving the
// browser login by plain HTTP the way an integration test would.
//
// Usage (after eval "$(bash .ci/start-oidc.sh)"):
//   node "$OIDC_STATE_DIR/smoke.mjs"        # start-oidc.sh copies it there, next to node_modules
// Reads KAIRO_TEST_OIDC_* from the environment; exits non-zero on the first failure.
// Verifies signatures with jose (a dependency of oidc-provider).

import * as crypto from 'node:crypto';
import * as assert from 'node:assert/strict';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (eval "$(bash .ci/start-oidc.sh)" first)`);
  return v;
};
const ISSUER = env('KAIRO_TEST_OIDC_ISSUER');
const AUDIENCE = 'urn:kairo';
const JWKS = createRemoteJWKSet(new URL(`${ISSUER}/jwks`));
const basic = (id, secret) => `Basic ${Buffer.from(
  `${encodeURIComponent(id)}:${encodeURIComponent(secret)}`,
).toString('base64')}`;
const step = (msg) => console.log(`ok   ${msg}`);

// A cookie jar that honours the Path attribute (oidc-provider scopes its
// interaction cookies to /interaction/UID and /auth/UID).
class Jar {
  #cookies = new Map(); // name|path -> { name, value, path }
  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const key = `${name}|${path}`;
      if (expired || value === '') this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }
  header(url) {
    const { pathname } = new URL(url);
    return [...this.#cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

async function request(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  jar?.store(res);
  return res;
}

async function tokenRequest(clientId, secret, form) {
  const res = await request(null, `${ISSUER}/token`, {
    method: 'POST', form, headers: { authorization: basic(clientId, secret) },
  });
  const json = await res.json();
  return { status: res.status, json };
}

async function verifyAccessToken(token, alg) {
  assert.equal(decodeProtectedHeader(token).alg, alg);
  const { payload, protectedHeader } = await jwtVerify(token, JWKS, {
    issuer: ISSUER, audience: AUDIENCE, algorithms: [alg], typ: 'at+jwt',
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  for (const claim of ['iss', 'aud', 'exp', 'iat', 'jti', 'client_id', 'sub']) {
    assert.ok(payload[claim] !== undefined, `access token lacks ${claim}`);
  }
  assert.ok(Array.isArray(payload.groups), 'access token lacks groups');
  return payload;
}

// Drive /auth -> login form -> consent -> redirect_uri, as documented in provider.mjs.
async function login(jar, { clientId, redirectUri, user, scope, extra = {} }) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(8).toString('hex');
  const nonce = crypto.randomBytes(8).toString('hex');
  const q = new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  });
  let url = `${ISSUER}/auth?${q}`;
  const prompts = [];
  for (let hops = 0; hops < 12; hops += 1) {
    const res = await request(jar, url);
    assert.equal(res.status, 303, `GET ${url} -> ${res.status}: ${await res.text()}`);
    const next = new URL(res.headers.get('location'), ISSUER).href;
    if (next.startsWith(redirectUri)) {
      const cb = new URL(next);
      assert.equal(cb.searchParams.get('state'), state);
      assert.equal(cb.searchParams.get('iss'), ISSUER);
      if (cb.searchParams.get('error')) throw new Error(`authorization error: ${next}`);
      return { code: cb.searchParams.get('code'), verifier, nonce, prompts };
    }
    const m = /^\/interaction\/([^/?]+)$/.exec(new URL(next).pathname);
    if (!m) { url = next; continue; } // e.g. /auth/UID: follow
    const page = await (await request(jar, next)).text();
    const prompt = /name="prompt" value="(login|consent)"/.exec(page)?.[1];
    assert.ok(prompt, `no prompt form at ${next}`);
    prompts.push(prompt);
    const form = prompt === 'login'
      ? { prompt, login: user, password: 'any-password' }
      : { prompt };
    const posted = await request(jar, next, { method: 'POST', form });
    assert.equal(posted.status, 303, `POST ${next} (${prompt}) -> ${posted.status}`);
    url = new URL(posted.headers.get('location'), ISSUER).href;
  }
  throw new Error('too many redirects');
}

const EXPECTED_GROUPS = {
  alice: ['ml-scientists'], bob: ['ml-approvers'], carol: ['ml-admins'], dave: ['ml-deployers'], erin: [],
};

// ------------------------------------------------------------------------
const disco = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
assert.equal(disco.issuer, ISSUER);
assert.deepEqual(disco.code_challenge_methods_supported, ['S256']);
for (const s of ['openid', 'email', 'profile', 'groups']) assert.ok(disco.scopes_supported.includes(s));
assert.ok(disco.registration_endpoint);
step(`discovery: issuer ${disco.issuer}, scopes ${disco.scopes_supported.join(' ')}`);

const { keys } = await (await fetch(`${ISSUER}/jwks`)).json();
assert.deepEqual(keys.map((k) => `${k.kty}/${k.alg}`).sort(), ['EC/ES256', 'RSA/RS256']);
assert.ok(keys.every((k) => k.d === undefined), 'private key material in the JWKS');
step(`jwks: ${keys.map((k) => `${k.kid} (${k.kty} ${k.alg}${k.crv ? ` ${k.crv}` : ''})`).join(', ')}`);

for (const [id, secretVar, alg] of [
  ['kairo-ci', 'KAIRO_TEST_OIDC_CI_CLIENT_SECRET', 'RS256'],
  ['kairo-ci-es', 'KAIRO_TEST_OIDC_CI_ES_CLIENT_SECRET', 'ES256'],
]) {
  const { status, json } = await tokenRequest(id, env(secretVar), {
    grant_type: 'client_credentials', resource: AUDIENCE, scope: 'kairo:api',
  });
  assert.equal(status, 200, JSON.stringify(json));
  const p = await verifyAccessToken(json.access_token, alg);
  assert.equal(p.client_id, id);
  assert.equal(p.scope, 'kairo:api');
  assert.deepEqual(p.groups, ['ml-deployers']);
  step(`client_credentials ${id}: ${alg} JWT, aud ${p.aud}, scope ${p.scope}, groups ${JSON.stringify(p.groups)}, exp in ${p.exp - p.iat}s`);
}
{
  const { status, json } = await tokenRequest('kairo-ci', 'wrong', { grant_type: 'client_credentials' });
  assert.equal(status, 401);
  assert.equal(json.error, 'invalid_client');
  step('client_credentials with a wrong secret: 401 invalid_client');
}

// Dynamic registration with a random redirect URI, then the login flow.
const redirectUri = `http://127.0.0.1:${20000 + crypto.randomInt(20000)}/auth/oidc/callback`;
const regRes = await fetch(`${ISSUER}/reg`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }),
});
assert.equal(regRes.status, 201);
const reg = await regRes.json();
step(`registration: client ${reg.client_id} for ${redirectUri}`);

for (const user of Object.keys(EXPECTED_GROUPS)) {
  const jar = new Jar();
  const { code, verifier, nonce, prompts } = await login(jar, {
    clientId: reg.client_id, redirectUri, user, scope: 'openid email profile groups kairo:api',
  });
  assert.deepEqual(prompts, ['login', 'consent']);
  const { status, json } = await tokenRequest(reg.client_id, reg.client_secret, {
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, resource: AUDIENCE,
  });
  assert.equal(status, 200, JSON.stringify(json));
  const { payload: id } = await jwtVerify(json.id_token, JWKS, {
    issuer: ISSUER, audience: reg.client_id, algorithms: ['RS256'],
  });
  assert.equal(id.sub, user);
  assert.equal(id.nonce, nonce);
  assert.equal(id.email, `${user}@example.com`);
  assert.deepEqual(id.groups, EXPECTED_GROUPS[user]);
  const at = await verifyAccessToken(json.access_token, 'RS256');
  assert.equal(at.sub, user);
  assert.equal(at.client_id, reg.client_id);
  assert.deepEqual(at.groups, EXPECTED_GROUPS[user]);
  assert.ok(json.refresh_token, 'no refresh token');
  step(`code+PKCE ${user}: id_token {sub ${id.sub}, email ${id.email}, name ${id.name}, groups ${JSON.stringify(id.groups)}}, `
    + `access token RS256 aud ${at.aud} scope ${at.scope} groups ${JSON.stringify(at.groups)}`);

  if (user === 'alice') {
    // Refresh: a new JWT access token for urn:kairo.
    const r = await tokenRequest(reg.client_id, reg.client_secret, {
      grant_type: 'refresh_token', refresh_token: json.refresh_token, resource: AUDIENCE,
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const at2 = await verifyAccessToken(r.json.access_token, 'RS256');
    assert.equal(at2.sub, 'alice');
    step('refresh_token with resource=urn:kairo: new RS256 JWT access token');

    // Same jar, second authorization: no prompts (session + grant remembered).
    const again = await login(jar, {
      clientId: reg.client_id, redirectUri, user, scope: 'openid email profile groups kairo:api',
    });
    assert.deepEqual(again.prompts, []);
    // Without resource at the token endpoint: opaque token for the userinfo endpoint.
    const o = await tokenRequest(reg.client_id, reg.client_secret, {
      grant_type: 'authorization_code', code: again.code, redirect_uri: redirectUri, code_verifier: again.verifier,
    });
    assert.equal(o.status, 200, JSON.stringify(o.json));
    assert.equal(o.json.access_token.split('.').length, 1, 'expected an opaque access token');
    const ui = await (await fetch(`${ISSUER}/me`, { headers: { authorization: `Bearer ${o.json.access_token}` } })).json();
    assert.equal(ui.sub, 'alice');
    assert.deepEqual(ui.groups, ['ml-scientists']);
    step(`second login in the same jar: no prompts; no resource -> opaque token, /me ${JSON.stringify(ui)}`);

    // A wrong code_verifier is refused.
    const third = await login(jar, {
      clientId: reg.client_id, redirectUri, user, scope: 'openid email profile groups',
    });
    const bad = await tokenRequest(reg.client_id, reg.client_secret, {
      grant_type: 'authorization_code', code: third.code, redirect_uri: redirectUri,
      code_verifier: crypto.randomBytes(32).toString('base64url'),
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error, 'invalid_grant');
    step('wrong code_verifier: 400 invalid_grant');
  }
}

{
  // The pre-registered confidential web client, with its (first) redirect URI.
  const webRedirect = (process.env.KAIRO_OIDC_REDIRECT_URIS || 'http://127.0.0.1:8080/auth/oidc/callback')
    .split(',')[0].trim();
  const { code, verifier } = await login(new Jar(), {
    clientId: 'kairo-web', redirectUri: webRedirect, user: 'bob', scope: 'openid email profile groups',
  });
  const { status, json } = await tokenRequest('kairo-web', env('KAIRO_TEST_OIDC_WEB_CLIENT_SECRET'), {
    grant_type: 'authorization_code', code, redirect_uri: webRedirect, code_verifier: verifier, resource: AUDIENCE,
  });
  assert.equal(status, 200, JSON.stringify(json));
  const { payload: id } = await jwtVerify(json.id_token, JWKS, { issuer: ISSUER, audience: 'kairo-web' });
  assert.deepEqual(id.groups, ['ml-approvers']);
  const at = await verifyAccessToken(json.access_token, 'RS256');
  assert.equal(at.client_id, 'kairo-web');
  assert.equal(at.scope, undefined); // kairo:api was not asked for
  assert.ok(json.refresh_token);
  step(`kairo-web code+PKCE bob via ${webRedirect}: id_token groups ${JSON.stringify(id.groups)}, access token without scope, refresh token`);
}
{
  // PKCE is required.
  const q = new URLSearchParams({
    client_id: reg.client_id, response_type: 'code', redirect_uri: redirectUri, scope: 'openid', state: 's',
  });
  const res = await request(new Jar(), `${ISSUER}/auth?${q}`);
  const loc = new URL(res.headers.get('location'), ISSUER);
  assert.equal(loc.searchParams.get('error'), 'invalid_request');
  step(`no code_challenge: redirected with error=invalid_request (${loc.searchParams.get('error_description')})`);
}
{
  // An unknown login name is refused: the form comes back, no redirect.
  const jar = new Jar();
  const q = new URLSearchParams({
    client_id: reg.client_id, response_type: 'code', redirect_uri: redirectUri, scope: 'openid', state: 's',
    code_challenge: crypto.createHash('sha256').update('x'.repeat(43)).digest('base64url'), code_challenge_method: 'S256',
  });
  const res = await request(jar, `${ISSUER}/auth?${q}`);
  const next = new URL(res.headers.get('location'), ISSUER).href;
  const posted = await request(jar, next, { method: 'POST', form: { prompt: 'login', login: 'mallory', password: 'x' } });
  assert.equal(posted.status, 200);
  assert.match(await posted.text(), /unknown account/);
  step('unknown login name: 200 with the form again, no redirect');
}
{
  // kairo-web is pre-registered with its redirect URI(s).
  const res = await request(new Jar(), `${ISSUER}/auth?${new URLSearchParams({
    client_id: 'kairo-web', response_type: 'code', redirect_uri: 'http://evil.example/cb', scope: 'openid', state: 's',
    code_challenge: 'x'.repeat(43), code_challenge_method: 'S256',
  })}`);
  assert.equal(res.status, 400);
  step('kairo-web with an unregistered redirect_uri: 400');
}
console.log('smoke: all checks passed');
