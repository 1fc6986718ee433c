import { createHash, generateKeyPairSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { exportJWK, flattenedDecrypt, type FlattenedJWE } from 'jose';
import { CofferError, inputError } from '../errors.js';
import { canonicalBytes } from '../broker/jcs.js';
import type { EvidenceSource } from './evidence.js';
import { sanitize, silentLog, type AgentLog } from './log.js';

/**
 * The guest side of the KBS attestation protocol (RCAR, docs/protocol.md): auth → attest →
 * resource, with an ephemeral P-384 key generated in memory for this one fetch. The evidence's
 * report data is H(JCS(runtime-data)) with the hash the broker names in its auth reply, so the
 * report proves this nonce and this key; the released secret is a JWE only that key opens.
 *
 * The broker is authenticated by TLS (a pinned CA or the SHA-256 of its certificate): the JWE
 * keeps the secret from an eavesdropper, but an impostor broker could hand out a key of its own
 * choosing, and on first boot a blank volume would be formatted with it.
 */

export const KBS_PROTOCOL_VERSION = '0.1.0';
const HASHES = ['sha256', 'sha384', 'sha512'] as const;
type HashAlg = (typeof HASHES)[number];
const MAX_REPLY = 1 << 20;

export interface BrokerTls {
  /** PEM CA certificate(s) the broker's certificate must chain to (host name checked). */
  ca?: Buffer | string;
  /** SHA-256 of the broker certificate's DER, hex with or without colons: only that certificate is accepted. */
  pinSha256?: string;
}

export interface FetchOptions {
  broker: string;
  /** `repo/type/tag`. */
  resource: string;
  evidence: EvidenceSource;
  tls?: BrokerTls;
  /** Plain http:// to a non-loopback broker (refused otherwise). */
  allowInsecureHttp?: boolean;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  log?: AgentLog;
}

/** Problem types after which trying again (new session, new nonce) can succeed. */
const TRANSIENT_PROBLEMS = new Set(['session-unknown', 'session-expired', 'nonce-expired', 'nonce-reused', 'rate-limited', 'internal']);

/** A refusal or failure of the broker exchange. `transient`: a later attempt may succeed. */
export class BrokerError extends CofferError {
  readonly transient: boolean;
  readonly problemType: string | undefined;
  constructor(code: string, message: string, o: { transient: boolean; problemType?: string; kind?: 'input' | 'verify' }) {
    super(code, message, { kind: o.kind ?? 'verify' });
    this.transient = o.transient;
    this.problemType = o.problemType;
  }
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export function parsePin(pin: string): Buffer {
  const hex = pin.replace(/^sha256[:/]/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw inputError('AGENT_BAD_PIN', 'the broker certificate pin must be a SHA-256 fingerprint: 64 hex digits, colons allowed');
  return Buffer.from(hex, 'hex');
}

/** Checks the broker URL and TLS settings before anything is sent. */
export function brokerBase(url: string, tls: BrokerTls | undefined, allowInsecureHttp: boolean): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw inputError('AGENT_BAD_URL', `broker URL ${JSON.stringify(sanitize(url, 100))} is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw inputError('AGENT_BAD_URL', `broker URL must be https:// (or http:// to a loopback address), not ${base.protocol}`);
  if (base.protocol === 'http:' && !isLoopback(base.hostname) && !allowInsecureHttp) {
    throw inputError('AGENT_INSECURE_URL', `refusing plain http:// to ${base.host}: an impostor broker could hand out a key of its choosing. Use https:// with a pinned CA or certificate`);
  }
  if (base.protocol === 'http:' && (tls?.ca !== undefined || tls?.pinSha256 !== undefined)) throw inputError('AGENT_BAD_TLS', `a broker CA or certificate pin is configured, but ${base.origin} is plain http://: use https://`);
  if (tls?.pinSha256 !== undefined) parsePin(tls.pinSha256);
  if (tls?.ca !== undefined && tls.pinSha256 !== undefined) throw inputError('AGENT_BAD_TLS', 'give either a CA or a certificate pin for the broker, not both');
  return base;
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function transportError(u: URL, e: NodeJS.ErrnoException): BrokerError {
  if (e instanceof BrokerError) return e;
  const tlsProblem = /CERT|SELF_SIGNED|VERIFY|ALTNAME|UNABLE_TO_GET|certificate/i.test(`${e.code ?? ''} ${e.message}`);
  return tlsProblem
    ? new BrokerError('AGENT_TLS_REJECTED', `the broker's certificate at ${u.host} is not trusted: ${e.code ?? e.message}`, { transient: false })
    : new BrokerError('BROKER_UNREACHABLE', `cannot reach the broker at ${u.host}: ${e.code ?? e.message}`, { transient: true });
}

/**
 * One request. Over https the request (cookie, token, evidence) is sent only once the handshake
 * is done and, with a pin, the certificate's SHA-256 compared: until `end()` is called, nothing
 * but the TLS handshake leaves the VM.
 */
async function send(u: URL, method: string, o: { tls?: BrokerTls; timeoutMs: number; headers: Record<string, string>; body?: Buffer }): Promise<Reply> {
  const https = u.protocol === 'https:';
  const pin = https && o.tls?.pinSha256 !== undefined ? parsePin(o.tls.pinSha256) : undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise<Reply>((resolve, reject) => {
    const options = {
      host,
      port: Number(u.port || (https ? 443 : 80)),
      path: `${u.pathname}${u.search}`,
      method,
      agent: false as const,
      headers: { accept: 'application/json', ...o.headers, ...(o.body ? { 'content-type': 'application/json', 'content-length': String(o.body.length) } : {}) },
    };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_REPLY) req.destroy(new Error('reply too large'));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    };
    const req = https
      ? httpsRequest(
          {
            ...options,
            ...(isIP(host) ? {} : { servername: host }),
            ...(o.tls?.ca !== undefined ? { ca: o.tls.ca } : {}),
            // With a pin the certificate itself is the trust anchor (typically self-signed): chain
            // validation is replaced by the fingerprint comparison below, made before sending.
            rejectUnauthorized: pin === undefined,
          },
          onResponse,
        )
      : httpRequest(options, onResponse);
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(transportError(u, e)));
    if (!https) {
      req.end(o.body);
      return;
    }
    req.once('socket', (socket) => {
      (socket as TLSSocket).once('secureConnect', () => {
        if (pin) {
          const der = (socket as TLSSocket).getPeerCertificate().raw as Buffer | undefined;
          const got = der ? createHash('sha256').update(der).digest() : Buffer.alloc(32);
          if (!der || !timingSafeEqual(got, pin)) {
            req.destroy(new BrokerError('AGENT_PIN_MISMATCH', `the broker at ${u.host} presented a certificate with SHA-256 ${got.toString('hex')}, not the pinned one`, { transient: false }));
            return;
          }
        }
        req.end(o.body);
      });
    });
  });
}

function json(r: Reply, step: string): Record<string, unknown> {
  try {
    const v = JSON.parse(r.body.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new BrokerError('BROKER_BAD_REPLY', `the broker's ${step} reply (HTTP ${r.status}) is not a JSON object`, { transient: r.status >= 500 });
}

/** A refusal as one line: `<step> refused by the broker: <detail> [<problem type>]`. */
function refusal(r: Reply, step: string): BrokerError {
  let p: Record<string, unknown> = {};
  try {
    const v = JSON.parse(r.body.toString('utf8')) as unknown;
    // `null` or an array is no problem document: without this, a 503 saying `null` was a TypeError, not retried.
    if (v && typeof v === 'object' && !Array.isArray(v)) p = v as Record<string, unknown>;
  } catch {
    p = {};
  }
  const type = typeof p.type === 'string' ? p.type : undefined;
  const short = type?.startsWith('urn:coffer:problem:') ? type.slice('urn:coffer:problem:'.length) : undefined;
  const code = typeof p.code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(p.code) ? p.code : `BROKER_HTTP_${r.status}`;
  const detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : `HTTP ${r.status}`;
  const transient = r.status >= 500 || r.status === 429 || (short !== undefined && TRANSIENT_PROBLEMS.has(short));
  return new BrokerError(code, `${step} refused by the broker (HTTP ${r.status}): ${sanitize(detail, 400)} [${sanitize(type ?? 'no problem type', 100)}]`, { transient, ...(type ? { problemType: type } : {}) });
}

function sessionCookie(r: Reply): string {
  const set = r.headers['set-cookie'] ?? [];
  for (const c of set) {
    const m = /^kbs-session-id=([^;]+)/.exec(c);
    if (m?.[1]) return m[1];
  }
  throw new BrokerError('BROKER_BAD_REPLY', 'the broker\'s auth reply set no kbs-session-id cookie', { transient: false });
}

function negotiatedHash(extra: unknown): HashAlg {
  let params = extra;
  if (typeof extra === 'string') {
    if (extra.trim() === '') return 'sha384';
    try {
      params = JSON.parse(extra);
    } catch {
      throw new BrokerError('BROKER_BAD_REPLY', 'the broker\'s extra-params is not JSON', { transient: false });
    }
  }
  const alg = params && typeof params === 'object' ? (params as Record<string, unknown>)['runtime-data-hash-algorithm'] : undefined;
  if (alg === undefined) return 'sha384';
  if (typeof alg === 'string' && (HASHES as readonly string[]).includes(alg.toLowerCase())) return alg.toLowerCase() as HashAlg;
  throw new BrokerError('BROKER_BAD_REPLY', `the broker asks for runtime-data hash ${JSON.stringify(alg)}, which the agent does not support`, { transient: false });
}

const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;

export function checkResourcePath(path: string): string {
  const parts = path.split('/');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p) && p !== '.' && p !== '..')) {
    throw inputError('AGENT_BAD_RESOURCE', `resource ${JSON.stringify(sanitize(path, 100))} must be repository/type/tag (letters, digits, . _ -)`);
  }
  return path;
}

