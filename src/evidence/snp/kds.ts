/**
 * Fetching SEV-SNP collateral from AMD's Key Distribution Service (KDS): VCEK certificates,
 * the ASK/ASVK + ARK chain and CRLs, through an on-disk cache, with an offline mode.
 *
 * This is the one place in `evidence/snp` that does I/O. Parsing and verification take
 * bytes; this module only obtains them. It checks that what it obtains is well formed
 * (so that garbage is never cached), but it verifies no signature: the chain is checked
 * against the pinned roots by the verifier.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import * as pkijs from 'pkijs';
import { CofferError, inputError, verifyError } from '../../errors.js';
import type { SnpProduct } from './report.js';

export type { SnpProduct };
export type KeyKind = 'vcek' | 'vlek';

export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];
export const KDS_BASE_URL = 'https://kdsintf.amd.com';

/** TCB security patch levels as the KDS query names them. `fmc` is used (and required) for Turin only. */
export interface TcbParts {
  bl: number;
  tee: number;
  snp: number;
  ucode: number;
  fmc?: number;
}

export interface KdsEvent {
  /** `fetch`: first request for a URL; `retry`: each further attempt; `cache-hit`: served from disk. */
  kind: 'cache-hit' | 'fetch' | 'retry';
  url: string;
}

export interface KdsOptions {
  /** Default `https://kdsintf.amd.com`. */
  baseUrl?: string;
  /** Default `$COFFER_CACHE_DIR/kds`, else `$XDG_CACHE_HOME/coffer/kds`, else `~/.cache/coffer/kds`. */
  cacheDir?: string;
  /** Use only the cache; a miss fails with KDS_OFFLINE_MISS naming the URL. */
  offline?: boolean;
  fetch?: typeof fetch;
  /** Per attempt, including reading the body. Default 10000. */
  timeoutMs?: number;
  /** Further attempts after a 429, a 5xx, a timeout or a network error. Default 3. */
  retries?: number;
  /** First backoff delay when the server gives no Retry-After; doubles per attempt. Default 1000. */
  retryBaseDelayMs?: number;
  /** Longest wait between attempts; a Retry-After beyond it fails with KDS_RATE_LIMITED. Default 60000. */
  maxRetryDelayMs?: number;
  /** The clock against which a CRL's nextUpdate is judged. */
  now?: () => Date;
  onEvent?: (e: KdsEvent) => void;
}

const CHIP_ID_LEN = 64;
const TURIN_HWID_LEN = 8;
/** KDS answers are a few KiB; anything far larger is not what we asked for. */
const MAX_BODY_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------
// URLs

function checkProduct(product: string): SnpProduct {
  if (!(SNP_PRODUCTS as readonly string[]).includes(product)) {
    throw inputError('KDS_BAD_PRODUCT', `unknown SEV-SNP product "${product}" (expected ${SNP_PRODUCTS.join(', ')})`);
  }
  return product as SnpProduct;
}

function checkKind(kind: string): KeyKind {
  if (kind !== 'vcek' && kind !== 'vlek') {
    throw inputError('KDS_BAD_KIND', `unknown key kind "${kind}" (expected vcek or vlek)`);
  }
  return kind;
}

function checkSpl(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
    throw inputError('KDS_BAD_TCB', `TCB component ${name} must be an integer 0..255, got ${String(v)}`);
  }
  return v;
}

function normaliseBase(baseUrl: string | undefined): string {
  const raw = baseUrl ?? KDS_BASE_URL;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw inputError('KDS_BAD_OPTIONS', `KDS base URL "${raw}" is not a URL`);
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.search !== '' || u.hash !== '') {
    throw inputError('KDS_BAD_OPTIONS', `KDS base URL "${raw}" must be a plain http(s) URL`);
  }
  return u.href.replace(/\/+$/, '');
}

