// An OpenID provider for the tests (npm oidc-provider), on loopback only.
//
//   node provider.mjs PORT CONFIG.json
//
// CONFIG: {"clients": [{"client_id", "client_secret", "claims": {...}, "ttl": seconds}]}.
// Each client stands for a CI job: its client-credentials access token is a signed JWT (ES256)
// whose audience is the requested `resource` and which carries the client's `claims`, like a CI
// platform's workload token. Signing keys are generated at every start, so restarting the
// provider rotates them (new kid).
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const byId = new Map(config.clients.map((c) => [c.client_id, c]));
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `k-${Date.now()}`, alg: 'ES256', use: 'sig' };

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id, client_secret: c.client_secret,
    grant_types: ['client_credentials'], redirect_uris: [], response_types: [], id_token_signed_response_alg: 'ES256',
  })),
  jwks: { keys: [jwk] },
  claims: { openid: ['sub'], ci: ['repository', 'ref', 'workflow'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
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
provider.listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