/** The 64 bytes of report data: H(JCS(runtime-data)), zero-padded, as the broker recomputes it. */
export function reportDataFor(runtimeData: unknown, alg: HashAlg): Buffer {
  const out = Buffer.alloc(64);
  createHash(alg).update(canonicalBytes(runtimeData)).digest().copy(out);
  return out;
}

/**
 * What the broker says about a volume key it releases (`volumes/<id>/key`): the `coffer.volume`
 * member of the JWE protected header, authenticated by the AEAD with the key itself, so the host
 * cannot flip `initialized` on the way in.
 */
export interface VolumeReleaseInfo {
  id: string;
  keyVersion: number;
  /** A VM already reported formatting this volume under this key version: a blank disk now is a reset. */
  initialized: boolean;
}

/** The session a release was made to: it alone may report the volume initialized. Holds bearer credentials: never log it. */
export interface ReleaseSession {
  readonly base: URL;
  readonly cookie: string;
  readonly token: string;
  readonly tls?: BrokerTls;
  readonly timeoutMs: number;
}

export interface FetchedResource {
  secret: Buffer;
  /** Present for a volume key (and then required of the broker), absent otherwise. */
  volume?: VolumeReleaseInfo;
  session: ReleaseSession;
}

const VOLUME_PATH = /^volumes\/([^/]+)\/key$/;