/** The hwid part of a VCEK URL: the whole chip id, or its first 8 bytes for Turin. */
function hwidHex(product: SnpProduct, chipId: Uint8Array): string {
  if (!(chipId instanceof Uint8Array) || chipId.length !== CHIP_ID_LEN) {
    const got = chipId instanceof Uint8Array ? `${chipId.length} bytes` : typeof chipId;
    throw inputError('KDS_BAD_CHIP_ID', `chip id must be ${CHIP_ID_LEN} bytes, got ${got}`);
  }
  const hwid = product === 'Turin' ? chipId.subarray(0, TURIN_HWID_LEN) : chipId;
  if (hwid.every((b) => b === 0)) {
    // MASK_CHIP_ID, or a VLEK-signed report: the chip is anonymous, so KDS has nothing to give.
    throw inputError(
      'KDS_NO_CHIP_ID',
      'the report carries an all-zero chip id (MASK_CHIP_ID set, or signed by a VLEK): its VCEK cannot be fetched from KDS; supply the certificate yourself',
    );
  }
  return Buffer.from(hwid.buffer, hwid.byteOffset, hwid.byteLength).toString('hex');
}

export function vcekUrl(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts, baseUrl?: string): string {
  const p = checkProduct(product);
  const base = normaliseBase(baseUrl);
  const hwid = hwidHex(p, chipId);
  if (tcb === null || typeof tcb !== 'object') throw inputError('KDS_BAD_TCB', 'TCB parts are missing');
  const params: string[] = [];
  if (p === 'Turin') {
    if (tcb.fmc === undefined) throw inputError('KDS_BAD_TCB', 'a Turin VCEK URL needs the fmc TCB component');
    params.push(`fmcSPL=${checkSpl('fmc', tcb.fmc)}`);
  }
  params.push(
    `blSPL=${checkSpl('bl', tcb.bl)}`,
    `teeSPL=${checkSpl('tee', tcb.tee)}`,
    `snpSPL=${checkSpl('snp', tcb.snp)}`,
    `ucodeSPL=${checkSpl('ucode', tcb.ucode)}`,
  );
  return `${base}/vcek/v1/${p}/${hwid}?${params.join('&')}`;
}

export function certChainUrl(product: SnpProduct, kind: KeyKind, baseUrl?: string): string {
  return `${normaliseBase(baseUrl)}/${checkKind(kind)}/v1/${checkProduct(product)}/cert_chain`;
}

export function crlUrl(product: SnpProduct, kind: KeyKind, baseUrl?: string): string {
  return `${normaliseBase(baseUrl)}/${checkKind(kind)}/v1/${checkProduct(product)}/crl`;
}

// ---------------------------------------------------------------------------------------
// Validation of what KDS returns

function badResponse(url: string, why: string): CofferError {
  return verifyError('KDS_BAD_RESPONSE', `KDS returned something unusable from ${url}: ${why}`, { url });
}

/** True if `b` is exactly one DER SEQUENCE: no truncation, nothing trailing. */
function isSingleDerSequence(b: Buffer): boolean {
  if (b.length < 2 || b[0] !== 0x30) return false;
  const first = b[1] as number;
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || b.length < 2 + n) return false;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[2 + i] as number);
    header = 2 + n;
  }
  return header + len === b.length;
}

