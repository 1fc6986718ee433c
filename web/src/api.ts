// The console's JSON API (src/broker/console.ts). Every change carries the session's CSRF token.

export type Role = 'admin' | 'auditor' | 'provisioner';
export type Verdict = 'allow' | 'deny';
export type LinkState = 'verified' | 'assumed' | 'not-checked' | 'failed';

export interface SessionInfo {
  role: Role;
  tokenId: string;
  scope?: string;
  label?: string;
  csrf: string;
  expiresAt: number;
  canEdit: boolean;
}

export interface AttestationSummary {
  id: string;
  at: number;
  actor: string;
  tee: string;
  platform?: string;
  verdict: Verdict;
  policy?: string;
  rule?: string;
  problem?: string;
  detail?: string;
  evidenceDigest?: string;
  remote?: string;
}

export interface LinkBasis {
  kind: 'check' | 'rule';
  name: string;
  status: 'pass' | 'fail' | 'not-checked' | 'not-applicable';
  description: string;
  evidence?: string;
  expected?: string;
  found?: string;
  code?: string;
}

export interface TrustLink {
  id: string;
  title: string;
  state: LinkState;
  reason: string;
  trusted?: string;
  basis: LinkBasis[];
}

export interface TrustReport {
  at: string;
  evidence: { kind: string; label: string; verified: boolean; error?: { code: string; message: string } }[];
  policy?: { id: string; version: string };
  verdict?: 'pass' | 'fail';
  status?: string;
  denial?: string;
  chains: { id: string; title: string; links: TrustLink[] }[];
  counts: Record<LinkState, number>;
  claims: { name: string; value: string }[];
  rules: { id: string; status: string; description: string; expected?: string; found?: string }[];
  threats: { id: string; title: string; residual: number; status: string; text: string }[];
}

export interface AttestationDetail extends AttestationSummary {
  binding?: string;
  report: TrustReport | null;
}

export interface HourBucket {
  start: number;
  allow: number;
  deny: number;
  releases: number;
  releaseRefusals: number;
}

export interface Overview {
  from: number;
  to: number;
  hours: HourBucket[];
  totals: { attestations: number; allowed: number; refused: number; releases: number; releaseRefusals: number };
  byPlatform: { platform: string; allow: number; deny: number }[];
  refusalRules: { rule: string; count: number }[];
  truncated: boolean;
  scoped: boolean;
}

export interface PolicyRef {
  prefix: string;
  policyId: string;
  policyVersion: string;
  sha256: string;
}

export interface SecretRow {
  path: string;
  size: number;
  version: number;
  alg: string;
  kekId: string;
  createdAt: number;
  updatedAt: number;
  createdBy: string;
  updatedBy: string;
  policies: PolicyRef[];
}

export interface VolumeRow {
  id: string;
  label?: string;
  state: string;
  keyVersion: number;
  alg: string;
  kekId: string;
  policy: { id?: string; version?: string };
  policySha256: string;
  policyText: string;
  createdAt: number;
  updatedAt: number;
  revokedAt?: number;
}

export interface PolicyRecord extends PolicyRef {
  text: string;
  updatedAt: number;
  updatedBy: string;
}

export interface PolicyTestResult {
  policy: { id: string; version: string };
  evaluated: number;
  pass: number;
  fail: number;
  results: { id: string; at: number; platform: string; recorded: Verdict; draft: 'pass' | 'fail' | 'error'; rule?: string; denial?: string }[];
}

export interface AuditRecord {
  seq: number;
  at: number;
  actor: string;
  action: string;
  resource?: string;
  evidenceDigest?: string;
  verdict: Verdict;
  rule?: string;
  problem?: string;
  detail?: string;
  remote?: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

let csrf = '';
export function setCsrf(token: string): void {
  csrf = token;
}

/** Called when the session ended (401): the app shows the sign-in form again. */
let onSignedOut: () => void = () => undefined;
export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

export async function api<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-coffer-csrf'] = csrf;
  }
  const r = await fetch(`api/${path}`, { method, headers, credentials: 'same-origin', ...(method !== 'GET' ? { body: JSON.stringify(body ?? {}) } : {}) });
  if (r.status === 204) return undefined as T;
  const j = (await r.json().catch(() => ({}))) as Record<string, unknown>;
  if (!r.ok) {
    if (r.status === 401 && path !== 'login') onSignedOut();
    throw new ApiError(typeof j.detail === 'string' ? j.detail : `the broker answered HTTP ${r.status}`, r.status, typeof j.code === 'string' ? j.code : undefined);
  }
  return j as T;
}

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const fmtTime = (t: number | string): string => new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