/** The `coffer.volume` header member: required for `volumes/<id>/key`, refused elsewhere; unknown fields refused. */
export function volumeHeader(path: string, header: Record<string, unknown> | undefined): VolumeReleaseInfo | undefined {
  const m = VOLUME_PATH.exec(path);
  const v = header?.['coffer.volume'];
  if (!m) {
    if (v !== undefined) throw new BrokerError('AGENT_JWE_BAD_VOLUME_HEADER', `the release of ${path} carries a coffer.volume header, but ${path} is not a volume key`, { transient: false });
    return undefined;
  }
  const ok =
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    Object.keys(v).every((k) => k === 'id' || k === 'keyVersion' || k === 'initialized') &&
    (v as Record<string, unknown>).id === m[1] &&
    Number.isSafeInteger((v as Record<string, unknown>).keyVersion) &&
    ((v as Record<string, unknown>).keyVersion as number) >= 1 &&
    typeof (v as Record<string, unknown>).initialized === 'boolean';
  if (!ok) {
    throw new BrokerError(
      'AGENT_JWE_BAD_VOLUME_HEADER',
      `the release of ${path} has ${v === undefined ? 'no' : 'an unusable'} coffer.volume protected header (want {"id": "${m[1]}", "keyVersion": n, "initialized": true|false}): without it the agent cannot tell a first boot from a reset disk. Is the broker older than the agent?`,
      { transient: false },
    );
  }
  const h = v as VolumeReleaseInfo;
  return { id: h.id, keyVersion: h.keyVersion, initialized: h.initialized };
}

/**
 * One RCAR exchange; returns the plaintext secret. The caller owns the buffer and zeroes it.
 * Any failure is a BrokerError (transient or not) or a CofferError from the evidence source.
 */
export async function fetchResource(o: FetchOptions): Promise<Buffer> {
  return (await fetchResourceWithSession(o)).secret;
}

