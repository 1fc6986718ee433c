import type { z } from 'zod';
import { CofferError } from '../errors.js';

/**
 * RFC 7807 problem details. Every refusal the broker makes has a stable `type` URI (never
 * renamed: clients and alerting key on it), an HTTP status, and the CofferError code behind it.
 * The catalogue is in docs/protocol.md.
 */

export const PROBLEM_BASE = 'urn:coffer:problem:';

export const PROBLEMS = {
  'bad-request': { status: 400, title: 'The request is malformed' },
  'unsupported-version': { status: 400, title: 'Unsupported KBS protocol version' },
  'unsupported-tee': { status: 400, title: 'Unsupported TEE' },
  'bad-tee-pubkey': { status: 400, title: 'The tee-pubkey is not an acceptable JWK' },
  'session-unknown': { status: 401, title: 'No such session' },
  'session-expired': { status: 401, title: 'The session has expired' },
  'nonce-expired': { status: 401, title: 'The nonce has expired' },
  'nonce-mismatch': { status: 401, title: 'The runtime-data nonce is not the nonce of this session' },
  'nonce-reused': { status: 409, title: 'The nonce of this session was already used' },
  'evidence-invalid': { status: 403, title: 'The evidence does not verify' },
  'evidence-unbound': { status: 403, title: 'The evidence is not bound to the runtime-data' },
  'evidence-reused': { status: 409, title: 'This evidence was already presented' },
  'attestation-denied': { status: 403, title: 'The attestation policy denied the evidence' },
  'not-attested': { status: 401, title: 'The session has not attested' },
  'token-invalid': { status: 401, title: 'The attestation token is not valid' },
  'session-mismatch': { status: 403, title: 'The attestation token belongs to another session' },
  'resource-not-found': { status: 404, title: 'No such resource' },
  'no-policy': { status: 403, title: 'No release policy covers this resource' },
  'policy-denied': { status: 403, title: 'The release policy denied the request' },
  'resource-revoked': { status: 410, title: 'The resource was revoked and is never released again' },
  'already-released': { status: 409, title: 'This resource was already released to this session' },
  'not-released': { status: 403, title: 'This session was not released the resource' },
  unauthorized: { status: 401, title: 'A valid admin bearer token is required' },
  forbidden: { status: 403, title: 'The token role may not do this' },
  'out-of-scope': { status: 403, title: 'The path is outside the token scope' },
  'not-found': { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  'signature-invalid': { status: 422, title: 'The signed document does not verify with a trusted key' },
  'payload-too-large': { status: 413, title: 'The request body is too large' },
  'uri-too-long': { status: 414, title: 'A path segment of the request is too long' },
  'rate-limited': { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal error' },
} as const;

export type ProblemName = keyof typeof PROBLEMS;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The CofferError code behind the problem. */
  code: string;
  /** For policy denials: the rule that decided. */
  rule?: string;
  /** For internal errors: an opaque id that finds the full error in the broker's log. */
  errorId?: string;
}

/** A refusal: a CofferError that knows its problem type, and the policy rule when one decided. */
export class ProblemError extends CofferError {
  readonly problem: ProblemName;
  readonly rule: string | undefined;

  constructor(problem: ProblemName, code: string, message: string, opts: { rule?: string; cause?: unknown } = {}) {
    super(code, message, { kind: PROBLEMS[problem].status < 500 && problem.startsWith('bad') ? 'input' : 'verify', ...(opts.cause !== undefined ? { cause: opts.cause } : {}) });
    this.problem = problem;
    this.rule = opts.rule;
  }

  get status(): number {
    return PROBLEMS[this.problem].status;
  }

  body(): ProblemBody {
    return problemBody(this.problem, this.code, this.message, this.rule);
  }
}

export function problemBody(problem: ProblemName, code: string, detail: string, rule?: string): ProblemBody {
  const p = PROBLEMS[problem];
  return { type: `${PROBLEM_BASE}${problem}`, title: p.title, status: p.status, detail, code, ...(rule !== undefined ? { rule } : {}) };
}

export function problem(name: ProblemName, code: string, message: string, opts: { rule?: string; cause?: unknown } = {}): ProblemError {
  return new ProblemError(name, code, message, opts);
}

/** A request body or query checked against its schema: a `bad-request` problem naming the first issue. */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw problem('bad-request', 'BAD_REQUEST', `${what}: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.message}` : 'invalid'}`);
  }
  return r.data;
}

/** A time query parameter: ISO 8601 or milliseconds since the epoch; absent or empty is no bound. */
export function parseTimeParam(s: string | undefined, what: string): number | undefined {
  if (s === undefined || s === '') return undefined;
  const t = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(t)) throw problem('bad-request', 'BAD_TIME', `${what} must be an ISO 8601 time or milliseconds since the epoch`);
  return t;
}
