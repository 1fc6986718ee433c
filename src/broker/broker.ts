import { isStaticPcr } from './identity.js';
import { createHash, createPublicKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { FlattenedEncrypt, SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify, type FlattenedJWE, type JWK } from 'jose';
import { z } from 'zod';
import { AR4SI, ReferenceStore, earClaims, earJwks, evaluate, parsePolicy, trustReport, type AppraisalResult, type Policy } from '../appraisal/index.js';
import { CofferError } from '../errors.js';
import type { Claims } from '../evidence/claims-model.js';
import { amdRoots, type ProductAnchor } from '../pki/roots.js';
import { open, seal } from './envelope.js';
import { canonicalBytes } from './jcs.js';
import type { KekProvider } from './kek.js';
import { covers, prefixPath, resourcePath } from './paths.js';
import { ProblemError, problem, type ProblemName } from './problem.js';
import type { AttestationRecord, AuditInput, AuditQuery, AuditRecord, PolicyRecord, RetentionPurged, Role, SecretMeta, SessionRecord, Store, TokenRecord } from './store/types.js';
import { snpVerifier } from './tee/snp.js';
import { tpmVerifier } from './tee/tpm.js';
import { tdxVerifier } from './tee/tdx.js';
import type { TrustAnchor } from '../pki/chain.js';
import { TrustAndReferences } from './refvalues.js';
import { VOLUME_HEADER, Volumes, isVolumePath, markVolumeInitialized, volumeForRelease } from './volumes.js';
import type { TeeVerifier } from './tee/types.js';
import { checkToken, createToken, tokenId, type NewToken } from './tokens.js';

/**
 * The key broker: the KBS protocol (RCAR: auth → attest → resource), secrets under envelope
 * encryption, per-prefix release policies, admin operations and their audit. Transport-free:
 * server.ts maps HTTP onto these methods, and every refusal is a ProblemError. All state lives in
 * the Store, so any broker process on the same store can continue a session another began.
 */

export const KBS_VERSIONS = /^0\.[1-9]\d*\.\d+$/;
export const HASH_ALGS = ['sha256', 'sha384', 'sha512'] as const;
export type HashAlg = (typeof HASH_ALGS)[number];
export const DEFAULT_HASH_ALG: HashAlg = 'sha384';
export const MAX_SECRET_BYTES = 64 * 1024;
export const VERIFIER_ID = { developer: 'coffer', build: 'coffer 0.1.0' };

/**
 * Checked at every release on top of the path's own policies, whatever they say: a release is
 * never made to a debuggable or migratable guest, nor on evidence not bound to this session's
 * nonce and tee-pubkey (the binding is the nonce the appraisal checks REPORT_DATA against).
 */
export const RELEASE_BASELINE_POLICY = `id: coffer-release-baseline
version: 1
description: built into the broker; every release must pass it in addition to the path's policies
debug: forbidden
migration: forbidden
freshness:
  nonce: required
`;

/** The attestation policy when none is configured: verified evidence, no debug, no migration agent. */
export const DEFAULT_ATTESTATION_POLICY = `id: coffer-broker-attestation
version: 1
description: evidence verified to the vendor root; a debuggable or migratable guest is refused
debug: forbidden
migration: forbidden
`;

export interface BrokerOptions {
  store: Store;
  kek: KekProvider;
  /** ES384 key that signs attestation tokens (EAR). */
  earKey: KeyObject;
  /** Default: the current time. Tests move it. */
  clock?: () => Date;
  nonceTtlSeconds?: number;
  tokenTtlSeconds?: number;
  /** How long and how much the periodic purge keeps (docs/operations.md); defaults RETENTION_DEFAULTS. */
  retention?: Partial<RetentionOptions>;
  attestationPolicy?: Policy;
  /**
   * In-process only (never a flag or environment variable): trust these SEV-SNP roots instead
   * of the pinned AMD ARKs. Tests pass their generated AMD stand-in here.
   */
  testOnlySnpRoots?: readonly ProductAnchor[];
  /** In-process only, like testOnlySnpRoots: trust this stand-in for the Intel SGX Root CA (TDX). */
  testOnlyTdxRoots?: readonly TrustAnchor[];
  verifiers?: readonly TeeVerifier[];
}

export interface RetentionOptions {
  /** Console attestation records older than this many days are deleted. */
  attestationDays: number;
  /** At most this many attestation records are kept (oldest deleted first). */
  maxAttestations: number;
  /** At most this many refusals whose evidence never verified (no claims) are kept: anyone can make them. */
  maxUnverifiedRefusals: number;
  /** At most this many rows per rule and pass: a pass stays short; a backlog is worked off a pass a second. */
  batch: number;
}

export const RETENTION_DEFAULTS: Readonly<RetentionOptions> = { attestationDays: 30, maxAttestations: 20_000, maxUnverifiedRefusals: 2_000, batch: 500 };

/** Sessions linger this long after they end, so that late requests get a precise refusal. */
const SESSION_LINGER_MS = 3_600_000;

/** What metrics (metrics.ts) hear about: bounded values only (tee names are the verifiers'). */
export interface BrokerEvent {
  kind: 'attestation';
  tee: string;
  verdict: 'allow' | 'deny';
  /** The problem type name of a refusal. */
  problem?: string;
}

export interface RequestMeta {
  remote?: string;
}

export interface AuthResult {
  /** The cookie value (a bearer credential: only its SHA-256 is stored). */
  cookie: string;
  sessionId: string;
  nonce: string;
  hashAlg: HashAlg;
  extraParams: string | Record<string, unknown>;
  maxAgeSeconds: number;
}

export interface AttestResult {
  token: string;
  sessionId: string;
  expiresAt: number;
}

export interface AdminActor {
  token: TokenRecord;
}

/** A stored release policy and what the operator should know about it (a missing TCB minimum, ...). */
export type PolicySetResult = PolicyRecord & { warnings: string[] };

/** Which roles a token of a given role may create: none above its own (admin > provisioner, auditor). */
const ROLE_RANK: Readonly<Record<Role, number>> = { admin: 2, provisioner: 1, auditor: 1 };

type Note = (extra: Partial<AuditInput>) => void;
/** How far an attestation attempt got, for its console record. */
interface AttestationSeen {
  tee?: string;
  claims?: Claims;
  digest?: string;
  binding?: string;
  /** The evidence's report data (hex) and whether the broker found it equal to the binding. */
  reportData?: string;
  bound?: boolean;
  hashAlg?: string;
  result?: AppraisalResult;
}
/**
 * The appraisal as the console's trust report should see it: the broker itself compared the
 * evidence's report data with hash(JCS(runtime-data)) before the policy ran, so the nonce link is
 * decided by that comparison, not left NOT CHECKED because the attestation policy names no
 * `freshness.nonce` (a policy that does was evaluated against the same binding and is kept).
 * Only the report changes: the verdict and the EAR come from the policy's own appraisal.
 */
export function withBrokerBinding(result: AppraisalResult, seen: { tee?: string; binding?: string; reportData?: string; bound?: boolean; hashAlg?: string }): AppraisalResult {
  if (seen.binding === undefined || seen.bound === undefined || result.rules.some((r) => r.id === 'freshness.nonce')) return result;
  const carrier = seen.tee === 'tpm' ? 'TPM extraData' : 'REPORT_DATA';
  const how = `${(seen.hashAlg ?? 'the negotiated hash').toUpperCase()} of the JCS-canonical runtime-data (this session's nonce and tee-pubkey), zero-padded to 64 bytes`;
  const rule: AppraisalResult['rules'][number] = seen.bound
    ? { id: 'freshness.nonce', status: 'pass', description: `${carrier} is bound to the nonce: the broker checked that it is ${how} before appraisal`, expected: seen.binding, found: `${carrier} ${seen.reportData ?? ''}`, trust: { 'instance-identity': AR4SI.TRUSTWORTHY_INSTANCE } }
    : { id: 'freshness.nonce', status: 'fail', description: `${carrier} is not bound to the nonce: the broker found it is not ${how}, so the evidence may be a replay`, expected: seen.binding, found: `${carrier} ${seen.reportData ?? ''}`, trust: { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE } };
  return { ...result, rules: [...result.rules, rule] };
}

/** Returns the allow record for the caller to write in the transaction of its state change. */
type AllowRecord = () => AuditInput;

/**
 * What makes a release policy name the VMs it releases to: without one of these, any genuine VM
 * passes. Not workload.digest (HOST_DATA, MRCONFIGID: the host picks them at launch for any image)
 * nor RTMRs (extended by the TD's own software: unpinned firmware replays any value into them);
 * both only narrow a launch measurement.
 */
export function identityAnchors(p: Policy): string[] {
  const out: string[] = [];
  if (p.measurements?.snp) out.push('measurements.snp');
  if (p.measurements?.tdx) out.push('measurements.tdx');
  if (p.measurements?.reference !== undefined) out.push('measurements.reference');
  if (p.pcrs && Object.entries(p.pcrs).some(([k, v]) => k === 'reference' || Object.keys(v ?? {}).some(isStaticPcr))) out.push('pcrs');
  return out;
}

/** Rule ids (evaluate.ts) that recognise a VM; a release needs one of them to pass, not merely not apply (see identityAnchors). */
export const IDENTITY_RULE = /^(measurement$|pcr\.reference$|pcr\.[a-z0-9]+\.([0-9]|1[0-5])$)/;

const sha256hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const authSchema = z.looseObject({
  version: z.string().max(32),
  tee: z.string().min(1).max(32),
  'extra-params': z.union([z.string().max(4096), z.record(z.string(), z.unknown())]).optional(),
});

const jwkSchema = z.union([
  z.looseObject({ kty: z.literal('EC'), crv: z.enum(['P-256', 'P-384', 'P-521']), x: z.string().max(200), y: z.string().max(200), alg: z.string().optional() }),
  z.looseObject({ kty: z.literal('RSA'), n: z.string().max(2000), e: z.string().max(20), alg: z.string().optional() }),
]);

const attestSchema = z.looseObject({
  'runtime-data': z.looseObject({ nonce: z.string().min(1).max(256), 'tee-pubkey': z.unknown() }),
  'tee-evidence': z.unknown(),
});

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function zodDetail(e: z.ZodError): string {
  const i = e.issues[0];
  return i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.message}` : 'invalid';
}

/** The tee-pubkey as a public KeyObject with its JWE algorithm. */
async function teeKey(jwk: unknown): Promise<{ key: KeyObject; jwk: JWK; alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256'; jkt: string }> {
  const r = jwkSchema.safeParse(jwk);
  if (!r.success) throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', `tee-pubkey must be an EC P-256/P-384/P-521 or RSA public JWK (${zodDetail(r.error)})`);
  const j = r.data as Record<string, unknown>;
  if (PRIVATE_JWK_MEMBERS.some((m) => m in j)) throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', 'tee-pubkey holds private key material: send the public key only');
  const alg = j.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
  if (j.alg !== undefined && j.alg !== alg) throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', `tee-pubkey alg ${String(j.alg)} is not supported: a ${String(j.kty)} key is used with ${alg}`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: j as never, format: 'jwk' });
  } catch {
    throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', 'tee-pubkey is not a valid public key');
  }
  if (key.asymmetricKeyType === 'rsa') {
    // e = 65537 only: a small or even exponent (e = 1 makes "encryption" the identity) is refused.
    if (j.e !== 'AQAB' || key.asymmetricKeyDetails?.publicExponent !== 65537n) throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', 'tee-pubkey RSA public exponent must be 65537 (e = "AQAB")');
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048 || bits > 8192) throw problem('bad-tee-pubkey', 'KBS_BAD_TEE_PUBKEY', `tee-pubkey RSA modulus is ${bits} bits; 2048 to 8192 are accepted`);
  }
  const pub = await exportJWK(key);
  return { key, jwk: pub, alg, jkt: await calculateJwkThumbprint(pub) };
}

/** The 64-byte REPORT_DATA a runtime-data must produce: its JCS hash, zero-padded on the right. */
export function expectedReportData(runtimeData: unknown, alg: HashAlg): Buffer {
  const out = Buffer.alloc(64);
  createHash(alg).update(canonicalBytes(runtimeData)).digest().copy(out);
  return out;
}

function negotiateHash(extra: string | Record<string, unknown> | undefined): HashAlg {
  let params: unknown = extra;
  if (typeof extra === 'string') {
    if (extra.trim() === '') return DEFAULT_HASH_ALG;
    try {
      params = JSON.parse(extra);
    } catch {
      throw problem('bad-request', 'KBS_BAD_EXTRA_PARAMS', 'extra-params is a string but not JSON');
    }
  }
  const want = params && typeof params === 'object' ? (params as Record<string, unknown>)['runtime-data-hash-algorithm'] : undefined;
  if (want === undefined) return DEFAULT_HASH_ALG;
  if (typeof want === 'string' && (HASH_ALGS as readonly string[]).includes(want.toLowerCase())) return want.toLowerCase() as HashAlg;
  throw problem('bad-request', 'KBS_BAD_HASH_ALG', `runtime-data-hash-algorithm ${JSON.stringify(want)} is not one of ${HASH_ALGS.join(', ')}`);
}

function firstFailedRule(r: AppraisalResult): string | undefined {
  return r.rules.find((x) => x.status === 'fail')?.id;
}

const ROLE_NAMES: Readonly<Record<Role, string>> = { admin: 'admin', auditor: 'auditor', provisioner: 'provisioner' };

export class Broker {
  readonly store: Store;
  readonly kek: KekProvider;
  private readonly earKey: KeyObject;
  private readonly earPublic: KeyObject;
  private readonly clock: () => Date;
  private readonly nonceTtlMs: number;
  private readonly tokenTtlMs: number;
  private readonly attestationPolicy: Policy;
  private readonly releaseBaseline: Policy = parsePolicy(RELEASE_BASELINE_POLICY, 'built-in release baseline');
  private readonly snpRoots: readonly ProductAnchor[];
  private readonly tdxRoots: readonly TrustAnchor[] | undefined;
  private readonly verifiers: ReadonlyMap<string, TeeVerifier>;
  private readonly policyCache = new Map<string, Policy>();
  /** The verified reference values in use; refreshed from the store before each appraisal (refvalues.ts). */
  private references = new ReferenceStore();
  /** Trusted keys and reference values (refvalues.ts), provisioned volumes (volumes.ts). */
  readonly trust: TrustAndReferences = new TrustAndReferences(this);
  readonly volumes: Volumes = new Volumes(this);
  private kid: string | undefined;
  /** Told of each attestation decision (metrics); an observer that throws is ignored. */
  readonly observers = new Set<(e: BrokerEvent) => void>();
  private lastPurge = 0;
  /** Wait before the next purge pass: a minute, a second while a backlog remains. */
  private purgeEveryMs = 60_000;
  private readonly retention: RetentionOptions;

  constructor(o: BrokerOptions) {
    this.store = o.store;
    this.kek = o.kek;
    this.earKey = o.earKey;
    this.earPublic = createPublicKey(o.earKey);
    this.clock = o.clock ?? (() => new Date());
    this.nonceTtlMs = (o.nonceTtlSeconds ?? 120) * 1000;
    this.tokenTtlMs = (o.tokenTtlSeconds ?? 600) * 1000;
    this.retention = { ...RETENTION_DEFAULTS, ...o.retention };
    this.attestationPolicy = o.attestationPolicy ?? parsePolicy(DEFAULT_ATTESTATION_POLICY, 'built-in attestation policy');
    this.snpRoots = o.testOnlySnpRoots ?? amdRoots();
    this.verifiers = new Map((o.verifiers ?? [snpVerifier, tpmVerifier, tdxVerifier]).map((v) => [v.tee, v]));
    this.tdxRoots = o.testOnlyTdxRoots;
  }

  now(): number {
    return this.clock().getTime();
  }

  async jwks(): Promise<{ keys: JWK[] }> {
    return earJwks([this.earKey]);
  }

  private async audit(r: Omit<AuditInput, 'at'> & { at?: number }): Promise<void> {
    await this.store.appendAudit({ at: this.now(), ...r });
  }

  /**
   * Runs `fn`, auditing its outcome. A state change takes the allow record from `allow()` and has
   * the store write it in the change's own transaction (so neither is committed without the
   * other); otherwise the allow record is written after `fn` returns and before its result is
   * handed out. A denial is audited with its problem and rule, and rethrown.
   */
  private async audited<T>(base: Omit<AuditInput, 'at' | 'verdict'>, fn: (note: Note, allow: AllowRecord) => Promise<T>): Promise<T> {
    const extra: Partial<AuditInput> = {};
    let taken = false;
    const allow: AllowRecord = () => {
      taken = true;
      return { at: this.now(), ...base, ...extra, verdict: 'allow' };
    };
    try {
      const out = await fn((x) => Object.assign(extra, x), allow);
      if (!taken) await this.audit({ ...base, ...extra, verdict: 'allow' });
      return out;
    } catch (e) {
      await this.auditDenial(base, extra, e);
      throw e;
    }
  }

  private async auditDenial(base: Omit<AuditInput, 'at' | 'verdict'>, extra: Partial<AuditInput>, e: unknown): Promise<void> {
    await this.store.appendAudit(this.denialRecord(base, extra, e));
  }

  private denialRecord(base: Omit<AuditInput, 'at' | 'verdict'>, extra: Partial<AuditInput>, e: unknown): AuditInput {
    const p = e instanceof ProblemError ? e : undefined;
    return {
      at: this.now(),
      ...base,
      ...extra,
      verdict: 'deny',
      problem: p?.problem ?? 'internal',
      ...(p?.rule ?? extra.rule ? { rule: p?.rule ?? extra.rule } : {}),
      detail: e instanceof CofferError ? `${e.code}: ${e.message}`.slice(0, 500) : 'internal error',
    };
  }

  // ---------------------------------------------------------------------------------------------
  // KBS protocol

  async auth(body: unknown, meta: RequestMeta = {}): Promise<AuthResult> {
    const cookie = randomBytes(32).toString('base64url');
    const sessionId = sha256hex(cookie);
    return this.audited({ actor: `session:${sessionId.slice(0, 16)}`, action: 'kbs.auth', ...(meta.remote ? { remote: meta.remote } : {}) }, async (note, allow) => {
      const r = authSchema.safeParse(body);
      if (!r.success) throw problem('bad-request', 'KBS_BAD_REQUEST', `auth request: ${zodDetail(r.error)}`);
      const req = r.data;
      if (!KBS_VERSIONS.test(req.version)) throw problem('unsupported-version', 'KBS_UNSUPPORTED_VERSION', `protocol version ${JSON.stringify(req.version)} is not supported (0.x.y)`);
      if (!this.verifiers.has(req.tee)) throw problem('unsupported-tee', 'KBS_UNSUPPORTED_TEE', `tee ${JSON.stringify(req.tee)} is not supported (supported: ${[...this.verifiers.keys()].join(', ')})`);
      const hashAlg = negotiateHash(req['extra-params']);
      const now = this.now();
      await this.maybePurge(now);
      const nonce = randomBytes(32).toString('base64');
      const s: SessionRecord = { id: sessionId, tee: req.tee, version: req.version, nonce, hashAlg, state: 'pending', createdAt: now, nonceExpiresAt: now + this.nonceTtlMs, expiresAt: now + this.nonceTtlMs };
      note({ detail: `tee ${req.tee}, runtime-data hash ${hashAlg}` });
      // The allow record in the session's transaction: one commit for both.
      await this.store.createSession(s, allow());
      const params = { 'runtime-data-hash-algorithm': hashAlg };
      const extraParams = typeof req['extra-params'] === 'object' ? params : JSON.stringify(params);
      return { cookie, sessionId, nonce, hashAlg, extraParams, maxAgeSeconds: Math.ceil((this.nonceTtlMs + this.tokenTtlMs) / 1000) };
    });
  }

  private async maybePurge(now: number): Promise<void> {
    if (now - this.lastPurge < this.purgeEveryMs) return;
    this.lastPurge = now;
    const r = await this.purgeRetention(now);
    this.purgeEveryMs = r.more ? 1_000 : 60_000;
  }

  /**
   * One bounded retention pass (Store.purgeRetention). The audit log is never purged: it is the
   * record of truth (docs/operations.md says how to archive it).
   */
  async purgeRetention(now: number = this.now()): Promise<RetentionPurged> {
    const r = this.retention;
    return this.store.purgeRetention({
      sessionsBefore: now - SESSION_LINGER_MS,
      evidenceBefore: now - 2 * this.nonceTtlMs,
      consoleSessionsBefore: now,
      attestationsBefore: now - r.attestationDays * 86_400_000,
      maxUnverifiedRefusals: r.maxUnverifiedRefusals,
      maxAttestations: r.maxAttestations,
      // A session ends at most nonce + token lifetime after its release and its row goes an hour
      // later; another hour of margin. The store also keeps any release whose session row remains.
      releasesBefore: now - (this.nonceTtlMs + this.tokenTtlMs + SESSION_LINGER_MS + 3_600_000),
      limit: r.batch,
    });
  }

  async attest(cookie: string | undefined, body: unknown, meta: RequestMeta = {}): Promise<AttestResult> {
    const sessionId = cookie ? sha256hex(cookie) : undefined;
    const actor = sessionId ? `session:${sessionId.slice(0, 16)}` : 'anonymous';
    const seen: AttestationSeen = {};
    const base: Omit<AuditInput, 'at' | 'verdict'> = { actor, action: 'kbs.attest', ...(meta.remote ? { remote: meta.remote } : {}) };
    const extra: Partial<AuditInput> = {};
    const note: Note = (x) => Object.assign(extra, x);
    // Set once the attempt reaches the nonce: from there on, whatever the outcome, the nonce is
    // consumed (one nonce, one attempt) in the transaction that records the outcome, so that each
    // attestation is one commit. Nothing is answered before that commit: an attempt cut short
    // (a crash) never told the client anything, and its nonce stays usable.
    let burn: { sessionId: string; at: number } | undefined;
    try {
      if (!sessionId) throw problem('session-unknown', 'KBS_NO_SESSION', 'no kbs-session-id cookie: call /kbs/v0/auth first');
      const session = await this.store.getSession(sessionId);
      if (!session) throw problem('session-unknown', 'KBS_UNKNOWN_SESSION', 'the kbs-session-id cookie names no session (expired and purged, or never issued)');
      const parsed = attestSchema.safeParse(body);
      if (!parsed.success) throw problem('bad-request', 'KBS_BAD_REQUEST', `attest request: ${zodDetail(parsed.error)}`);
      seen.tee = session.tee;
      const req = parsed.data;
      const evidence = req['tee-evidence'];
      try {
        note({ evidenceDigest: sha256hex(canonicalBytes(evidence ?? null)) });
      } catch {
        note({ evidenceDigest: sha256hex(JSON.stringify(evidence ?? null)) });
      }
      const now = this.now();
      if (session.state !== 'pending') throw problem('nonce-reused', 'KBS_NONCE_REUSED', 'the nonce of this session was already used: a nonce is good for one attestation (call /auth again)', { rule: 'freshness.nonce' });
      if (session.nonceExpiresAt <= now) throw problem('nonce-expired', 'KBS_NONCE_EXPIRED', `the nonce expired at ${new Date(session.nonceExpiresAt).toISOString()} (call /auth again)`, { rule: 'freshness.nonce' });
      const rd = req['runtime-data'];
      // Fixed-length digests: any string (non-ASCII, another length) compares in constant time.
      const nonceOk = timingSafeEqual(createHash('sha256').update(rd.nonce, 'utf8').digest(), createHash('sha256').update(session.nonce, 'utf8').digest());
      // Consumed whatever happens next, with the outcome (see `burn`).
      burn = { sessionId: session.id, at: now };
      if (!nonceOk) throw problem('nonce-mismatch', 'KBS_NONCE_MISMATCH', 'runtime-data.nonce is not the nonce this session was given', { rule: 'freshness.nonce' });
      const tee = await teeKey(rd['tee-pubkey']);
      const verifier = this.verifiers.get(session.tee);
      if (!verifier) throw problem('unsupported-tee', 'KBS_UNSUPPORTED_TEE', `tee ${session.tee} is no longer supported`);
      const want = expectedReportData(rd, session.hashAlg as HashAlg);
      // Held locally: the await below lets another request replace this.references meanwhile.
      const refs = (this.references = (await this.trust.current()).store);
      const v = verifier.verify(evidence, { at: new Date(now), snpRoots: this.snpRoots, expectedReportData: want, ...(session.tee === 'tpm' ? { tpm: await this.trust.tpmTrust() } : {}), ...(this.tdxRoots ? { tdxRoots: this.tdxRoots } : {}) });
      note({ evidenceDigest: v.digest });
      // Lengths first: timingSafeEqual throws on unequal lengths (a verifier's short report data).
      const bound = v.reportData.length === want.length && timingSafeEqual(want, v.reportData);
      Object.assign(seen, { claims: v.claims, digest: v.digest, binding: want.toString('hex'), reportData: v.reportData.toString('hex'), bound, hashAlg: session.hashAlg });
      if (!bound) {
        throw problem('evidence-unbound', 'KBS_EVIDENCE_UNBOUND', `the evidence's report data is not ${session.hashAlg.toUpperCase()} of the JCS-canonical runtime-data: it is not bound to this nonce and tee-pubkey`, { rule: 'freshness.binding' });
      }
      const binding = want.toString('hex');
      const claims: Claims = { ...v.claims, freshness: { ...v.claims.freshness, collectedAt: new Date(now).toISOString() } };
      const result = evaluate(claims, this.attestationPolicy, refs, { at: new Date(now), nonce: binding });
      Object.assign(seen, { claims, result });
      if (result.verdict !== 'pass') {
        throw problem('attestation-denied', 'KBS_ATTESTATION_DENIED', result.denial ?? 'the attestation policy denied the evidence', firstFailedRule(result) ? { rule: firstFailedRule(result) as string } : {});
      }
      const jti = randomBytes(16).toString('base64url');
      const expiresAt = now + this.tokenTtlMs;
      const token = await this.issueToken(result, session.id, jti, tee.jwk, now, expiresAt);
      note({ rule: `${result.policy.id}@${result.policy.version}`, detail: `EAR status ${result.status}` });
      const outcome = { attestedAt: now, expiresAt, teePubKey: JSON.stringify(tee.jwk), teePubKeyJkt: tee.jkt, binding, evidenceDigest: v.digest, claims: JSON.stringify(claims), tokenId: jti };
      // One transaction: the nonce consumed, the session attested, the console's record, the audit record.
      const record = this.attestationRecord(seen, actor, meta);
      const done = await this.store.completeAttestation(session.id, outcome, { at: this.now(), ...base, ...extra, verdict: 'allow' }, { consumeNonceAt: now, ...(record ? { attestation: record } : {}) });
      if (done === 'evidence-reused') throw problem('evidence-reused', 'KBS_EVIDENCE_REUSED', 'this evidence was already presented in another attestation', { rule: 'freshness.nonce' });
      if (done === 'state') throw problem('nonce-reused', 'KBS_NONCE_REUSED', 'the session changed state during attestation', { rule: 'freshness.nonce' });
      this.observe({ kind: 'attestation', tee: seen.tee, verdict: 'allow' });
      return { token, sessionId: session.id, expiresAt };
    } catch (e) {
      throw await this.refuseAttestation(e, base, extra, seen, actor, meta, burn);
    }
  }

  /**
   * Records a refused attestation (audit record, console record, the nonce burnt when the attempt
   * reached it) in one transaction, and returns the error to throw: a nonce-reuse refusal instead
   * of the attempt's own when another attempt consumed the nonce first, so that one nonce never
   * yields two verdicts.
   */
  private async refuseAttestation(e: unknown, base: Omit<AuditInput, 'at' | 'verdict'>, extra: Partial<AuditInput>, seen: AttestationSeen, actor: string, meta: RequestMeta, burn: { sessionId: string; at: number } | undefined): Promise<unknown> {
    let err = e;
    try {
      if (burn && (await this.store.refuseAttestation(this.denialRecord(base, extra, err), this.attestationRecord(seen, actor, meta, err), burn))) return err;
      if (burn) err = problem('nonce-reused', 'KBS_NONCE_REUSED', 'the nonce of this session was already used', { rule: 'freshness.nonce' });
      await this.store.refuseAttestation(this.denialRecord(base, extra, err), this.attestationRecord(seen, actor, meta, err));
      return err;
    } catch (storeError) {
      err = storeError;
      throw storeError;
    } finally {
      this.observe({ kind: 'attestation', tee: seen.tee ?? 'unknown', verdict: 'deny', problem: err instanceof ProblemError ? err.problem : 'internal' });
    }
  }

  private observe(e: BrokerEvent): void {
    for (const o of this.observers) {
      try {
        o(e);
      } catch {
        // metrics never change a decision
      }
    }
  }

  /**
   * The console's record of an attestation attempt that reached the evidence, with its claims and
   * trust report; undefined before that. Best effort: the audit record written with the decision
   * is the record of truth, and a failure here must neither turn a refusal into another error nor
   * withhold an issued token (the store writes it under a savepoint for the same reason).
   */
  private attestationRecord(seen: AttestationSeen, actor: string, meta: RequestMeta, err?: unknown): AttestationRecord | undefined {
    if (seen.tee === undefined) return undefined;
    try {
      const at = this.now();
      let result = seen.result;
      // Refused before the policy ran (evidence not bound to the nonce): appraise anyway, so the
      // report shows which link failed.
      if (!result && seen.claims) result = evaluate(seen.claims, this.attestationPolicy, this.references, { at: new Date(at), ...(seen.binding ? { nonce: seen.binding } : {}) });
      const p = err instanceof ProblemError ? err : undefined;
      const pl = seen.claims?.platforms[0];
      const rule = err === undefined ? (result ? `${result.policy.id}@${result.policy.version}` : undefined) : (p?.rule ?? (result ? firstFailedRule(result) : undefined));
      const detail = err === undefined ? (result ? `EAR status ${result.status}` : undefined) : err instanceof CofferError ? `${err.code}: ${err.message}`.slice(0, 500) : 'internal error';
      return {
        id: randomBytes(12).toString('hex'),
        at,
        actor,
        tee: seen.tee,
        verdict: err === undefined ? 'allow' : 'deny',
        ...(pl ? { platform: `${pl.tee}${pl.product ? ` ${pl.product}` : ''}` } : {}),
        ...(result ? { policy: `${result.policy.id}@${result.policy.version}` } : {}),
        ...(rule ? { rule: rule.slice(0, 400) } : {}),
        ...(err !== undefined ? { problem: p?.problem ?? 'internal' } : {}),
        ...(detail ? { detail } : {}),
        ...(seen.digest ? { evidenceDigest: seen.digest } : {}),
        ...(seen.binding ? { binding: seen.binding } : {}),
        ...(seen.claims ? { claims: JSON.stringify(seen.claims) } : {}),
        ...(result ? { report: JSON.stringify(trustReport(withBrokerBinding(result, seen))) } : {}),
        ...(meta.remote ? { remote: meta.remote } : {}),
      };
    } catch {
      // See above: the console misses this attempt; the audit log has it.
      return undefined;
    }
  }

  private async issueToken(result: AppraisalResult, sessionId: string, jti: string, jwk: JWK, now: number, expiresAt: number): Promise<string> {
    this.kid ??= await calculateJwkThumbprint(await exportJWK(this.earPublic));
    const claims = {
      ...earClaims(result, { verifierId: VERIFIER_ID, iat: new Date(now) }),
      exp: Math.floor(expiresAt / 1000),
      jti,
      'coffer.session': sessionId,
      // RFC 7800 confirmation: the key the secrets are encrypted to.
      cnf: { jwk },
    };
    return new SignJWT(claims as unknown as Record<string, unknown>).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: this.kid }).sign(this.earKey);
  }

  /**
   * The attested, unexpired session the credentials name: the session cookie, or the EAR token as
   * bearer, or both (then they must name the same session, and the token must be the one issued
   * for that session and key).
   */
  private async attestedSession(creds: { cookie?: string; bearer?: string }, now: number, note: Note): Promise<SessionRecord & { claims: string; teePubKey: string; binding: string }> {
    const cookieSession = creds.cookie ? sha256hex(creds.cookie) : undefined;
    let tokenSession: string | undefined;
    let tokenClaims: { jti?: string; cnf?: { jwk?: JWK } } | undefined;
    if (creds.bearer !== undefined) {
      try {
        const { payload } = await jwtVerify(creds.bearer, this.earPublic, { algorithms: ['ES384'], currentDate: new Date(now) });
        tokenSession = typeof payload['coffer.session'] === 'string' ? payload['coffer.session'] : undefined;
        tokenClaims = payload as typeof tokenClaims;
      } catch (e) {
        throw problem('token-invalid', 'KBS_TOKEN_INVALID', `the attestation token does not verify: ${(e as Error).message.slice(0, 200)}`);
      }
      if (!tokenSession) throw problem('token-invalid', 'KBS_TOKEN_INVALID', 'the attestation token names no session');
    }
    if (cookieSession && tokenSession && cookieSession !== tokenSession) {
      throw problem('session-mismatch', 'KBS_SESSION_MISMATCH', 'the attestation token was issued to another session than the kbs-session-id cookie names');
    }
    const sessionId = cookieSession ?? tokenSession;
    if (!sessionId) throw problem('not-attested', 'KBS_NO_SESSION', 'no kbs-session-id cookie and no attestation token');
    note({ actor: `session:${sessionId.slice(0, 16)}` });
    const s = await this.store.getSession(sessionId);
    if (!s) throw problem('session-unknown', 'KBS_UNKNOWN_SESSION', 'no such session');
    if (s.state !== 'attested' || !s.claims || !s.teePubKey || !s.binding) throw problem('not-attested', 'KBS_NOT_ATTESTED', 'the session has not attested: POST /kbs/v0/attest first');
    if (s.expiresAt <= now) throw problem('session-expired', 'KBS_SESSION_EXPIRED', `the session ended at ${new Date(s.expiresAt).toISOString()}: attest again`);
    if (tokenClaims) {
      const jkt = tokenClaims.cnf?.jwk ? await calculateJwkThumbprint(tokenClaims.cnf.jwk) : undefined;
      if (tokenClaims.jti !== s.tokenId || jkt !== s.teePubKeyJkt) throw problem('session-mismatch', 'KBS_SESSION_MISMATCH', 'the attestation token is not the one issued for this session and key');
    }
    return { ...s, claims: s.claims, teePubKey: s.teePubKey, binding: s.binding };
  }

  /**
   * `POST /kbs/v0/volume-initialized`: the VM that was released a volume's key reports that it
   * formatted the volume with it (first boot), so later releases say `initialized: true` and the
   * agent refuses a blank disk instead of formatting it again (volumes.ts).
   */
  async volumeInitialized(creds: { cookie?: string; bearer?: string }, body: unknown, meta: RequestMeta = {}): Promise<{ volume: string; keyVersion: number; initializedAt: number; already: boolean }> {
    const cookieSession = creds.cookie ? sha256hex(creds.cookie) : undefined;
    const actor = cookieSession ? `session:${cookieSession.slice(0, 16)}` : 'anonymous';
    return this.audited({ actor, action: 'kbs.volume-initialized', ...(meta.remote ? { remote: meta.remote } : {}) }, async (note, allow) => {
      const now = this.now();
      const s = await this.attestedSession(creds, now, note);
      note({ ...(s.evidenceDigest ? { evidenceDigest: s.evidenceDigest } : {}) });
      return markVolumeInitialized(this.store, s.id, body, now, note, allow);
    });
  }

  /** Releases a resource as a flattened JWE to the session's tee-pubkey. */
  async resource(path: string, creds: { cookie?: string; bearer?: string }, meta: RequestMeta = {}): Promise<FlattenedJWE> {
    const cookieSession = creds.cookie ? sha256hex(creds.cookie) : undefined;
    const actor = cookieSession ? `session:${cookieSession.slice(0, 16)}` : 'anonymous';
    return this.audited({ actor, action: 'kbs.resource', resource: path.slice(0, 400), ...(meta.remote ? { remote: meta.remote } : {}) }, async (note, allow) => {
      const p = resourcePath(path);
      const now = this.now();
      const s = await this.attestedSession(creds, now, note);
      note({ ...(s.evidenceDigest ? { evidenceDigest: s.evidenceDigest } : {}) });
      // A volume key (volumes.ts): its own generated policy on top of any along the path.
      const vol = isVolumePath(p) ? await volumeForRelease(this.store, p) : undefined;
      const pols = [...(await this.policiesFor(p)), ...(vol ? [{ prefix: `volume ${vol.id}`, policy: vol.policy }] : [])];
      this.references = (await this.trust.current()).store;
      if (pols.length === 0) throw problem('no-policy', 'KBS_NO_POLICY', `no release policy covers ${p}: nothing is released without one`);
      const claims = JSON.parse(s.claims) as Claims;
      // The built-in baseline first, then every policy along the path, shortest prefix first: a
      // narrower prefix's policy adds conditions to its parents', it never replaces them.
      for (const pol of [{ prefix: '(built-in)', policy: this.releaseBaseline }, ...pols]) {
        const result = evaluate(claims, pol.policy, this.references, { at: new Date(now), nonce: s.binding });
        if (result.verdict !== 'pass') {
          const rule = firstFailedRule(result);
          throw problem('policy-denied', 'KBS_POLICY_DENIED', `policy ${pol.policy.id}@${pol.policy.version} (prefix ${pol.prefix}) denies ${p}: ${result.denial ?? ''}`.trim(), rule ? { rule } : {});
        }
        // A rule that does not apply passes: an SNP measurement says nothing about a TPM quote. So
        // each policy must positively recognise the VM by one of its identity rules.
        if (pol.policy !== this.releaseBaseline && !result.rules.some((r) => r.status === 'pass' && IDENTITY_RULE.test(r.id))) {
          throw problem('policy-denied', 'KBS_POLICY_NO_IDENTITY_MATCH', `policy ${pol.policy.id}@${pol.policy.version} (prefix ${pol.prefix}) denies ${p}: none of its identity rules (launch measurement, PCRs) passed for this ${claims.platforms.map((x) => x.tee).join('+') || 'unknown'} evidence`, { rule: 'identity' });
        }
      }
      const decided = pols.map((x) => `${x.policy.id}@${x.policy.version}`).join(' + ');
      const rec = vol ? { ...vol.sealed, version: vol.version } : await this.store.getSecret(p);
      if (!rec) throw problem('resource-not-found', 'KBS_NO_RESOURCE', `no resource ${p}`);
      const plaintext = await open(this.kek, p, rec);
      try {
        const { key, alg } = await teeKey(JSON.parse(s.teePubKey));
        // A volume's key version and initialized flag ride in the protected header: authenticated
        // with the key, so the host cannot flip them on the way to the VM.
        const jwe = await new FlattenedEncrypt(plaintext).setProtectedHeader({ alg, enc: 'A256GCM', 'coffer.resource': p, ...(vol ? { [VOLUME_HEADER]: vol.header } : {}) } as never).encrypt(key);
        note({ rule: decided.slice(0, 400), detail: `policy prefixes ${pols.map((x) => x.prefix).join(', ')} and the release baseline, secret version ${rec.version}` });
        // At most once per attested session (one nonce), decided by the store's unique key in the
        // audit record's transaction, so neither a replica nor a restart can hand it out twice.
        const release = { sessionId: s.id, resourcePath: p, at: now, ...(s.evidenceDigest ? { evidenceDigest: s.evidenceDigest } : {}) };
        if (!(await this.store.recordRelease(release, allow()))) {
          throw problem('already-released', 'KBS_ALREADY_RELEASED', `${p} was already released to this session: attest again (a new nonce) to fetch it again`, { rule: 'release.once' });
        }
        return jwe;
      } finally {
        plaintext.fill(0);
      }
    });
  }

  /** Every policy whose prefix covers `path`, shortest prefix first: all of them must pass. */
  async policiesFor(path: string): Promise<{ prefix: string; policy: Policy }[]> {
    const parts = path.split('/');
    const out: { prefix: string; policy: Policy }[] = [];
    for (let n = 1; n <= parts.length; n++) {
      const prefix = parts.slice(0, n).join('/');
      const rec = await this.store.getPolicy(prefix);
      if (rec) out.push({ prefix, policy: this.parseCached(rec) });
    }
    return out;
  }

  private parseCached(rec: PolicyRecord): Policy {
    const hit = this.policyCache.get(rec.sha256);
    if (hit) return hit;
    const p = parsePolicy(rec.text, `policy for ${rec.prefix}`);
    if (this.policyCache.size > 1000) this.policyCache.clear();
    this.policyCache.set(rec.sha256, p);
    return p;
  }

  // ---------------------------------------------------------------------------------------------
  // Admin

  /**
   * Authenticates an `Authorization` header and checks the role, and the scope when the request
   * names a `resource`; audits a refusal. Requests without a resource (lists, audit queries,
   * token management) are confined to the token's scope by the method that serves them.
   */
  async authorize(authorization: string | undefined, action: string, roles: readonly Role[], resource?: string, meta: RequestMeta = {}): Promise<AdminActor> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    const token = m?.[1];
    const id = token ? tokenId(token) : undefined;
    const deny = this.denier(action, resource, meta);
    if (!token) throw await deny('anonymous', problem('unauthorized', 'ADMIN_NO_TOKEN', 'an admin bearer token is required (Authorization: Bearer coffer_...)'));
    const check = await checkToken(this.store, token);
    if (!check.ok) throw await deny(id ? `token:${id}` : 'anonymous', problem('unauthorized', 'ADMIN_BAD_TOKEN', `the bearer token is not valid (${check.why})`));
    return this.permit(check.record, action, roles, resource, deny);
  }

  /**
   * authorize() for a caller that proved its token earlier and holds a session naming it (the web
   * console): the token must still be active, then the same role and scope checks and audit.
   */
  async authorizeSession(id: string, action: string, roles: readonly Role[], resource?: string, meta: RequestMeta = {}): Promise<AdminActor> {
    const deny = this.denier(action, resource, meta);
    const rec = await this.store.getToken(id);
    if (!rec || rec.revokedAt !== undefined) throw await deny(`token:${id.slice(0, 32)}`, problem('unauthorized', 'ADMIN_BAD_TOKEN', `the session's token is not valid (${rec ? 'revoked token' : 'unknown token'}): sign in again`));
    return this.permit(rec, action, roles, resource, deny);
  }

  private denier(action: string, resource: string | undefined, meta: RequestMeta): (actor: string, p: ProblemError) => Promise<ProblemError> {
    const base = { action, ...(resource ? { resource: resource.slice(0, 400) } : {}), ...(meta.remote ? { remote: meta.remote } : {}) };
    return async (actor, p) => {
      await this.audit({ ...base, actor, verdict: 'deny', problem: p.problem, detail: `${p.code}: ${p.message}` });
      return p;
    };
  }

  private async permit(rec: TokenRecord, action: string, roles: readonly Role[], resource: string | undefined, deny: (actor: string, p: ProblemError) => Promise<ProblemError>): Promise<AdminActor> {
    if (!roles.includes(rec.role)) throw await deny(`token:${rec.id}`, problem('forbidden', 'ADMIN_ROLE', `role ${ROLE_NAMES[rec.role]} may not ${action} (needs ${roles.join(' or ')})`));
    if (resource !== undefined && rec.scope !== undefined && !covers(rec.scope, resource)) {
      throw await deny(`token:${rec.id}`, problem('out-of-scope', 'ADMIN_SCOPE', `token scope ${rec.scope} does not cover ${resource}`));
    }
    return { token: rec };
  }

  private adminBase(who: AdminActor, action: string, resource: string | undefined, meta: RequestMeta): Omit<AuditInput, 'at' | 'verdict'> {
    return { actor: `token:${who.token.id}`, action, ...(resource ? { resource: resource.slice(0, 400) } : {}), ...(meta.remote ? { remote: meta.remote } : {}) };
  }

  /** Runs an admin operation under the audit (also the console's own operations). */
  adminAudited<T>(who: AdminActor, action: string, resource: string | undefined, meta: RequestMeta, fn: (note: Note, allow: AllowRecord) => T | Promise<T>): Promise<T> {
    return this.audited(this.adminBase(who, action, resource, meta), async (note, allow) => fn(note, allow));
  }

  /**
   * Validates an admin request after its token was accepted (body, query): a refusal here is
   * audited like any other, so a probing token leaves a trace.
   */
  async validated<T>(who: AdminActor, action: string, resource: string | undefined, meta: RequestMeta, fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (e) {
      await this.auditDenial(this.adminBase(who, action, resource, meta), {}, e);
      throw e;
    }
  }

  /** Stores a secret (the caller's buffer is zeroed). */
  async putSecret(who: AdminActor, path: string, value: Buffer, meta: RequestMeta = {}): Promise<SecretMeta> {
    try {
      return await this.adminAudited(who, 'admin.secret.put', path, meta, async (note, allow) => {
        const p = resourcePath(path);
        if (isVolumePath(p)) throw problem('bad-request', 'SECRET_RESERVED_PATH', `the ${p.split('/')[0]} repository holds provisioned volume keys (POST /admin/v0/volumes); a secret cannot be put there`);
        if (value.length === 0) throw problem('bad-request', 'SECRET_EMPTY', 'a secret cannot be empty');
        if (value.length > MAX_SECRET_BYTES) throw problem('payload-too-large', 'SECRET_TOO_LARGE', `a secret is at most ${MAX_SECRET_BYTES} bytes`);
        const s = await seal(this.kek, p, value);
        const now = this.now();
        note({ detail: `version {version}, ${value.length} bytes` });
        return this.store.putSecret({ path: p, ...s, size: value.length, createdAt: now, updatedAt: now, createdBy: `token:${who.token.id}`, updatedBy: `token:${who.token.id}` }, allow());
      });
    } finally {
      value.fill(0);
    }
  }

  async secretMeta(who: AdminActor, path: string, meta: RequestMeta = {}): Promise<SecretMeta> {
    return this.adminAudited(who, 'admin.secret.get', path, meta, async () => {
      const rec = await this.store.getSecret(resourcePath(path));
      if (!rec) throw problem('not-found', 'SECRET_NOT_FOUND', `no secret ${path}`);
      const m: SecretMeta & { wrappedKey?: unknown; iv?: unknown; ciphertext?: unknown; tag?: unknown } = { ...rec };
      delete m.wrappedKey;
      delete m.iv;
      delete m.ciphertext;
      delete m.tag;
      return m;
    });
  }

  async listSecrets(who: AdminActor, prefix: string | undefined, meta: RequestMeta = {}): Promise<SecretMeta[]> {
    return this.adminAudited(who, 'admin.secret.list', prefix, meta, async () => {
      const p = prefix !== undefined ? prefixPath(prefix) : undefined;
      const all = await this.store.listSecrets(p);
      const scope = who.token.scope;
      return scope === undefined ? all : all.filter((s) => covers(scope, s.path));
    });
  }

  async deleteSecret(who: AdminActor, path: string, meta: RequestMeta = {}): Promise<void> {
    await this.adminAudited(who, 'admin.secret.delete', path, meta, async (_note, allow) => {
      if (!(await this.store.deleteSecret(resourcePath(path), allow()))) throw problem('not-found', 'SECRET_NOT_FOUND', `no secret ${path}`);
    });
  }

  /**
   * Stores a release policy. Refused: a policy that names no VM identity (launch measurement,
   * reference values or TPM PCRs: otherwise every genuine VM of the platform passes), and
   * one that explicitly allows what the release baseline forbids. Warned: no TCB minimum.
   */
  async setPolicy(who: AdminActor, prefix: string, text: string, meta: RequestMeta = {}): Promise<PolicySetResult> {
    return this.adminAudited(who, 'admin.policy.set', prefix, meta, async (note, allow) => {
      const p = prefixPath(prefix);
      let pol: Policy;
      try {
        pol = parsePolicy(text, `policy for ${p}`);
      } catch (e) {
        if (e instanceof CofferError) throw problem('bad-request', e.code, e.message);
        throw e;
      }
      if (identityAnchors(pol).length === 0) {
        throw problem(
          'bad-request',
          'POLICY_NO_IDENTITY',
          `policy ${pol.id}@${pol.version} names no VM identity, so it would release ${p} to any genuine VM: give measurements.snp, measurements.tdx, measurements.reference or pcrs (workload.digest and rtmrs only narrow one: the host picks HOST_DATA and MRCONFIGID, and the TD's own software extends RTMRs)`,
        );
      }
      const weaker = [pol.debug === 'allowed' ? 'debug: allowed' : '', pol.migration === 'allowed' ? 'migration: allowed' : '', pol.freshness?.nonce === 'optional' ? 'freshness.nonce: optional' : ''].filter(Boolean);
      if (weaker.length > 0) {
        throw problem('bad-request', 'POLICY_BELOW_BASELINE', `policy ${pol.id}@${pol.version} says ${weaker.join(', ')}, but every release must pass the built-in baseline (debug and migration forbidden, nonce binding required): remove it`);
      }
      const warnings: string[] = [];
      if (pol.tcb === undefined) warnings.push(`policy ${pol.id}@${pol.version} sets no TCB minimum (tcb:): VMs on firmware with known vulnerabilities are released to`);
      const rec: PolicyRecord = { prefix: p, policyId: pol.id, policyVersion: pol.version, text, sha256: sha256hex(text), updatedAt: this.now(), updatedBy: `token:${who.token.id}` };
      note({ rule: `${pol.id}@${pol.version}`, detail: `sha256 ${rec.sha256}${warnings.length > 0 ? '; no TCB minimum' : ''}` });
      await this.store.setPolicy(rec, allow());
      return { ...rec, warnings };
    });
  }

  async getPolicy(who: AdminActor, prefix: string, meta: RequestMeta = {}): Promise<PolicyRecord> {
    return this.adminAudited(who, 'admin.policy.get', prefix, meta, async () => {
      const rec = await this.store.getPolicy(prefixPath(prefix));
      if (!rec) throw problem('not-found', 'POLICY_NOT_FOUND', `no policy for prefix ${prefix}`);
      return rec;
    });
  }

  async listPolicies(who: AdminActor, meta: RequestMeta = {}): Promise<Omit<PolicyRecord, 'text'>[]> {
    return this.adminAudited(who, 'admin.policy.list', undefined, meta, async () => {
      const scope = who.token.scope;
      return (await this.store.listPolicies()).filter((p) => scope === undefined || covers(scope, p.prefix)).map(({ text: _t, ...rest }) => rest);
    });
  }

  async deletePolicy(who: AdminActor, prefix: string, meta: RequestMeta = {}): Promise<void> {
    await this.adminAudited(who, 'admin.policy.delete', prefix, meta, async (_note, allow) => {
      if (!(await this.store.deletePolicy(prefixPath(prefix), allow()))) throw problem('not-found', 'POLICY_NOT_FOUND', `no policy for prefix ${prefix}`);
    });
  }

  /** A scoped token sees only the records about resources inside its scope. */
  async queryAudit(who: AdminActor, q: AuditQuery, meta: RequestMeta = {}): Promise<AuditRecord[]> {
    const scope = who.token.scope;
    // Reading the log is itself recorded, after the read (so a query does not see itself).
    return this.adminAudited(who, 'admin.audit.query', scope, meta, async () => this.store.queryAudit({ ...q, ...(scope !== undefined ? { scope } : {}) }));
  }

  /** Whether a token may see or manage another: unscoped sees all; scoped, only tokens scoped inside its scope. */
  private manages(who: AdminActor, t: TokenRecord): boolean {
    const scope = who.token.scope;
    return scope === undefined || (t.scope !== undefined && covers(scope, t.scope));
  }

  async createAdminToken(who: AdminActor, role: Role, opts: { scope?: string; label?: string }, meta: RequestMeta = {}): Promise<NewToken> {
    return this.adminAudited(who, 'admin.token.create', opts.scope?.slice(0, 400) ?? who.token.scope, meta, async (note, allow) => {
      const scope = opts.scope !== undefined ? prefixPath(opts.scope) : undefined;
      const mine = who.token.scope;
      // A token never makes a token that can do more than itself: scope inside its own, role no higher.
      if (mine !== undefined && (scope === undefined || !covers(mine, scope))) {
        throw problem('out-of-scope', 'ADMIN_SCOPE_ESCALATION', `a token scoped to ${mine} may only create tokens scoped to ${mine} or under it (${scope === undefined ? 'no scope was given' : `not ${scope}`})`);
      }
      if (ROLE_RANK[role] > ROLE_RANK[who.token.role] || (role !== who.token.role && who.token.role !== 'admin')) {
        throw problem('forbidden', 'ADMIN_ROLE_ESCALATION', `role ${ROLE_NAMES[who.token.role]} may not create a ${ROLE_NAMES[role]} token`);
      }
      return createToken(this.store, role, { at: this.now(), ...(scope ? { scope } : {}), ...(opts.label ? { label: opts.label.slice(0, 100) } : {}) }, (id) => {
        note({ detail: `created token:${id} role ${role}${scope ? ` scope ${scope}` : ''}` });
        return allow();
      });
    });
  }

  async listAdminTokens(who: AdminActor, meta: RequestMeta = {}): Promise<Omit<TokenRecord, 'hash'>[]> {
    return this.adminAudited(who, 'admin.token.list', who.token.scope, meta, async () =>
      (await this.store.listTokens()).filter((t) => this.manages(who, t)).map(({ hash: _h, ...rest }) => rest),
    );
  }

  /** A scoped admin may revoke only tokens scoped inside its scope; others are "not found" to it. */
  async revokeAdminToken(who: AdminActor, id: string, meta: RequestMeta = {}): Promise<void> {
    const scope = who.token.scope;
    await this.adminAudited(who, 'admin.token.revoke', scope ?? `token:${id.slice(0, 32)}`, meta, async (note, allow) => {
      const t = await this.store.getToken(id);
      if (t && this.manages(who, t)) note({ detail: `token:${t.id}` });
      if (!t || !this.manages(who, t) || !(await this.store.revokeToken(id, this.now(), allow()))) throw problem('not-found', 'TOKEN_NOT_FOUND', `no active token ${id.slice(0, 32)}${scope !== undefined ? ` in scope ${scope}` : ''}`);
    });
  }

  /** The attestation policy in use (the console shows it). */
  attestationPolicyInUse(): Policy {
    return this.attestationPolicy;
  }

  async close(): Promise<void> {
    await this.kek.close();
    await this.store.close();
  }
}

export type { ProblemName };