function checkVcek(url: string, body: Buffer): void {
  if (!isSingleDerSequence(body)) throw badResponse(url, 'not a single DER structure');
  try {
    new X509Certificate(body);
  } catch {
    throw badResponse(url, 'not a DER X.509 certificate');
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

function checkChain(url: string, body: Buffer): void {
  // PEM is ASCII; anything else means a proxy page, a truncated download or a binary.
  for (const byte of body) {
    if (!(byte === 0x09 || byte === 0x0a || byte === 0x0d || (byte >= 0x20 && byte <= 0x7e))) {
      throw badResponse(url, 'not PEM text');
    }
  }
  const text = body.toString('latin1');
  const blocks = text.match(PEM_CERT) ?? [];
  if (text.replace(PEM_CERT, '').trim() !== '') throw badResponse(url, 'text outside the PEM certificates');
  if (blocks.length !== 2) throw badResponse(url, `expected 2 PEM certificates (ASK or ASVK, then ARK), found ${blocks.length}`);
  let certs: X509Certificate[];
  try {
    certs = blocks.map((b) => new X509Certificate(b));
  } catch {
    throw badResponse(url, 'a PEM block is not an X.509 certificate');
  }
  const [signer, ark] = certs as [X509Certificate, X509Certificate];
  // Names only: signatures are the verifier's business, against the pinned ARK.
  if (!ark.checkIssued(ark) || !signer.checkIssued(ark)) {
    throw badResponse(url, 'the certificates are not in the order ASK/ASVK then self-issued ARK');
  }
}

function crlNextUpdate(url: string, body: Buffer): Date {
  if (!isSingleDerSequence(body)) throw badResponse(url, 'not a single DER structure');
  let crl: pkijs.CertificateRevocationList;
  try {
    crl = pkijs.CertificateRevocationList.fromBER(body);
  } catch {
    throw badResponse(url, 'not a DER X.509 CRL');
  }
  const next = crl.nextUpdate?.value;
  // Without nextUpdate there is no way to tell a fresh CRL from a stale one.
  if (!(next instanceof Date) || Number.isNaN(next.getTime())) throw badResponse(url, 'the CRL has no nextUpdate');
  return next;
}

// ---------------------------------------------------------------------------------------
// Cache

function defaultCacheDir(): string {
  const env = process.env;
  if (env.COFFER_CACHE_DIR) return join(env.COFFER_CACHE_DIR, 'kds');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'coffer', 'kds');
  return join(homedir(), '.cache', 'coffer', 'kds');
}

/** One file per URL: a readable label for people, the URL's SHA-256 for uniqueness. */
function cacheFileName(label: string, url: string, ext: string): string {
  const digest = createHash('sha256').update(url).digest('hex');
  return `${label.replace(/[^A-Za-z0-9_-]/g, '_')}-${digest}.${ext}`;
}

function cacheError(path: string, err: unknown): CofferError {
  const why = err instanceof Error ? err.message : String(err);
  return new CofferError('KDS_CACHE_ERROR', `KDS cache ${path}: ${why}`, { kind: 'verify', details: { path }, cause: err });
}

async function readCache(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cacheError(path, err);
  }
}

async function writeCacheAtomically(dir: string, name: string, body: Buffer): Promise<void> {
  const target = join(dir, name);
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(temp, body, { flag: 'wx', mode: 0o600, flush: true });
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw cacheError(target, err);
  }
}

// ---------------------------------------------------------------------------------------
// HTTP with retries

interface ResolvedOptions {
  baseUrl: string;
  cacheDir: string;
  offline: boolean;
  fetch: typeof fetch;
  timeoutMs: number;
  retries: number;
  retryBaseDelayMs: number;
  maxRetryDelayMs: number;
  now: () => Date;
  onEvent: (e: KdsEvent) => void;
}

function nonNegativeInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0) throw inputError('KDS_BAD_OPTIONS', `${name} must be a non-negative integer, got ${v}`);
  return v;
}

function resolveOptions(opts: KdsOptions): ResolvedOptions {
  const timeoutMs = nonNegativeInt('timeoutMs', opts.timeoutMs, 10_000);
  if (timeoutMs === 0) throw inputError('KDS_BAD_OPTIONS', 'timeoutMs must be positive');
  return {
    baseUrl: normaliseBase(opts.baseUrl),
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    offline: opts.offline === true,
    fetch: opts.fetch ?? globalThis.fetch,
    timeoutMs,
    retries: nonNegativeInt('retries', opts.retries, 3),
    retryBaseDelayMs: nonNegativeInt('retryBaseDelayMs', opts.retryBaseDelayMs, 1000),
    maxRetryDelayMs: nonNegativeInt('maxRetryDelayMs', opts.maxRetryDelayMs, 60_000),
    now: opts.now ?? (() => new Date()),
    onEvent: opts.onEvent ?? (() => undefined),
  };
}

