// An Express API accepting idp's access tokens: express-jwt checks the signature (RS256 only),
// iss, aud and exp; jwks-rsa fetches idp's keys; the roles claim guards the admin route.
'use strict';

const express = require('express');
const { expressjwt, UnauthorizedError } = require('express-jwt');
const { expressJwtSecret } = require('jwks-rsa');
const recommended = require('./recommended.json');

function setting(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`node-api: set ${name}`);
    process.exit(2);
  }
  return value;
}

function milliseconds(name, fallback) {
  const value = Number(setting(name, String(fallback)));
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`node-api: ${name} must be a whole number of milliseconds above 0`);
    process.exit(2);
  }
  return value;
}

const issuer = setting('IDP_ISSUER'); // e.g. http://127.0.0.1:8000, exactly as tokens' iss
const audience = setting('API_AUDIENCE'); // e.g. https://api.example, a client's audience
const port = Number(setting('PORT', '3000'));
const host = setting('HOST', '127.0.0.1');

// jwks-rsa keeps each key for cacheMaxAge and ignores the JWKS Cache-Control. 5 minutes is the
// max-age idp serves (IDP_JWKS_MAX_AGE): after `idp keys revoke` this API trusts the key no longer
// than verifiers that honour Cache-Control, and it is far inside the retirement window (a key stays
// published 1h2m after it last signed), so `idp keys plan --verifier-cache 300s` has no warning.
// A new key never needs the cache to expire: an unknown kid makes jwks-rsa refetch the JWKS, at
// most jwksRequestsPerMinute times a minute (idp spaces manual rotations a minute apart).
const jwksSecret = expressJwtSecret({
  jwksUri: `${issuer.replace(/\/$/, '')}/jwks.json`,
  cache: true,
  cacheMaxAge: milliseconds('JWKS_CACHE_MAX_AGE_MS', recommended.cacheMaxAge),
  rateLimit: true,
  jwksRequestsPerMinute: recommended.jwksRequestsPerMinute,
});

// RFC 9068 §4: an access token's typ is at+jwt. An ID token (typ JWT) is signed by the same keys
// and may carry this audience's claims: without this check this API would accept it.
const ACCESS_TOKEN_TYPES = ['at+jwt', 'application/at+jwt'];

async function secret(req, token) {
  const typ = String(token?.header?.typ ?? '').toLowerCase();
  if (!ACCESS_TOKEN_TYPES.includes(typ)) {
    throw new UnauthorizedError('invalid_token', { message: 'not an access token (typ)' });
  }
  const key = await jwksSecret(req, token); // undefined: no published key of that kid and alg
  if (!key) throw new UnauthorizedError('invalid_token', { message: 'no key idp publishes' });
  return key;
}

const requireToken = expressjwt({ secret, algorithms: ['RS256'], issuer, audience });

function requireRole(role) {
  return (req, res, next) => {
    const roles = Array.isArray(req.auth.roles) ? req.auth.roles : [];
    if (roles.includes(role)) return next();
    // RFC 6750 §3.1: a valid token without the privileges this resource needs.
    const description = `needs the ${role} role`;
    res.set('WWW-Authenticate', `Bearer error="insufficient_scope", error_description="${description}"`);
    res.status(403).json({ error: 'insufficient_scope', error_description: description });
  };
}

const app = express();
app.disable('x-powered-by');

app.get('/api/greeting', requireToken, (req, res) => {
  res.json({ hello: req.auth.sub, roles: req.auth.roles ?? [] });
});

app.get('/api/admin/report', requireToken, requireRole('admin'), (req, res) => {
  res.json({ report: 'for admins only', by: req.auth.sub });
});

// RFC 6750 §3: no token, or another scheme such as Basic → a bare challenge; a malformed
// Bearer header → 400 invalid_request; any other refusal (signature, iss, aud, exp, typ,
// unknown kid) → 401 invalid_token.
app.use((err, req, res, next) => {
  if (!(err instanceof UnauthorizedError)) {
    console.error('node-api:', err.message); // e.g. the JWKS could not be fetched
    return res.status(503).json({ error: 'temporarily_unavailable' });
  }
  // §3.1: no error code when the client "attempted using an unsupported authentication method"
  if (err.code === 'credentials_required' || err.code === 'credentials_bad_scheme') {
    res.set('WWW-Authenticate', 'Bearer');
    return res.status(401).json({ error: 'unauthorized', error_description: 'no access token' });
  }
  const error = err.code === 'credentials_bad_format' ? 'invalid_request' : 'invalid_token';
  const description = err.message.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
  res.set('WWW-Authenticate', `Bearer error="${error}", error_description="${description}"`);
  res.status(error === 'invalid_request' ? 400 : 401).json({ error, error_description: description });
});

const server = app.listen(port, host, (error) => {
  if (error) throw error; // e.g. the port is taken
  const { address, port: bound } = server.address();
  console.log(`node-api: listening on http://${address}:${bound}`);
});
