import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import { z } from 'zod';
import { evaluate, parsePolicy, type Policy } from '../appraisal/index.js';
import type { Claims } from '../evidence/claims-model.js';
import { CofferError } from '../errors.js';
import type { AdminActor, Broker, RequestMeta } from './broker.js';
import { covers } from './paths.js';
import { parseRequest, parseTimeParam, problem, problemBody } from './problem.js';
import type { AttestationQuery, AuditQuery, AuditRecord, Role, VolumeMeta } from './store/types.js';

/**
 * The web console: a static single-page app (web/, built by Vite into dist/web) and the JSON
 * endpoints it calls, under /console. Sign-in takes an admin or auditor token once and gives a
 * session cookie (HttpOnly, SameSite=Strict, Secure under TLS) whose SHA-256 alone is stored;
 * every request re-checks the token (a revoked token ends its sessions) through the broker's own
 * role and scope checks, and every operation is audited as the admin API's are, by the token.
 * Every state change needs the CSRF token (an HMAC of the session cookie, so bound to it) and a
 * same-origin Origin. Console responses carry a strict Content-Security-Policy. docs/console.md.
 */

export const CONSOLE_COOKIE = 'coffer-console';
export const CSRF_HEADER = 'x-coffer-csrf';
/** A console session lasts this long from sign-in, whatever happens in between. */
export const CONSOLE_SESSION_MS = 8 * 3600_000;

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** A path inside dist/web the console serves: segments of plain names, none starting with a dot. */
const PLAIN_PATH = /^\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)*(?:[A-Za-z0-9_-][A-Za-z0-9._-]*)?$/;
/** Vite's content-hashed assets, the only responses a browser may keep (no query, no dot segment). */
const ASSET_URL = /^\/console\/assets\/[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const cacheableAsset = (url: string, status: number) => (status === 200 || status === 304) && ASSET_URL.test(url);

const CONSOLE_ROLES: readonly Role[] = ['admin', 'auditor'];
/** As the admin API: who may change a release policy (provisioners cannot sign in to the console). */
const WRITERS: readonly Role[] = ['admin', 'provisioner'];

export interface ConsoleOptions {
  broker: Broker;
  /** The server speaks TLS: the cookie gets `Secure` and the Origin must be https. */
  secure: boolean;
  /** The built console (index.html and assets); default dist/web next to the compiled code. */
  webRoot?: string;
}

/** dist/web, from dist/broker/console.js or (tests through tsx) src/broker/console.ts. */
export function defaultWebRoot(): string | undefined {
  for (const rel of ['../web/', '../../dist/web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

const sha256hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const csrfFor = (cookie: string) => createHmac('sha256', cookie).update('coffer-console-csrf').digest('base64url');

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function sameString(a: string, b: string): boolean {
  // Fixed-length digests: any two strings compare in constant time.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}



const loginBody = z.strictObject({ token: z.string().min(1).max(200) });
const policyBody = z.strictObject({ policy: z.string().min(1).max(100_000) });
const testBody = z.strictObject({ policy: z.string().min(1).max(100_000), limit: z.number().int().min(1).max(200).optional() });
const prefixQuery = z.strictObject({ prefix: z.string().min(1).max(400) });
const attestationParams = z.strictObject({
  since: z.string().max(40).optional(),
  until: z.string().max(40).optional(),
  verdict: z.enum(['allow', 'deny', '']).optional(),
  platform: z.string().max(100).optional(),
  limit: z.string().regex(/^\d{1,4}$/).optional(),
});
const auditParams = z.strictObject({
  since: z.string().max(40).optional(),
  until: z.string().max(40).optional(),
  action: z.string().max(64).optional(),
  verdict: z.enum(['allow', 'deny', '']).optional(),
  actor: z.string().max(64).optional(),
  limit: z.string().regex(/^\d{1,4}$/).optional(),
  after: z.string().regex(/^\d{1,15}$/).optional(),
});
const overviewParams = z.strictObject({ hours: z.string().regex(/^\d{1,3}$/).optional() });

function auditQuery(q: z.infer<typeof auditParams>): AuditQuery {
  const out: AuditQuery = {};
  const since = parseTimeParam(q.since, 'since');
  const until = parseTimeParam(q.until, 'until');
  if (since !== undefined) out.since = since;
  if (until !== undefined) out.until = until;
  if (q.action) out.action = q.action;
  if (q.verdict) out.verdict = q.verdict;
  if (q.actor) out.actor = q.actor;
  if (q.limit) out.limit = Math.min(1000, Number(q.limit));
  if (q.after) out.afterSeq = Number(q.after);
  return out;
}

/** One CSV field (RFC 4180); a leading = + - @ is defused so that a spreadsheet shows it as text. */
export function csvField(v: string | number | undefined): string {
  let s = v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const AUDIT_CSV_COLUMNS = ['seq', 'at', 'actor', 'action', 'resource', 'verdict', 'rule', 'problem', 'detail', 'evidenceDigest', 'remote'] as const;

export function auditCsv(records: readonly AuditRecord[]): string {
  const lines = [AUDIT_CSV_COLUMNS.join(',')];
  for (const r of records) lines.push(AUDIT_CSV_COLUMNS.map((c) => csvField(c === 'at' ? new Date(r.at).toISOString() : r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

interface Session {
  cookie: string;
  id: string;
  tokenId: string;
  expiresAt: number;
}

/** Registers the console's routes in their own scope (their hooks touch no other route). */
export async function registerConsole(app: FastifyInstance, o: ConsoleOptions): Promise<void> {
  const { broker, secure } = o;
  const store = broker.store;
  const root = o.webRoot ?? defaultWebRoot();

  await app.register(async (c) => {
    c.addHook('onSend', async (req, reply, payload) => {
      void reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer').header('cross-origin-opener-policy', 'same-origin').header('cross-origin-resource-policy', 'same-origin').header('permissions-policy', 'camera=(), microphone=(), geolocation=(), usb=()');
      if (!cacheableAsset(req.url, reply.statusCode)) void reply.header('cache-control', 'no-store');
      return payload;
    });

    const meta = (req: FastifyRequest): RequestMeta => ({ remote: req.ip });

    const sessionOf = async (req: FastifyRequest): Promise<Session> => {
      const cookie = cookieValue(req.headers.cookie, CONSOLE_COOKIE);
      if (!cookie || !/^[A-Za-z0-9_-]{43}$/.test(cookie)) throw problem('unauthorized', 'CONSOLE_NO_SESSION', 'sign in to the console first');
      const id = sha256hex(cookie);
      const s = await store.getConsoleSession(id);
      if (!s || s.expiresAt <= broker.now()) throw problem('unauthorized', 'CONSOLE_NO_SESSION', 'the console session has ended: sign in again');
      return { cookie, id, tokenId: s.tokenId, expiresAt: s.expiresAt };
    };

    /**
     * A state change must come from the console's own page: the CSRF token bound to the session,
     * and (when the browser says) the same origin. A refusal is audited.
     */
    const checkChange = async (req: FastifyRequest, action: string, s: Session | undefined): Promise<void> => {
      const refuse = async (why: string) => {
        await store.appendAudit({ at: broker.now(), actor: s ? `token:${s.tokenId}` : 'anonymous', action, verdict: 'deny', problem: 'forbidden', detail: `CONSOLE_CSRF: ${why}`, remote: req.ip });
        return problem('forbidden', 'CONSOLE_CSRF', `refused as a possible cross-site request: ${why}`);
      };
      const origin = req.headers.origin;
      if (origin !== undefined) {
        let ok = false;
        try {
          const u = new URL(origin);
          ok = u.host === req.headers.host && (u.protocol === 'https:' || (!secure && u.protocol === 'http:'));
        } catch {
          ok = false;
        }
        if (!ok) throw await refuse(`Origin ${origin.slice(0, 100)} is not this console`);
      }
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') throw await refuse(`Sec-Fetch-Site is ${String(site).slice(0, 30)}`);
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw await refuse('the body must be application/json');
      if (s) {
        const sent = req.headers[CSRF_HEADER];
        if (typeof sent !== 'string' || !sameString(sent, csrfFor(s.cookie))) throw await refuse(`the ${CSRF_HEADER} header is missing or not this session's`);
      }
    };

    /** The session, then the broker's own role and scope checks for the action. */
    const who = async (req: FastifyRequest, action: string, roles: readonly Role[] = CONSOLE_ROLES, resource?: string, change = false): Promise<AdminActor> => {
      let s: Session;
      try {
        s = await sessionOf(req);
      } catch (e) {
        await store.appendAudit({ at: broker.now(), actor: 'anonymous', action, verdict: 'deny', problem: 'unauthorized', detail: 'CONSOLE_NO_SESSION', remote: req.ip });
        throw e;
      }
      if (change) await checkChange(req, action, s);
      return broker.authorizeSession(s.tokenId, action, roles, resource, meta(req));
    };

    const setCookie = (reply: FastifyReply, value: string, maxAge: number) =>
      reply.header('set-cookie', [`${CONSOLE_COOKIE}=${value}`, 'Path=/console', `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; '));

    // ----- the app itself
    c.get('/console', async (_req, reply) => reply.redirect('/console/', 302));
    if (root) {
      // allowedPath: a dot segment (`..`, a dotfile) or an encoded separator is a plain 404 before
      // send sees it (send's own 403 would reach the error handler as an internal error).
      await c.register(fastifyStatic, { root, prefix: '/console/', index: ['index.html'], decorateReply: false, cacheControl: false, etag: true, dotfiles: 'deny', allowedPath: (pathname) => PLAIN_PATH.test(pathname) });
      c.addHook('onSend', async (req, reply, payload) => {
        if (cacheableAsset(req.url, reply.statusCode)) void reply.header('cache-control', 'public, max-age=31536000, immutable');
        return payload;
      });
    } else {
      c.get('/console/', async (_req, reply) => {
        void reply.code(503).type('application/problem+json');
        return problemBody('internal', 'CONSOLE_NOT_BUILT', 'the console is not built: run `npm run build` (it runs vite build into dist/web)');
      });
    }

    // ----- session
    c.post('/console/api/login', async (req, reply) => {
      await checkChange(req, 'console.login', undefined);
      const b = parseRequest(loginBody, req.body, 'sign-in');
      const actor = await broker.authorize(`Bearer ${b.token}`, 'console.login', CONSOLE_ROLES, undefined, meta(req));
      const cookie = randomBytes(32).toString('base64url');
      const now = broker.now();
      const expiresAt = now + CONSOLE_SESSION_MS;
      const id = sha256hex(cookie);
      await store.purgeConsoleSessions(now);
      await store.createConsoleSession(
        { id, tokenId: actor.token.id, createdAt: now, expiresAt },
        { at: now, actor: `token:${actor.token.id}`, action: 'console.login', verdict: 'allow', detail: `console session ${id.slice(0, 16)} until ${new Date(expiresAt).toISOString()}`, remote: req.ip },
      );
      setCookie(reply, cookie, Math.floor(CONSOLE_SESSION_MS / 1000));
      return sessionView(actor, csrfFor(cookie), expiresAt);
    });
    c.post('/console/api/logout', async (req, reply) => {
      const s = await sessionOf(req);
      await checkChange(req, 'console.logout', s);
      await store.deleteConsoleSession(s.id, { at: broker.now(), actor: `token:${s.tokenId}`, action: 'console.logout', verdict: 'allow', detail: `console session ${s.id.slice(0, 16)}`, remote: req.ip });
      setCookie(reply, '', 0);
      return reply.code(204).send();
    });
    c.get('/console/api/session', async (req) => {
      const s = await sessionOf(req);
      const actor = await broker.authorizeSession(s.tokenId, 'console.session', CONSOLE_ROLES, undefined, meta(req));
      return sessionView(actor, csrfFor(s.cookie), s.expiresAt);
    });

    // ----- what the broker knows
    c.get('/console/api/overview', async (req) => {
      const q = parseRequest(overviewParams, req.query, 'overview query');
      const hours = Math.min(Math.max(Number(q.hours ?? 24), 1), 168);
      const w = await who(req, 'console.overview');
      return broker.adminAudited(w, 'console.overview', w.token.scope, meta(req), async () => overview(broker, w, hours));
    });

    c.get('/console/api/attestations', async (req) => {
      const p = parseRequest(attestationParams, req.query, 'attestation query');
      const q: AttestationQuery = {};
      const since = parseTimeParam(p.since, 'since');
      const until = parseTimeParam(p.until, 'until');
      if (since !== undefined) q.since = since;
      if (until !== undefined) q.until = until;
      if (p.verdict) q.verdict = p.verdict;
      if (p.platform) q.platform = p.platform;
      if (p.limit) q.limit = Math.min(1000, Number(p.limit));
      const w = await who(req, 'console.attestation.list');
      return broker.adminAudited(w, 'console.attestation.list', w.token.scope, meta(req), async () => ({
        // Attestations name no resource: a token scoped to a path sees none, as in the audit log.
        attestations: w.token.scope === undefined ? await store.listAttestations(q) : [],
      }));
    });
    c.get<{ Params: { id: string } }>('/console/api/attestations/:id', async (req) => {
      const id = req.params.id;
      if (!/^[0-9a-f]{24}$/.test(id)) throw problem('not-found', 'ATTESTATION_NOT_FOUND', 'no such attestation');
      const w = await who(req, 'console.attestation.get');
      return broker.adminAudited(w, 'console.attestation.get', w.token.scope, meta(req), async (note) => {
        note({ detail: `attestation ${id}` });
        const r = w.token.scope === undefined ? await store.getAttestation(id) : undefined;
        if (!r) throw problem('not-found', 'ATTESTATION_NOT_FOUND', `no attestation ${id}`);
        const out: Record<string, unknown> = { ...r, report: r.report ? (JSON.parse(r.report) as unknown) : null };
        // The trust report carries the claims a person reads; the raw claims stay server-side.
        delete out.claims;
        return out;
      });
    });

    c.get('/console/api/secrets', async (req) => {
      const w = await who(req, 'admin.secret.list');
      const secrets = await broker.listSecrets(w, undefined, meta(req));
      const policies = await broker.listPolicies(w, meta(req));
      const along = (path: string) => policies.filter((p) => covers(p.prefix, path)).sort((a, b) => a.prefix.length - b.prefix.length).map((p) => ({ prefix: p.prefix, policyId: p.policyId, policyVersion: p.policyVersion, sha256: p.sha256 }));
      const volumes = (await broker.volumes.list(w, meta(req))).map(volumeRow);
      return {
        secrets: secrets.map((s) => ({ path: s.path, size: s.size, version: s.version, alg: s.alg, kekId: s.kekId, createdAt: s.createdAt, updatedAt: s.updatedAt, createdBy: s.createdBy, updatedBy: s.updatedBy, policies: along(s.path) })),
        volumes,
      };
    });

    c.get('/console/api/policies', async (req) => {
      const w = await who(req, 'admin.policy.list');
      const policies = await broker.listPolicies(w, meta(req));
      const ap = broker.attestationPolicyInUse();
      return { policies, attestationPolicy: { id: ap.id, version: ap.version, ...(ap.description ? { description: ap.description } : {}) }, canEdit: WRITERS.includes(w.token.role) };
    });
    c.get('/console/api/policy', async (req) => {
      const { prefix } = parseRequest(prefixQuery, req.query, 'policy query');
      const w = await who(req, 'admin.policy.get', CONSOLE_ROLES, prefix);
      return broker.getPolicy(w, prefix, meta(req));
    });
    c.put('/console/api/policy', async (req) => {
      const { prefix } = parseRequest(prefixQuery, req.query, 'policy query');
      const w = await who(req, 'admin.policy.set', WRITERS, prefix, true);
      const b = await broker.validated(w, 'admin.policy.set', prefix, meta(req), () => parseRequest(policyBody, req.body, 'policy'));
      const rec = await broker.setPolicy(w, prefix, b.policy, meta(req));
      return { prefix: rec.prefix, policyId: rec.policyId, policyVersion: rec.policyVersion, sha256: rec.sha256, updatedAt: rec.updatedAt, updatedBy: rec.updatedBy, warnings: rec.warnings };
    });
    c.post('/console/api/policy-test', async (req) => {
      const w = await who(req, 'console.policy.test', CONSOLE_ROLES, undefined, true);
      const b = await broker.validated(w, 'console.policy.test', w.token.scope, meta(req), () => parseRequest(testBody, req.body, 'policy test'));
      return broker.adminAudited(w, 'console.policy.test', w.token.scope, meta(req), async (note) => {
        let draft: Policy;
        try {
          draft = parsePolicy(b.policy, 'draft policy');
        } catch (e) {
          if (e instanceof CofferError) throw problem('bad-request', e.code, e.message);
          throw e;
        }
        note({ rule: `${draft.id}@${draft.version}` });
        const recent = w.token.scope === undefined ? await store.recentAttestationClaims(b.limit ?? 50) : [];
        const { store: references } = await broker.trust.current();
        const results = recent.map((r) => {
          try {
            const out = evaluate(JSON.parse(r.claims as string) as Claims, draft, references, { at: new Date(r.at), ...(r.binding ? { nonce: r.binding } : {}) });
            const failed = out.rules.find((x) => x.status === 'fail');
            return { id: r.id, at: r.at, platform: r.platform ?? r.tee, recorded: r.verdict, draft: out.verdict, ...(failed ? { rule: failed.id } : {}), ...(out.denial ? { denial: out.denial } : {}) };
          } catch (e) {
            return { id: r.id, at: r.at, platform: r.platform ?? r.tee, recorded: r.verdict, draft: 'error' as const, denial: e instanceof CofferError ? `${e.code}: ${e.message}` : 'the stored claims could not be evaluated' };
          }
        });
        const count = (v: string) => results.filter((x) => x.draft === v).length;
        return { policy: { id: draft.id, version: draft.version }, evaluated: results.length, pass: count('pass'), fail: count('fail'), results };
      });
    });

    c.get('/console/api/references', async (req) => {
      const w = await who(req, 'admin.refvalues.list');
      return { references: await broker.trust.listReferenceValues(w, meta(req)) };
    });

    c.get('/console/api/audit', async (req) => {
      const q = parseRequest(auditParams, req.query, 'audit query');
      const w = await who(req, 'admin.audit.query');
      const query = await broker.validated(w, 'admin.audit.query', w.token.scope, meta(req), () => auditQuery(q));
      return { records: await broker.queryAudit(w, query, meta(req)) };
    });
    c.get('/console/api/audit.csv', async (req, reply) => {
      const q = parseRequest(auditParams, req.query, 'audit query');
      const w = await who(req, 'admin.audit.query');
      const query = await broker.validated(w, 'admin.audit.query', w.token.scope, meta(req), () => ({ ...auditQuery(q), limit: auditQuery(q).limit ?? 1000 }));
      const records = await broker.queryAudit(w, query, meta(req));
      void reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="coffer-audit-${new Date(broker.now()).toISOString().slice(0, 10)}.csv"`);
      return auditCsv(records);
    });
  });
}

function sessionView(actor: AdminActor, csrf: string, expiresAt: number) {
  const t = actor.token;
  return { role: t.role, tokenId: t.id, ...(t.scope ? { scope: t.scope } : {}), ...(t.label ? { label: t.label } : {}), csrf, expiresAt, canEdit: WRITERS.includes(t.role) };
}

/** What the console shows of a volume: metadata and its generated release policy, never key material. */
function volumeRow(v: VolumeMeta): Record<string, unknown> {
  let policy: { id?: string; version?: string } = {};
  try {
    const p = parsePolicy(v.policyText, `policy of volume ${v.id}`);
    policy = { id: p.id, version: p.version };
  } catch {
    policy = {};
  }
  return { id: v.id, ...(v.label ? { label: v.label } : {}), state: v.state, keyVersion: v.keyVersion, alg: v.alg, kekId: v.kekId, policy, policySha256: v.policySha256, policyText: v.policyText, createdAt: v.createdAt, updatedAt: v.updatedAt, createdBy: v.createdBy, updatedBy: v.updatedBy, ...(v.revokedAt ? { revokedAt: v.revokedAt } : {}) };
}

interface HourBucket {
  start: number;
  allow: number;
  deny: number;
  releases: number;
  releaseRefusals: number;
}

/** Attestations and releases of the last `hours` hours, per hour, by verdict and platform. */
async function overview(broker: Broker, w: AdminActor, hours: number) {
  const store = broker.store;
  const now = broker.now();
  const hour = 3600_000;
  const end = Math.floor(now / hour) * hour + hour;
  const start = end - hours * hour;
  const buckets: HourBucket[] = Array.from({ length: hours }, (_, i) => ({ start: start + i * hour, allow: 0, deny: 0, releases: 0, releaseRefusals: 0 }));
  const at = (t: number) => buckets[Math.floor((t - start) / hour)];
  const scoped = w.token.scope !== undefined;
  const atts = scoped ? [] : await store.listAttestations({ since: start, limit: 1000 });
  const byPlatform = new Map<string, { allow: number; deny: number }>();
  const refusalRules = new Map<string, number>();
  for (const a of atts) {
    const b = at(a.at);
    if (b) b[a.verdict]++;
    // Without verified claims only the KBS tee name is known.
    const p = a.platform ?? `${a.tee} (not verified)`;
    const e = byPlatform.get(p) ?? { allow: 0, deny: 0 };
    e[a.verdict]++;
    byPlatform.set(p, e);
    if (a.verdict === 'deny') refusalRules.set(a.rule ?? a.problem ?? 'unknown', (refusalRules.get(a.rule ?? a.problem ?? 'unknown') ?? 0) + 1);
  }
  // Releases from the audit log (the record of truth), paged; a scoped token sees its own paths.
  let after: number | undefined;
  let releaseRecords = 0;
  for (let page = 0; page < 20; page++) {
    const recs = await store.queryAudit({ since: start, action: 'kbs.resource', limit: 1000, ...(after !== undefined ? { afterSeq: after } : {}), ...(scoped ? { scope: w.token.scope } : {}) });
    for (const r of recs) {
      const b = at(r.at);
      if (b) {
        if (r.verdict === 'allow') b.releases++;
        else b.releaseRefusals++;
      }
    }
    releaseRecords += recs.length;
    if (recs.length < 1000) break;
    after = recs[recs.length - 1]?.seq;
  }
  const sum = (k: keyof Omit<HourBucket, 'start'>) => buckets.reduce((n, b) => n + b[k], 0);
  return {
    from: start,
    to: end,
    hours: buckets,
    totals: { attestations: atts.length, allowed: sum('allow'), refused: sum('deny'), releases: sum('releases'), releaseRefusals: sum('releaseRefusals') },
    byPlatform: [...byPlatform].map(([platform, v]) => ({ platform, ...v })).sort((a, b) => b.allow + b.deny - (a.allow + a.deny)),
    refusalRules: [...refusalRules].map(([rule, count]) => ({ rule, count })).sort((a, b) => b.count - a.count).slice(0, 10),
    truncated: atts.length >= 1000 || releaseRecords >= 20_000,
    scoped,
  };
}