/** Retry-After as milliseconds: delta-seconds or an HTTP-date. Undefined if absent or unreadable. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - Date.now());
}

async function readLimited(res: Response, url: string): Promise<Buffer> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > MAX_BODY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw badResponse(url, `body of ${declared} bytes is too large`);
  }
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw badResponse(url, `body larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return Buffer.concat(chunks, total);
}

type Attempt =
  | { ok: true; body: Buffer }
  | { ok: false; retryable: false; error: CofferError }
  | { ok: false; retryable: true; status?: number; retryAfter?: number; why: string };

async function attempt(url: string, o: ResolvedOptions): Promise<Attempt> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), o.timeoutMs);
  try {
    const fetchImpl = o.fetch;
    const res = await fetchImpl(url, { signal: ac.signal, redirect: 'follow' });
    if (res.status === 200) return { ok: true, body: await readLimited(res, url) };
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404) {
      return {
        ok: false,
        retryable: false,
        error: verifyError('KDS_NOT_FOUND', `KDS has no such certificate: ${url} (HTTP 404)`, { url, status: 404 }),
      };
    }
    if (res.status === 429 || res.status >= 500) {
      const after = retryAfterMs(res.headers.get('retry-after'));
      return { ok: false, retryable: true, status: res.status, ...(after === undefined ? {} : { retryAfter: after }), why: `HTTP ${res.status}` };
    }
    return {
      ok: false,
      retryable: false,
      error: verifyError('KDS_HTTP_ERROR', `KDS answered HTTP ${res.status} for ${url}`, { url, status: res.status }),
    };
  } catch (err) {
    if (err instanceof CofferError) return { ok: false, retryable: false, error: err };
    if (ac.signal.aborted) return { ok: false, retryable: true, why: `no complete answer within ${o.timeoutMs} ms` };
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return { ok: false, retryable: true, why: `${err instanceof Error ? err.message : String(err)}${cause}` };
  } finally {
    clearTimeout(timer);
  }
}

async function download(url: string, o: ResolvedOptions): Promise<Buffer> {
  o.onEvent({ kind: 'fetch', url });
  for (let n = 0; ; n++) {
    const r = await attempt(url, o);
    if (r.ok) return r.body;
    if (!r.retryable) throw r.error;
    if (n >= o.retries) {
      const attempts = `${n + 1} attempt${n === 0 ? '' : 's'}`;
      if (r.status === 429) {
        throw verifyError('KDS_RATE_LIMITED', `KDS rate-limited ${url} (HTTP 429, ${attempts})`, { url, status: 429 });
      }
      throw verifyError('KDS_UNAVAILABLE', `could not fetch ${url} after ${attempts}: ${r.why}`, {
        url,
        ...(r.status === undefined ? {} : { status: r.status }),
      });
    }
    let wait: number;
    if (r.retryAfter !== undefined) {
      if (r.retryAfter > o.maxRetryDelayMs) {
        throw verifyError(
          'KDS_RATE_LIMITED',
          `KDS asked to wait ${Math.ceil(r.retryAfter / 1000)} s before retrying ${url} (${r.why}); try again later`,
          { url, retryAfterMs: r.retryAfter },
        );
      }
      wait = r.retryAfter;
    } else {
      // Exponential backoff with jitter so that parallel clients do not retry in step.
      const backoff = o.retryBaseDelayMs * 2 ** n;
      wait = Math.min(o.maxRetryDelayMs, backoff + Math.floor(Math.random() * (backoff / 4 + 1)));
    }
    o.onEvent({ kind: 'retry', url });
    if (wait > 0) await delay(wait);
  }
}

// ---------------------------------------------------------------------------------------
// Cache-or-fetch

interface Collateral {
  url: string;
  fileName: string;
  /** Throws KDS_BAD_RESPONSE if the bytes are not what the URL should serve. */
  validate: (body: Buffer) => void;
  /** For CRLs: the nextUpdate after which the bytes must no longer be used. */
  expires?: (body: Buffer) => Date;
}

