// An OpenID provider for the tests (npm oidc-provider), on loopback only.
//
//   node provider.mjs PORT CONFIG.json
//
// CONFIG: {"clients": [{"client_id", "client_secret", "claims": {...}, "ttl": seconds}],
//          "accounts": {"alice": {"groups": ["backend"]}}, "device_client": "authgate"}.
// Each client stands for a CI job: its client-credentials access token is a signed JWT (ES256)
// whose audience is the requested `resource` and which carries the client's `claims`, like a CI
// platform's workload token. Signing keys are generated at every start, so restarting the
// provider rotates them (new kid).
// People: `device_client` is a public client for the device authorization grant (RFC 8628), and
// for the authorization code grant with PKCE when the config lists its `redirect_uris`.
// A person signs in on /interaction/UID, a one-field login page (no password: the tests' stand-in),
// which submits /interaction/UID?login=NAME (or ?cancel=1: the person refuses, access_denied);
// /test/account?login=NAME&groups=a,b changes an account, &delete=1 removes it.
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const byId = new Map(config.clients.map((c) => [c.client_id, c]));
const accounts = new Map(Object.entries(config.accounts || {}));
const redirects = config.redirect_uris || [];
const people = config.device_client ? [{
  client_id: config.device_client, token_endpoint_auth_method: 'none', redirect_uris: redirects,
  response_types: redirects.length ? ['code'] : [],
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token',
    ...(redirects.length ? ['authorization_code'] : [])],
  id_token_signed_response_alg: 'ES256',
}] : [];
const loginPage = (uid) => `<!doctype html><html lang="en"><head><title>Test provider: sign in</title></head>
<body><h1>Sign in to the test provider</h1>
<form method="get" action="/interaction/${uid}">
<label for="login">Login</label> <input id="login" name="login" autofocus>
<button type="submit">Continue</button></form>
<form method="get" action="/interaction/${uid}"><input type="hidden" name="cancel" value="1">
<button type="submit">Cancel</button></form></body></html>`;
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `k-${Date.now()}`, alg: 'ES256', use: 'sig' };

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [...config.clients.map((c) => ({
    client_id: c.client_id, client_secret: c.client_secret,
    grant_types: ['client_credentials'], redirect_uris: [], response_types: [], id_token_signed_response_alg: 'ES256',
  })), ...people],
  findAccount: (ctx, id) => (accounts.has(id) ? {
    accountId: id,
    claims: () => ({ sub: id, preferred_username: id, groups: accounts.get(id).groups || [] }),
  } : undefined),
  scopes: ['openid', 'offline_access', 'profile', 'groups', 'registry'],
  conformIdTokenClaims: false, // the ID token carries preferred_username and groups, as Keycloak's mappers do
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [jwk] },
  claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'], ci: ['repository', 'ref', 'workflow'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'registry',
        audience: resource,
        accessTokenTTL: byId.get(client.clientId).ttl || 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => byId.get(token.clientId)?.claims,
});
provider.proxy = false;
provider.use(async (ctx, next) => {
  const login = ctx.query.login;
  if (ctx.path.startsWith('/interaction/') && ctx.query.cancel) {
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'the person cancelled the sign-in' }, { mergeWithLastSubmission: false });
    return;
  }
  if (ctx.path.startsWith('/interaction/') && !login) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.type = 'html';
    ctx.body = loginPage(details.uid);
    return;
  }
  if (ctx.path.startsWith('/interaction/') && login) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login }, consent: { grantId } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (ctx.path === '/test/account' && login) {
    if (ctx.query.delete) accounts.delete(login);
    else accounts.set(login, { groups: (ctx.query.groups || '').split(',').filter(Boolean) });
    ctx.body = { ok: true };
    return;
  }
  await next();
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
