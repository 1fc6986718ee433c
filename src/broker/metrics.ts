import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Broker, BrokerEvent } from './broker.js';
import { PROBLEMS, PROBLEM_BASE, problem } from './problem.js';

/**
 * Prometheus metrics, one registry per server (never prom-client's global one, so two brokers in
 * a process, as in the tests, count apart). Every label has a bounded set of values: the route
 * template (not the URL: paths name secrets), the status code, the tee (the verifiers' names),
 * the problem type (the catalogue in problem.ts). No path, token, session or address is a label.
 *
 * Access: `GET /metrics` needs an unscoped admin or auditor bearer token, like the audit log.
 * Not "loopback only": behind a TLS-terminating proxy on the same host every request comes from
 * loopback, and the counts tell an observer which secrets are being fetched and when.
 */

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const RESOURCE_ROUTE = '/kbs/v0/resource/:repository/:type/:tag';
const problemNames = new Set(Object.keys(PROBLEMS));

export interface BrokerMetrics {
  readonly registry: Registry;
}

const started = new WeakMap<FastifyRequest, bigint>();
const problemOf = new WeakMap<FastifyRequest, string>();

function routeOf(req: FastifyRequest): string {
  const url = (req.routeOptions as { url?: string } | undefined)?.url;
  return typeof url === 'string' && url !== '' ? url : 'unmatched';
}

/** The problem type of a refusal, read back from the problem document the broker sent. */
function problemFromPayload(payload: unknown): string | undefined {
  if (typeof payload !== 'string' || payload.length > 100_000) return undefined;
  try {
    const t = (JSON.parse(payload) as { type?: unknown }).type;
    if (typeof t !== 'string' || !t.startsWith(PROBLEM_BASE)) return undefined;
    const name = t.slice(PROBLEM_BASE.length);
    return problemNames.has(name) ? name : 'other';
  } catch {
    return undefined;
  }
}

/** Registers the hooks and `GET /metrics` on `app`; call before the routes are declared. */
export function installMetrics(app: FastifyInstance, broker: Broker): BrokerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'coffer_process_' });
  const requests = new Counter({ name: 'coffer_http_requests_total', help: 'HTTP requests by route template, method and status', labelNames: ['method', 'route', 'status'] as const, registers: [registry] });
  const latency = new Histogram({
    name: 'coffer_http_request_duration_seconds',
    help: 'HTTP request latency by route template, method and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const attestations = new Counter({ name: 'coffer_attestations_total', help: 'Attestation decisions by tee, verdict and problem type (none when allowed)', labelNames: ['tee', 'verdict', 'problem'] as const, registers: [registry] });
  const releases = new Counter({ name: 'coffer_releases_total', help: 'Resource requests by outcome (released, refused) and problem type (none when released)', labelNames: ['outcome', 'problem'] as const, registers: [registry] });
  const sessions = new Counter({ name: 'coffer_kbs_sessions_total', help: 'KBS sessions opened (each with a fresh nonce) by /kbs/v0/auth', registers: [registry] });
  const nonces = new Counter({ name: 'coffer_kbs_nonce_refusals_total', help: 'Attestations refused for their nonce, by problem type (reused, expired, mismatch)', labelNames: ['problem'] as const, registers: [registry] });

  // The count starts at zero for every outcome, so a rate() over a fresh broker is defined.
  releases.inc({ outcome: 'released', problem: 'none' }, 0);

  const observer = (e: BrokerEvent) => {
    const tee = e.tee.slice(0, 16);
    const p = e.problem !== undefined && problemNames.has(e.problem) ? e.problem : e.verdict === 'allow' ? 'none' : 'other';
    attestations.inc({ tee, verdict: e.verdict, problem: p });
    if (p.startsWith('nonce-')) nonces.inc({ problem: p });
  };
  broker.observers.add(observer);
  app.addHook('onClose', async () => {
    broker.observers.delete(observer);
  });

  app.addHook('onRequest', async (req) => {
    started.set(req, process.hrtime.bigint());
  });
  app.addHook('onSend', async (req, reply: FastifyReply, payload) => {
    if (reply.statusCode >= 400) {
      const p = problemFromPayload(payload);
      if (p) problemOf.set(req, p);
    }
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const t0 = started.get(req);
    const route = routeOf(req);
    const labels = { method: METHODS.has(req.method) ? req.method : 'OTHER', route, status: String(reply.statusCode) };
    requests.inc(labels);
    if (t0 !== undefined) latency.observe(labels, Number(process.hrtime.bigint() - t0) / 1e9);
    if (route === RESOURCE_ROUTE) {
      if (reply.statusCode === 200) releases.inc({ outcome: 'released', problem: 'none' });
      else releases.inc({ outcome: 'refused', problem: problemOf.get(req) ?? 'other' });
    } else if (route === '/kbs/v0/auth' && reply.statusCode === 200) sessions.inc();
  });

  app.get('/metrics', async (req, reply) => {
    const who = await broker.authorize(req.headers.authorization, 'metrics.read', ['admin', 'auditor'], undefined, { remote: req.ip });
    // The counts cover every prefix: a token confined to one prefix does not see them.
    if (who.token.scope !== undefined) throw problem('out-of-scope', 'METRICS_SCOPED_TOKEN', `metrics cover every path: a token scoped to ${who.token.scope} may not read them`);
    void reply.header('cache-control', 'no-store').type(registry.contentType);
    return registry.metrics();
  });
  return { registry };
}