function staleCrl(url: string, nextUpdate: Date, now: Date, where: string): CofferError {
  return verifyError(
    'KDS_CRL_STALE',
    `${where} CRL from ${url} expired at ${nextUpdate.toISOString()} (now ${now.toISOString()})`,
    { url, nextUpdate: nextUpdate.toISOString() },
  );
}

async function obtain(c: Collateral, o: ResolvedOptions): Promise<Buffer> {
  const path = join(o.cacheDir, c.fileName);
  const cached = await readCache(path);
  if (cached !== undefined) {
    let valid = true;
    try {
      c.validate(cached);
    } catch {
      valid = false;
    }
    if (!valid) {
      if (o.offline) {
        throw verifyError('KDS_CACHE_CORRUPT', `cached copy of ${c.url} at ${path} is damaged; fetch it again online`, {
          url: c.url,
          path,
        });
      }
    } else if (c.expires === undefined) {
      o.onEvent({ kind: 'cache-hit', url: c.url });
      return cached;
    } else {
      const next = c.expires(cached);
      const now = o.now();
      if (next.getTime() > now.getTime()) {
        o.onEvent({ kind: 'cache-hit', url: c.url });
        return cached;
      }
      if (o.offline) throw staleCrl(c.url, next, now, 'offline and the cached');
    }
  } else if (o.offline) {
    throw verifyError('KDS_OFFLINE_MISS', `offline and not in the KDS cache: ${c.url}`, { url: c.url, path });
  }

  const body = await download(c.url, o);
  c.validate(body);
  if (c.expires !== undefined) {
    const next = c.expires(body);
    const now = o.now();
    if (next.getTime() <= now.getTime()) throw staleCrl(c.url, next, now, 'the freshly fetched');
  }
  await writeCacheAtomically(o.cacheDir, c.fileName, body);
  return body;
}

// ---------------------------------------------------------------------------------------
// Public fetchers

/** The VCEK certificate (DER) for a chip at a TCB. Cached forever: a VCEK URL always names the same certificate. */
export async function fetchVcek(
  product: SnpProduct,
  chipId: Uint8Array,
  tcb: TcbParts,
  opts: KdsOptions = {},
): Promise<Buffer> {
  const o = resolveOptions(opts);
  const url = vcekUrl(product, chipId, tcb, o.baseUrl);
  return obtain(
    { url, fileName: cacheFileName(`vcek-${product}`, url, 'der'), validate: (b) => checkVcek(url, b) },
    o,
  );
}

/** The KDS cert_chain (PEM text): the ASK (vcek) or ASVK (vlek), then the ARK. Cached forever. */
export async function fetchCertChain(product: SnpProduct, kind: KeyKind, opts: KdsOptions = {}): Promise<string> {
  const o = resolveOptions(opts);
  const url = certChainUrl(product, kind, o.baseUrl);
  const body = await obtain(
    { url, fileName: cacheFileName(`${kind}-${product}-cert_chain`, url, 'pem'), validate: (b) => checkChain(url, b) },
    o,
  );
  return body.toString('latin1');
}

/**
 * The CRL (DER) for a product's ASK or ASVK. A cached copy is used only while its nextUpdate
 * is after `now()`; a stale one is fetched again, or, offline, is an error (KDS_CRL_STALE).
 */
export async function fetchCrl(product: SnpProduct, kind: KeyKind, opts: KdsOptions = {}): Promise<Buffer> {
  const o = resolveOptions(opts);
  const url = crlUrl(product, kind, o.baseUrl);
  return obtain(
    {
      url,
      fileName: cacheFileName(`${kind}-${product}-crl`, url, 'der'),
      validate: (b) => void crlNextUpdate(url, b),
      expires: (b) => crlNextUpdate(url, b),
    },
    o,
  );
}