/** fetchResource, with the volume header (for a volume key) and the session the release was made to. */
export async function fetchResourceWithSession(o: FetchOptions): Promise<FetchedResource> {
  const log = o.log ?? silentLog;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const base = brokerBase(o.broker, o.tls, o.allowInsecureHttp === true);
  const path = checkResourcePath(o.resource);
  const at = (p: string) => new URL(p, base.href.endsWith('/') ? base.href : `${base.href}/`);
  const common = { ...(o.tls ? { tls: o.tls } : {}), timeoutMs };

  const auth = await send(at('kbs/v0/auth'), 'POST', { ...common, headers: {}, body: Buffer.from(JSON.stringify({ version: KBS_PROTOCOL_VERSION, tee: o.evidence.tee, 'extra-params': '' })) });
  if (auth.status !== 200) throw refusal(auth, 'auth');
  const authBody = json(auth, 'auth');
  const cookie = sessionCookie(auth);
  if (typeof authBody.nonce !== 'string' || authBody.nonce.length === 0 || authBody.nonce.length > 256) throw new BrokerError('BROKER_BAD_REPLY', 'the broker\'s auth reply has no usable nonce', { transient: false });
  const hash = negotiatedHash(authBody['extra-params']);
  log.info('auth', `session opened with ${base.host} (tee ${o.evidence.tee}, runtime-data hash ${hash})`);

  // Generated here, used for this one release, never exported: only the public half leaves.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' }) as { privateKey: KeyObject; publicKey: KeyObject };
  const jwk = await exportJWK(publicKey);
  const runtimeData = { nonce: authBody.nonce, 'tee-pubkey': { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } };
  const evidence = await o.evidence.collect(reportDataFor(runtimeData, hash));

  const attest = await send(at('kbs/v0/attest'), 'POST', { ...common, headers: { cookie: `kbs-session-id=${cookie}` }, body: Buffer.from(JSON.stringify({ 'runtime-data': runtimeData, 'tee-evidence': evidence })) });
  if (attest.status !== 200) throw refusal(attest, 'attestation');
  const token = json(attest, 'attest').token;
  if (typeof token !== 'string' || token.length > 16_384) throw new BrokerError('BROKER_BAD_REPLY', 'the broker\'s attest reply has no token', { transient: false });
  log.info('attest', `evidence accepted by the broker (${o.evidence.name}); attestation token received`);

  const res = await send(at(`kbs/v0/resource/${path}`), 'GET', { ...common, headers: { cookie: `kbs-session-id=${cookie}`, authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw refusal(res, `release of ${path}`);
  const jwe = json(res, 'resource') as unknown as FlattenedJWE;
  let plaintext: Uint8Array;
  let header: Record<string, unknown> | undefined;
  try {
    const out = await flattenedDecrypt(jwe, privateKey, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
    plaintext = out.plaintext;
    header = out.protectedHeader as Record<string, unknown> | undefined;
  } catch (e) {
    throw new BrokerError('AGENT_JWE_INVALID', `the released ${path} does not decrypt with this VM's key: ${sanitize((e as Error).message, 200)} (altered in transit, or not encrypted to this session)`, { transient: false });
  }
  const secret = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  // Authenticated by GCM: a broker (or proxy) that answered with another path's secret is caught here.
  if (header?.['coffer.resource'] !== path) {
    secret.fill(0);
    throw new BrokerError('AGENT_JWE_WRONG_RESOURCE', `the released JWE names resource ${JSON.stringify(sanitize(String(header?.['coffer.resource']), 200))}, not ${path}`, { transient: false });
  }
  let volume: VolumeReleaseInfo | undefined;
  try {
    volume = volumeHeader(path, header);
  } catch (e) {
    secret.fill(0);
    throw e;
  }
  log.info('release', `${path} released and decrypted in memory (${secret.length} bytes)${volume ? `: volume ${volume.id} key version ${volume.keyVersion}, ${volume.initialized ? 'initialized by an earlier boot' : 'not yet initialized'}` : ''}`);
  return { secret, ...(volume ? { volume } : {}), session: { base, cookie, token, ...(o.tls ? { tls: o.tls } : {}), timeoutMs } };
}

/**
 * `POST /kbs/v0/volume-initialized` in the session the volume's key was released to: the volume
 * is formatted (or found formatted) under that key version. Returns whether the broker changed
 * anything (false: it already knew). Failures are BrokerErrors; session problems are final here,
 * since only this session may report.
 */
export async function reportVolumeInitialized(session: ReleaseSession, volume: VolumeReleaseInfo, o: { timeoutMs?: number; log?: AgentLog } = {}): Promise<boolean> {
  const log = o.log ?? silentLog;
  const u = new URL('kbs/v0/volume-initialized', session.base.href.endsWith('/') ? session.base.href : `${session.base.href}/`);
  const r = await send(u, 'POST', {
    ...(session.tls ? { tls: session.tls } : {}),
    timeoutMs: o.timeoutMs ?? session.timeoutMs,
    headers: { cookie: `kbs-session-id=${session.cookie}`, authorization: `Bearer ${session.token}` },
    body: Buffer.from(JSON.stringify({ volume: volume.id, keyVersion: volume.keyVersion })),
  });
  if (r.status !== 200) {
    const e = refusal(r, `the volume-initialized report for ${volume.id}`);
    const sessionOver = e.problemType !== undefined && /:(session-(unknown|expired)|not-attested)$/.test(e.problemType);
    throw sessionOver ? new BrokerError(e.code, e.message, { transient: false, problemType: e.problemType as string }) : e;
  }
  const changed = json(r, 'volume-initialized').changed === true;
  log.info('initialized', `the broker records volume ${volume.id} key version ${volume.keyVersion} as initialized${changed ? '' : ' (it already did)'}`);
  return changed;
}
