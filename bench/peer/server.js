// The benchmark's peer: node-oidc-provider (npm "oidc-provider", v9) configured like idp, so that
// scripts/bench can run the same scenarios against both on the same machine.
//
//   npm install --no-package-lock --no-audit --no-fund   # once, in bench/peer
//   PEER_PORT=8001 PEER_WORKERS=2 node server.js          # ready when GET /readyz answers 200
//
//   PEER_PORT         port on 127.0.0.1 (default 8001)
//   PEER_WORKERS      worker processes (node:cluster; default: the number of cores)
//   PEER_ISSUER       issuer (default http://127.0.0.1:$PEER_PORT)
//   PEER_STORE_SIZE   entries the shared store keeps (oidc-provider's LRU; default 100,000)
//
// Clients (clients.json beside this file holds the same, for scripts):
//   bench      / bench-secret      client_credentials, scope "read", resource https://api.example
//   bench-api  / bench-api-secret  the resource server: introspection (and revocation)
//   bench-web  / bench-web-secret  authorization_code + refresh_token, client_secret_basic,
//              redirect https://bench.example/callback, scope "openid email offline_access"
// The account is fixed: bench@example.com, logged in and consented without a form.
//
// Access tokens for https://api.example are JWTs (RFC 9068: typ at+jwt, RS256); refresh tokens
// rotate on every use, and a rotated token presented again revokes the whole grant.
//
// Why the shared store. idp keeps its state (codes, sessions, refresh-token families) in
// PostgreSQL, so any of its workers can serve any request. oidc-provider keeps its state behind
// an adapter, and its built-in one (lib/adapters/memory_adapter.js: an LRU keyed
// "Model:id" with "grant:<grantId>", "sessionUid:<uid>" and "userCode:<code>" indexes and
// per-entry expiry) lives in the memory of one process. Under node:cluster connections are
// spread round-robin over the workers, so with a per-worker memory store a refresh token (or an
// interaction, session or authorization code) made on one worker is unknown to the others: half
// the refreshes would fail with invalid_grant. So the workers here use ClusterAdapter, which
// forwards every adapter call over cluster IPC to the primary process, where oidc-provider's own
// MemoryAdapter class runs on one store shared by all workers: the same data structure and
// semantics, in one place. The primary also accepts the connections and hands them out (node's
// round-robin scheduling); it does no OAuth work itself.
//
// The store is larger than the built-in adapter's 1,000 entries: with 1,000, a refresh load's
// inserts (one refresh token a request) push out every family not used in the last ~1,000-2,000
// writes, e.g. the families harvested for the measured run while the warm-up runs.
//
// What needs no state at all: a JWT-format access token (client_credentials with
// resource=https://api.example, and the access tokens of the code flow and refresh) is never
// written to the adapter (oidc-provider emits "issued", not "saved"), so client_credentials
// with a resource is stateless, like idp's. The other side of that: oidc-provider refuses to
// introspect or revoke a JWT (unsupported_token_type); only opaque tokens (client_credentials
// without a resource, which are stored) can be introspected.

import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';

import Provider from 'oidc-provider';
// oidc-provider's own in-memory adapter and LRU, run in the primary (not in the package's
// public API: pinned to major 9 in package.json; checked at start below).
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const PORT = Number(process.env.PEER_PORT || 8001);
const ISSUER = process.env.PEER_ISSUER || `http://127.0.0.1:${PORT}`;
const RESOURCE = 'https://api.example';
const ACCOUNT = 'bench@example.com';
const CLIENTS = JSON.parse(fs.readFileSync(new URL('./clients.json', import.meta.url), 'utf8'));
const CLOCK_TOLERANCE = 15; // seconds; oidc-provider's default, used by the store's expiry too
const IPC = 'peer-adapter'; // the type of the adapter's IPC messages

// The primary: makes the keys every worker shares, forks the workers, holds the store.
function primary() {
  if (typeof MemoryAdapter !== 'function' || typeof LRU !== 'function') {
    throw new Error('oidc-provider no longer ships lib/adapters/memory_adapter.js or lib/helpers/lru.js');
  }
  const count = Number(process.env.PEER_WORKERS || os.availableParallelism());
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig' };
  jwk.kid = crypto.createHash('sha256') // RFC 7638 thumbprint
    .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest('base64url');
  const env = {
    PEER_SECRETS: JSON.stringify({ jwks: { keys: [jwk] }, cookieKeys: [crypto.randomBytes(32).toString('base64url')] }),
  };

  const store = new LRU({ maxSize: Number(process.env.PEER_STORE_SIZE || 100_000) });
  const adapters = new Map(); // model name -> MemoryAdapter on the shared store
  const adapterFor = (model) => {
    let adapter = adapters.get(model);
    if (!adapter) {
      adapter = new MemoryAdapter(model, store, CLOCK_TOLERANCE);
      adapters.set(model, adapter);
    }
    return adapter;
  };
  const methods = new Set(['upsert', 'find', 'findByUid', 'findByUserCode', 'consume', 'destroy', 'revokeByGrantId']);

  cluster.on('message', async (from, message) => {
    if (message?.type !== IPC) return;
    const { id, model, method, args } = message;
    let reply;
    try {
      if (!methods.has(method)) throw new Error(`unknown adapter method ${method}`);
      reply = { type: IPC, id, value: await adapterFor(model)[method](...args) };
    } catch (error) {
      reply = { type: IPC, id, error: String(error?.stack || error) };
    }
    if (from.isConnected()) from.send(reply);
  });

  let stopping = false;
  const allDead = () => Object.values(cluster.workers).every((w) => w.isDead());
  const listening = new Set(); // workers that got as far as listening
  const fork = () => cluster.fork(env);
  cluster.on('listening', (ready) => listening.add(ready.id));
  cluster.on('exit', (dead, code, signal) => {
    if (stopping) {
      if (allDead()) process.exit();
      return;
    }
    if (!listening.has(dead.id)) { // it failed to start: so would another, so stop here
      console.error(`peer: worker ${dead.process.pid} exited (${signal || code}) before listening`);
      stopping = true;
      for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
      process.exitCode = 1;
      if (allDead()) process.exit(1);
      return;
    }
    console.error(`peer: worker ${dead.process.pid} exited (${signal || code}); starting another`);
    fork();
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    if (allDead()) process.exit();
    setTimeout(() => process.exit(), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  for (let i = 0; i < count; i++) fork();
  console.error(`peer: oidc-provider ${ISSUER}, ${count} workers, primary ${process.pid}`);
}

// Adapter calls forwarded to the primary: each waits for the reply with its id.
const pending = new Map(); // id -> { resolve, reject }
let nextId = 0;

function call(model, method, args) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    process.send({ type: IPC, id, model, method, args }, (error) => {
      if (error && pending.delete(id)) reject(error);
    });
  });
}

