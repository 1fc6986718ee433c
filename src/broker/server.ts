import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import pino, { type DestinationStream, type Logger } from 'pino';
import { z } from 'zod';
import { CofferError, inputError } from '../errors.js';
import type { Broker, RequestMeta } from './broker.js';
import { registerConsole } from './console.js';
import { installMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { requireClientCertificate } from './tls.js';
import { provisionSchema } from './volumes.js';
import { ProblemError, parseRequest, parseTimeParam, problemBody, type ProblemBody } from './problem.js';
import type { AuditQuery, Role } from './store/types.js';
import { ROLES } from './store/types.js';

export const COOKIE_NAME = 'kbs-session-id';
export const BROKER_VERSION = '0.1.0';

export interface ServerOptions {
  broker: Broker;
  /** PEM certificate chain and key: HTTPS, and the session cookie gets `Secure`. */
  tls?: {
    cert: Buffer | string;
    key: Buffer | string;
    /** PEM CA(s): admin routes and /metrics then need a client certificate chaining to it (tls.ts). */
    clientCa?: Buffer | string;
  };
  /** Where the JSON logs go (default: standard error). */
  logStream?: DestinationStream;
  logLevel?: string;
  /** Requests per window per client address (default 600 a minute). */
  rateLimit?: { max: number; timeWindowMs: number };
  /** Largest request body in bytes (default 256 KiB). */
  bodyLimit?: number;
}

const SERVED = new WeakMap<FastifyInstance, string[]>();

/** `METHOD /path` of every route the server registered (path parameters as `{name}`, the policy wildcard as `{prefix}`). */
export function servedRoutes(app: FastifyInstance): string[] {
  return [...(SERVED.get(app) ?? [])];
}

/** Routes that need the client certificate when mTLS is on (the console's API included). */
export const ADMIN_PREFIXES: readonly string[] = ['/admin', '/metrics', '/console/api'];

const ALL: readonly Role[] = ROLES;
const WRITERS: readonly Role[] = ['admin', 'provisioner'];
const READERS_AUDIT: readonly Role[] = ['admin', 'auditor'];
const ADMIN_ONLY: readonly Role[] = ['admin'];

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function bearer(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

const b64 = z.string().min(1).max(200_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be standard base64');
const secretBody = z.strictObject({ value: b64 });
const policyBody = z.strictObject({ policy: z.string().min(1).max(100_000) });
const trustBody = z.strictObject({ key: z.string().min(1).max(16_384) });
const refValuesBody = z.strictObject({ jws: z.string().min(1).max(64 * 1024) });
const tokenBody = z.strictObject({ role: z.enum(['admin', 'auditor', 'provisioner']), scope: z.string().max(400).optional(), label: z.string().max(100).optional() });
const auditParams = z.strictObject({
  since: z.string().optional(),
  until: z.string().optional(),
  action: z.string().max(64).optional(),
  verdict: z.enum(['allow', 'deny']).optional(),
  actor: z.string().max(64).optional(),
  limit: z.string().regex(/^\d{1,4}$/).optional(),
  after: z.string().regex(/^\d{1,15}$/).optional(),
});



/** A path segment's limit (paths.ts): longer ones are refused by the router as 414. */
export const MAX_PARAM_LENGTH = 128;

function toProblem(err: unknown): ProblemBody {
  if (err instanceof ProblemError) return err.body();
  const e = err as { statusCode?: number; code?: string; validation?: unknown };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) return problemBody('payload-too-large', 'BODY_TOO_LARGE', 'the request body is larger than the broker accepts');
  if (e.statusCode === 429) return problemBody('rate-limited', 'RATE_LIMITED', 'too many requests from this address; slow down');
  // Never echo a parser message: it can quote the body, and a body can hold a secret.
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 415) return problemBody('bad-request', 'BAD_MEDIA_TYPE', 'send application/json');
  if (e.statusCode === 400 || e.code?.startsWith('FST_ERR_CTP') === true) return problemBody('bad-request', 'BAD_JSON', 'the request body is not valid JSON');
  if (err instanceof CofferError && err.kind === 'input') return problemBody('bad-request', err.code, err.message);
  // Anything else is the broker's fault: its message (KEK ids, file paths, SQL) stays in the log.
  return problemBody('internal', 'INTERNAL', 'internal error');
}

/** Refuses plain HTTP on anything but loopback unless explicitly allowed. */
export function checkBind(host: string, tls: boolean, allowInsecureHttp: boolean): void {
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  if (!loopback && !tls && !allowInsecureHttp) {
    throw inputError('BROKER_INSECURE_BIND', `refusing to serve plain HTTP on ${host}: secrets and tokens would cross the network in clear. Give --tls-cert and --tls-key, or --allow-insecure-http behind a TLS-terminating proxy`);
  }
}

/** The broker's HTTP face: KBS protocol, admin API, health, OpenAPI. Not yet listening. */
export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const { broker } = o;
  const logger: Logger = pino(
    {
      level: o.logLevel ?? 'info',
      // The default serializers log no headers; this is a second fence should that change.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'], censor: '[redacted]' },
    },
    o.logStream ?? pino.destination(2),
  );
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: o.bodyLimit ?? 256 * 1024,
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Router errors (a path that is not valid percent-encoding, a segment over the limit) as
    // problems like every other refusal, never echoing the URL.
    frameworkErrors: (err, _req, reply) => {
      const p =
        (err as { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? problemBody('uri-too-long', 'URI_TOO_LONG', `a path segment is longer than ${MAX_PARAM_LENGTH} characters`)
          : problemBody('bad-request', 'BAD_URL', 'the request path is not valid');
      void (reply as unknown as FastifyReply).code(p.status).type('application/problem+json').send(p);
    },
    ...(o.tls
      ? {
          https: {
            cert: o.tls.cert,
            key: o.tls.key,
            minVersion: 'TLSv1.2' as const,
            // Asked for, checked against the client CA, but not required at the handshake: KBS
            // clients have none; admin routes refuse a connection without one (tls.ts).
            ...(o.tls.clientCa ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
          },
        }
      : {}),
  }) as unknown as FastifyInstance;
  const secure = o.tls !== undefined;
  const served: string[] = [];
  SERVED.set(app, served);
  app.addHook('onRoute', (r) => {
    const path = r.url.replace(/:(\w+)/g, '{$1}').replace(/\/\*$/, '/{prefix}');
    for (const m of [r.method].flat()) if (m !== 'HEAD') served.push(`${m} ${path}`);
  });

  await app.register(helmet, { hsts: secure ? { maxAge: 31536000 } : false });
  await app.register(rateLimit, {
    max: o.rateLimit?.max ?? 600,
    timeWindow: o.rateLimit?.timeWindowMs ?? 60_000,
    errorResponseBuilder: () => Object.assign(new Error('rate limited'), { statusCode: 429 }),
  });
  if (o.tls?.clientCa) requireClientCertificate(app, ADMIN_PREFIXES);
  installMetrics(app, broker);

  app.setErrorHandler((err, req, reply) => {
    let p = toProblem(err);
    if (p.status >= 500) {
      const errorId = randomBytes(8).toString('hex');
      req.log.error({ errorId, code: err instanceof CofferError ? err.code : 'INTERNAL', err: { message: (err as Error).message?.split('\n')[0] } }, 'request failed');
      p = { ...p, detail: `internal error (error id ${errorId}: the broker's log has the details)`, errorId };
    } else req.log.info({ problem: p.type, code: p.code }, 'request refused');
    void reply.code(p.status).type('application/problem+json').send(p);
  });
  app.setNotFoundHandler((req, reply) => {
    // The URL is not echoed: a mistyped path can hold something that belongs in no reply or log.
    void reply.code(404).type('application/problem+json').send(problemBody('not-found', 'NOT_FOUND', `no such route (${req.method})`));
  });

  const meta = (req: FastifyRequest): RequestMeta => ({ remote: req.ip });

  // ----- KBS protocol
  app.post('/kbs/v0/auth', async (req, reply) => {
    const r = await broker.auth(req.body, meta(req));
    const cookie = [`${COOKIE_NAME}=${r.cookie}`, 'Path=/kbs/v0', `Max-Age=${r.maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; ');
    void reply.header('set-cookie', cookie).header('cache-control', 'no-store');
    return { nonce: r.nonce, 'extra-params': r.extraParams };
  });
  app.post('/kbs/v0/attest', async (req, reply) => {
    const r = await broker.attest(cookieValue(req.headers.cookie, COOKIE_NAME), req.body, meta(req));
    void reply.header('cache-control', 'no-store');
    return { token: r.token };
  });
  app.get<{ Params: { repository: string; type: string; tag: string } }>('/kbs/v0/resource/:repository/:type/:tag', async (req, reply) => {
    const p = req.params;
    const cookie = cookieValue(req.headers.cookie, COOKIE_NAME);
    const token = bearer(req.headers.authorization);
    const jwe = await broker.resource(`${p.repository}/${p.type}/${p.tag}`, { ...(cookie ? { cookie } : {}), ...(token ? { bearer: token } : {}) }, meta(req));
    void reply.header('cache-control', 'no-store').type('application/jose+json');
    return JSON.stringify(jwe);
  });
  app.post('/kbs/v0/volume-initialized', async (req, reply) => {
    const cookie = cookieValue(req.headers.cookie, COOKIE_NAME);
    const token = bearer(req.headers.authorization);
    const r = await broker.volumeInitialized({ ...(cookie ? { cookie } : {}), ...(token ? { bearer: token } : {}) }, req.body, meta(req));
    void reply.header('cache-control', 'no-store');
    return { volume: r.volume, keyVersion: r.keyVersion, initializedAt: new Date(r.initializedAt).toISOString(), changed: !r.already };
  });
  app.get('/.well-known/jwks.json', async () => broker.jwks());

  // ----- health and description
  app.get('/healthz', { config: { rateLimit: false } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { rateLimit: false } }, async (_req, reply: FastifyReply) => {
    if (await broker.store.ping()) return { status: 'ready', store: broker.store.kind, schema: await broker.store.schemaVersion() };
    void reply.code(503).type('application/problem+json');
    return problemBody('internal', 'STORE_UNAVAILABLE', 'the store does not answer');
  });
  const doc = openApiDocument(BROKER_VERSION);
  app.get('/openapi.json', async () => doc);

  // ----- admin
  const auth = (req: FastifyRequest, action: string, roles: readonly Role[], resource?: string) => broker.authorize(req.headers.authorization, action, roles, resource, meta(req));
  type ResParams = { Params: { repository: string; type: string; tag: string } };
  const pathOf = (p: ResParams['Params']) => `${p.repository}/${p.type}/${p.tag}`;

  app.get<{ Querystring: { prefix?: string } }>('/admin/v0/secrets', async (req) => {
    const prefix = typeof req.query.prefix === 'string' ? req.query.prefix : undefined;
    const who = await auth(req, 'admin.secret.list', ALL, prefix);
    return { secrets: await broker.listSecrets(who, prefix, meta(req)) };
  });
  app.put<ResParams>('/admin/v0/secrets/:repository/:type/:tag', async (req) => {
    const path = pathOf(req.params);
    const who = await auth(req, 'admin.secret.put', WRITERS, path);
    const b = await broker.validated(who, 'admin.secret.put', path, meta(req), () => parseRequest(secretBody, req.body, 'secret'));
    return broker.putSecret(who, path, Buffer.from(b.value, 'base64'), meta(req));
  });
  app.get<ResParams>('/admin/v0/secrets/:repository/:type/:tag', async (req) => {
    const path = pathOf(req.params);
    const who = await auth(req, 'admin.secret.get', ALL, path);
    return broker.secretMeta(who, path, meta(req));
  });
  app.delete<ResParams>('/admin/v0/secrets/:repository/:type/:tag', async (req, reply) => {
    const path = pathOf(req.params);
    const who = await auth(req, 'admin.secret.delete', WRITERS, path);
    await broker.deleteSecret(who, path, meta(req));
    return reply.code(204).send();
  });

  app.get('/admin/v0/policies', async (req) => {
    const who = await auth(req, 'admin.policy.list', ALL);
    return { policies: await broker.listPolicies(who, meta(req)) };
  });
  type Wild = { Params: { '*': string } };
  app.put<Wild>('/admin/v0/policies/*', async (req) => {
    const prefix = req.params['*'];
    const who = await auth(req, 'admin.policy.set', WRITERS, prefix);
    const b = await broker.validated(who, 'admin.policy.set', prefix, meta(req), () => parseRequest(policyBody, req.body, 'policy'));
    const rec = await broker.setPolicy(who, prefix, b.policy, meta(req));
    return { prefix: rec.prefix, policyId: rec.policyId, policyVersion: rec.policyVersion, sha256: rec.sha256, updatedAt: rec.updatedAt, updatedBy: rec.updatedBy, warnings: rec.warnings };
  });
  app.get<Wild>('/admin/v0/policies/*', async (req) => {
    const prefix = req.params['*'];
    const who = await auth(req, 'admin.policy.get', ALL, prefix);
    return broker.getPolicy(who, prefix, meta(req));
  });
  app.delete<Wild>('/admin/v0/policies/*', async (req, reply) => {
    const prefix = req.params['*'];
    const who = await auth(req, 'admin.policy.delete', WRITERS, prefix);
    await broker.deletePolicy(who, prefix, meta(req));
    return reply.code(204).send();
  });

  app.get('/admin/v0/audit', async (req) => {
    const who = await auth(req, 'admin.audit.query', READERS_AUDIT);
    const query = await broker.validated(who, 'admin.audit.query', who.token.scope, meta(req), () => {
      const q = parseRequest(auditParams, req.query, 'audit query');
      const out: AuditQuery = {};
      const since = parseTimeParam(q.since, 'since');
      const until = parseTimeParam(q.until, 'until');
      if (since !== undefined) out.since = since;
      if (until !== undefined) out.until = until;
      if (q.action) out.action = q.action;
      if (q.verdict) out.verdict = q.verdict;
      if (q.actor) out.actor = q.actor;
      if (q.limit) out.limit = Number(q.limit);
      if (q.after) out.afterSeq = Number(q.after);
      return out;
    });
    return { records: await broker.queryAudit(who, query, meta(req)) };
  });

  app.post('/admin/v0/tokens', async (req, reply) => {
    const who = await auth(req, 'admin.token.create', ADMIN_ONLY);
    const b = await broker.validated(who, 'admin.token.create', who.token.scope, meta(req), () => parseRequest(tokenBody, req.body, 'token'));
    const t = await broker.createAdminToken(who, b.role, { ...(b.scope ? { scope: b.scope } : {}), ...(b.label ? { label: b.label } : {}) }, meta(req));
    void reply.code(201).header('cache-control', 'no-store');
    return { id: t.record.id, role: t.record.role, scope: t.record.scope, token: t.token };
  });
  app.get('/admin/v0/tokens', async (req) => {
    const who = await auth(req, 'admin.token.list', ADMIN_ONLY);
    return { tokens: await broker.listAdminTokens(who, meta(req)) };
  });
  app.delete<{ Params: { id: string } }>('/admin/v0/tokens/:id', async (req, reply) => {
    const who = await auth(req, 'admin.token.revoke', ADMIN_ONLY);
    await broker.revokeAdminToken(who, req.params.id, meta(req));
    return reply.code(204).send();
  });

  // ----- provisioned volume keys (volumes.ts), trusted keys and reference values (refvalues.ts)
  app.post('/admin/v0/volumes', async (req, reply) => {
    const raw = req.body as { id?: unknown } | undefined;
    const id = typeof raw?.id === 'string' ? raw.id.slice(0, 64) : undefined;
    const who = await auth(req, 'admin.volume.provision', WRITERS, id !== undefined ? `volumes/${id}` : 'volumes');
    const b = await broker.validated(who, 'admin.volume.provision', id !== undefined ? `volumes/${id}` : 'volumes', meta(req), () => parseRequest(provisionSchema, req.body, 'volume'));
    const r = await broker.volumes.provision(who, b, meta(req));
    void reply.code(r.created ? 201 : 200);
    return r.volume;
  });
  app.get('/admin/v0/volumes', async (req) => {
    const who = await auth(req, 'admin.volume.list', ALL);
    return { volumes: await broker.volumes.list(who, meta(req)) };
  });
  app.get<{ Params: { id: string } }>('/admin/v0/volumes/:id', async (req) => {
    const who = await auth(req, 'admin.volume.get', ALL, `volumes/${req.params.id}`);
    return broker.volumes.get(who, req.params.id, meta(req));
  });
  app.delete<{ Params: { id: string } }>('/admin/v0/volumes/:id', async (req, reply) => {
    const who = await auth(req, 'admin.volume.revoke', WRITERS, `volumes/${req.params.id}`);
    await broker.volumes.revoke(who, req.params.id, meta(req));
    return reply.code(204).send();
  });

  app.get<{ Querystring: { purpose?: string } }>('/admin/v0/trusted-keys', async (req) => {
    const who = await auth(req, 'admin.trust.list', ALL);
    return { keys: await broker.trust.listTrustedKeys(who, typeof req.query.purpose === 'string' ? req.query.purpose : undefined, meta(req)) };
  });
  type TrustParams = { Params: { purpose: string; name: string } };
  app.put<TrustParams>('/admin/v0/trusted-keys/:purpose/:name', async (req) => {
    const who = await auth(req, 'admin.trust.put', ADMIN_ONLY);
    const b = await broker.validated(who, 'admin.trust.put', `trust/${req.params.purpose}/${req.params.name}`, meta(req), () => parseRequest(trustBody, req.body, 'trusted key'));
    return broker.trust.putTrustedKey(who, req.params.purpose, req.params.name, b.key, meta(req));
  });
  app.delete<TrustParams>('/admin/v0/trusted-keys/:purpose/:name', async (req, reply) => {
    const who = await auth(req, 'admin.trust.delete', ADMIN_ONLY);
    await broker.trust.deleteTrustedKey(who, req.params.purpose, req.params.name, meta(req));
    return reply.code(204).send();
  });

  app.get('/admin/v0/reference-values', async (req) => {
    const who = await auth(req, 'admin.refvalues.list', ALL);
    return { referenceValues: await broker.trust.listReferenceValues(who, meta(req)) };
  });
  app.put<{ Params: { name: string } }>('/admin/v0/reference-values/:name', async (req) => {
    const who = await auth(req, 'admin.refvalues.put', WRITERS);
    const b = await broker.validated(who, 'admin.refvalues.put', `reference-values/${req.params.name}`, meta(req), () => parseRequest(refValuesBody, req.body, 'reference values'));
    return broker.trust.putReferenceValues(who, req.params.name, b.jws, meta(req));
  });
  app.get<{ Params: { name: string } }>('/admin/v0/reference-values/:name', async (req) => {
    const who = await auth(req, 'admin.refvalues.get', ALL);
    return broker.trust.getReferenceValues(who, req.params.name, meta(req));
  });
  app.delete<{ Params: { name: string } }>('/admin/v0/reference-values/:name', async (req, reply) => {
    const who = await auth(req, 'admin.refvalues.delete', WRITERS);
    await broker.trust.deleteReferenceValues(who, req.params.name, meta(req));
    return reply.code(204).send();
  });

  // ----- web console (docs/console.md)
  await registerConsole(app, { broker, secure });

  return app;
}
