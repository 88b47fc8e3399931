// A real OpenID Connect provider (oidc-provider, OpenID-certified) for the login tests and for
// `cargo xtask dev --idp`. Configured from the environment:
//   PORT        port on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   CLIENTS     JSON array of { client_id, client_secret, redirect_uris, post_logout_redirect_uris }
//   ACCOUNTS    JSON array of { sub, email, email_verified, name, org_id? }; sign in with the sub
//               as login
//   KID         the id of the signing key generated at start (a restart with another KID is a
//               key rotation)
// The login form is oidc-provider's development interaction: any password, the sub as login;
// consent is granted without asking.
//
// Claims are placed as OpenID Connect Core 5.4 lets a code-flow provider place them, and as
// oidc-provider does by default (conformIdTokenClaims): the ID token carries sub, org_id and
// auth_time; email, email_verified and name come from the UserInfo endpoint (GET /me).
//
// For attack tests, POST /__test/next-id-token with {"mode": ...} rewrites the id_token of the
// next token response once: "wrong_audience", "expired", "wrong_nonce", "wrong_at_hash",
// "old_auth_time", "no_auth_time" (re-signed with the provider's key), "with_email" (the
// account's email, email_verified and name added, as Auth0 sends them; re-signed),
// "tampered" (a claim changed, the signature kept), "unsigned" (alg none).
// POST /__test/next-userinfo with {"mode": ...} rewrites the next UserInfo response once:
// "as_account" with {"sub": ...} answers with that other account's claims (another sub),
// "malformed" answers with claims that do not parse (sub a number).
// GET /__test/userinfo-calls answers {"calls": n}, the number of UserInfo requests so far.

import { generateKeyPair, exportJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4400);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS || '[]');
const accounts = JSON.parse(process.env.ACCOUNTS || '[]');
const kid = process.env.KID || 'key-1';

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

let nextMode = null;
let nextUserinfo = null;
let userinfoCalls = 0;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    require_auth_time: true,
    ...c,
  })),
  jwks: { keys: [jwk] },
  // The default, spelled out: scope-requested claims (email, profile) go to UserInfo only.
  conformIdTokenClaims: true,
  claims: {
    // org_id: Auth0 Organizations' claim, for accounts that name one.
    openid: ['sub', 'org_id'],
    email: ['email', 'email_verified'],
    profile: ['name', 'updated_at'],
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: { IdToken: 86400, AccessToken: 3600, AuthorizationCode: 60, Session: 86400, Interaction: 600, Grant: 86400 },
  async findAccount(ctx, sub) {
    const account = accounts.find((a) => a.sub === sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        // Auth0 sends updated_at as RFC 3339 text, not a number: so does this provider.
        return { sub, updated_at: '2026-01-02T03:04:05.678Z', ...account };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId =
      ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

function b64(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

async function rewrite(idToken, mode) {
  const claims = decodeJwt(idToken);
  const header = decodeProtectedHeader(idToken);
  const now = Math.floor(Date.now() / 1000);
  const resign = (payload) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: header.kid }).sign(privateKey);
  switch (mode) {
    case 'wrong_audience':
      return resign({ ...claims, aud: 'another-client' });
    case 'expired':
      return resign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'wrong_nonce':
      return resign({ ...claims, nonce: 'not-the-nonce-that-was-sent' });
    case 'wrong_at_hash':
      return resign({ ...claims, at_hash: 'AAAAAAAAAAAAAAAAAAAAAA' });
    case 'old_auth_time':
      return resign({ ...claims, auth_time: now - 3600 });
    case 'no_auth_time': {
      const { auth_time: _, ...rest } = claims;
      return resign(rest);
    }
    case 'with_email': {
      const account = accounts.find((a) => a.sub === claims.sub) || {};
      const { email, email_verified, name } = account;
      return resign({ ...claims, email, email_verified, name });
    }
    case 'tampered': {
      const [h, , s] = idToken.split('.');
      return `${h}.${b64({ ...claims, email: 'someone.else@example.org' })}.${s}`;
    }
    case 'unsigned':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    default:
      return idToken;
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/next-id-token' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    nextMode = JSON.parse(body || '{}').mode || null;
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/next-userinfo' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    const parsed = JSON.parse(body || '{}');
    nextUserinfo = parsed.mode ? parsed : null;
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/userinfo-calls' && ctx.method === 'GET') {
    ctx.body = { calls: userinfoCalls };
    return;
  }
  if (ctx.path === '/me') userinfoCalls += 1;
  await next();
  if (ctx.path === '/token' && nextMode && ctx.body && ctx.body.id_token) {
    const mode = nextMode;
    nextMode = null;
    ctx.body = { ...ctx.body, id_token: await rewrite(ctx.body.id_token, mode) };
  }
  if (ctx.path === '/me' && nextUserinfo && ctx.status === 200 && typeof ctx.body === 'object') {
    const { mode, sub } = nextUserinfo;
    nextUserinfo = null;
    if (mode === 'as_account') {
      const other = accounts.find((a) => a.sub === sub);
      const { org_id: _, ...claims } = other || { sub };
      ctx.body = claims;
    } else if (mode === 'malformed') {
      ctx.body = { ...ctx.body, sub: 42 };
    }
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: true, issuer, kid }));
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