class ClusterAdapter {
  constructor(model) {
    this.model = model;
  }

  upsert(id, payload, expiresIn) { return call(this.model, 'upsert', [id, payload, expiresIn]); }

  find(id) { return call(this.model, 'find', [id]); }

  findByUid(uid) { return call(this.model, 'findByUid', [uid]); }

  findByUserCode(userCode) { return call(this.model, 'findByUserCode', [userCode]); }

  consume(id) { return call(this.model, 'consume', [id]); }

  destroy(id) { return call(this.model, 'destroy', [id]); }

  revokeByGrantId(grantId) { return call(this.model, 'revokeByGrantId', [grantId]); }
}

async function worker() {
  process.on('message', (message) => {
    if (message?.type !== IPC) return;
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    if ('error' in message) waiting.reject(new Error(`shared store: ${message.error}`));
    else waiting.resolve(message.value);
  });
  process.on('disconnect', () => process.exit(0)); // the primary is gone

  const { jwks, cookieKeys } = JSON.parse(process.env.PEER_SECRETS);
  const provider = new Provider(ISSUER, {
    adapter: ClusterAdapter,
    jwks,
    cookies: { keys: cookieKeys },
    clients: [
      {
        client_id: CLIENTS.bench.client_id,
        client_secret: CLIENTS.bench.client_secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'read',
      },
      {
        client_id: CLIENTS['bench-api'].client_id,
        client_secret: CLIENTS['bench-api'].client_secret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: CLIENTS['bench-web'].client_id,
        client_secret: CLIENTS['bench-web'].client_secret,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['https://bench.example/callback'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'openid email offline_access',
      },
    ],
    scopes: ['openid', 'offline_access', 'email', 'read'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    async findAccount(ctx, sub) {
      if (sub !== ACCOUNT) return undefined;
      return {
        accountId: sub,
        async claims() { return { sub, email: ACCOUNT, email_verified: true }; },
      };
    },
    clockTolerance: CLOCK_TOLERANCE,
    // idp's paths, so that the same URLs work against both.
    routes: {
      authorization: '/authorize',
      end_session: '/logout',
      introspection: '/introspect',
      jwks: '/jwks.json',
      revocation: '/revoke',
      token: '/token',
      userinfo: '/userinfo',
    },
    responseTypes: ['code'], // idp does the code flow only
    pkce: { required: () => true }, // idp requires PKCE (S256) of every client
    rotateRefreshToken: true,
    async issueRefreshToken(ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    ttl: { // idp's defaults
      AccessToken: 600,
      ClientCredentials: 600,
      IdToken: 600,
      AuthorizationCode: 60,
      Interaction: 3600,
      Session: 12 * 3600,
      Grant: 30 * 24 * 3600,
      RefreshToken: 30 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // like idp: any confidential client may introspect (oidc-provider's default, unlogged)
        allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none'
          || token.clientId === client.clientId,
      },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // the code flow's tokens keep the resource granted at /authorize (JWT access tokens)
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'read',
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });

  provider.on('server_error', (ctx, error) => console.error('peer: server_error', error));

  provider.use(async (ctx, next) => {
    if (ctx.path === '/readyz' && ctx.method === 'GET') {
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path.startsWith('/interaction/') && ctx.method === 'GET') {
      await autoConsent(provider, ctx);
      return;
    }
    await next();
  });

  provider.listen(PORT, '127.0.0.1');
}

// The interaction: log the fixed account in and grant everything requested, without a page.
async function autoConsent(provider, ctx) {
  const { params, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  const grant = (grantId && await provider.Grant.find(grantId))
    || new provider.Grant({ accountId: ACCOUNT, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  for (const resource of [params.resource ?? []].flat()) {
    const scopes = (params.scope ?? '').split(' ').filter((scope) => scope === 'read'); // the API's
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const result = {
    login: { accountId: ACCOUNT },
    consent: { grantId: await grant.save() },
  };
  const location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303; // kept by ctx.redirect
  ctx.redirect(location);
}

if (cluster.isPrimary) {
  primary();
} else {
  await worker();
}
