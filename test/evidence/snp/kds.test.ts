// KDS fetcher against a real local HTTP server (127.0.0.1 only) serving AMD's real certificates
// at KDS paths. No test reaches any non-loopback address: every fetch goes through loopbackFetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { CofferError } from '../../../src/errors.js';
import {
  certChainUrl,
  crlUrl,
  fetchCertChain,
  fetchCrl,
  fetchVcek,
  vcekUrl,
  type KdsEvent,
  type KdsOptions,
  type TcbParts,
} from '../../../src/evidence/snp/kds.js';

const VECTORS = fileURLToPath(new URL('../../../../shared/vectors/amd-snp/', import.meta.url));
const VCEK_DER = readFileSync(join(VECTORS, 'go-sev-guest/vcek.der'));
const MILAN_CHAIN = readFileSync(join(VECTORS, 'amd-certs/ask_ark_milan.pem'));
const MILAN_VLEK_CHAIN = readFileSync(join(VECTORS, 'amd-certs/ask_ark_milan_vlek.pem'));

const CHIP_HEX =
  '3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d';
const CHIP_ID = Buffer.from(CHIP_HEX, 'hex');
const TCB: TcbParts = { bl: 2, tee: 0, snp: 5, ucode: 68 };
const VCEK_PATH = `/vcek/v1/Milan/${CHIP_HEX}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`;

// ---------------------------------------------------------------------------------------
// A local KDS

type Reply = { status: number; headers?: Record<string, string>; body?: Buffer | string } | 'hang';

interface LocalKds {
  base: string;
  hits: (pathAndQuery: string) => number;
  totalHits: () => number;
  /** Replace what a path answers: replies are used in order, the last one repeats. */
  set: (pathAndQuery: string, replies: Reply[]) => void;
}

async function startKds(t: TestContext, routes: Record<string, Reply[]>): Promise<LocalKds> {
  const table = new Map<string, Reply[]>(Object.entries(routes));
  const hits = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const key = req.url ?? '';
    const n = hits.get(key) ?? 0;
    hits.set(key, n + 1);
    const replies = table.get(key);
    const reply = replies === undefined ? { status: 404, body: 'not found' } : replies[Math.min(n, replies.length - 1)];
    if (reply === undefined || reply === 'hang') return; // never answers; the client must time out
    res.writeHead(reply.status, reply.headers ?? {});
    res.end(reply.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    hits: (p) => hits.get(p) ?? 0,
    totalHits: () => [...hits.values()].reduce((a, b) => a + b, 0),
    set: (p, r) => void table.set(p, r),
  };
}

const requested: string[] = [];

/** The only fetch the tests use: refuses anything but 127.0.0.1. */
const loopbackFetch: typeof fetch = (input, init) => {
  const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  requested.push(href);
  if (new URL(href).hostname !== '127.0.0.1') {
    return Promise.reject(new Error(`test tried to reach a non-loopback address: ${href}`));
  }
  return fetch(input, init);
};

function tempCache(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-kds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'cache');
}

function opts(kds: LocalKds, cacheDir: string, more: KdsOptions = {}): KdsOptions {
  return { baseUrl: kds.base, cacheDir, fetch: loopbackFetch, retryBaseDelayMs: 1, timeoutMs: 5000, ...more };
}

function cacheFiles(cacheDir: string): string[] {
  try {
    return readdirSync(cacheDir);
  } catch {
    return [];
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, kind: 'input' | 'verify' = 'verify'): Promise<CofferError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CofferError, `expected CofferError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, kind);
  return caught;
}

function throwsWith(fn: () => unknown, code: string, kind: 'input' | 'verify' = 'input'): void {
  assert.throws(fn, (err: unknown) => err instanceof CofferError && err.code === code && err.kind === kind);
}

// ---------------------------------------------------------------------------------------
// CRLs made with the openssl CLI (the fetcher checks form and nextUpdate, not signatures)

const crlDir = mkdtempSync(join(tmpdir(), 'coffer-kds-crl-'));
process.on('exit', () => rmSync(crlDir, { recursive: true, force: true }));

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: crlDir, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed (install the Debian package "openssl"): ${String(err)}`);
  }
}

openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=Test SEV-Milan', '-days', '3650');
writeFileSync(join(crlDir, 'index.txt'), '');
writeFileSync(join(crlDir, 'crlnumber'), '01\n');
writeFileSync(join(crlDir, 'ca.cnf'), '[ca]\ndefault_ca = t\n[t]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha384\n');

/** A DER CRL; times as openssl wants them, YYYYMMDDHHMMSSZ. */
function makeCrl(lastUpdate: string, nextUpdate: string): Buffer {
  const name = `crl-${nextUpdate}`;
  openssl('ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-crl_lastupdate', lastUpdate, '-crl_nextupdate', nextUpdate, '-out', `${name}.pem`);
  openssl('crl', '-in', `${name}.pem`, '-outform', 'DER', '-out', `${name}.der`);
  return readFileSync(join(crlDir, `${name}.der`));
}

const CRL_JAN = makeCrl('20250101000000Z', '20250201000000Z');
const CRL_FEB = makeCrl('20250201000000Z', '20250301000000Z');
const IN_JAN = (): Date => new Date('2025-01-15T00:00:00Z');
const IN_FEB = (): Date => new Date('2025-02-15T00:00:00Z');

// ---------------------------------------------------------------------------------------
// URLs

test('vcekUrl gives the exact KDS URL of the real go-sev-guest VCEK', () => {
  assert.equal(
    vcekUrl('Milan', CHIP_ID, TCB),
    `https://kdsintf.amd.com/vcek/v1/Milan/${CHIP_HEX}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`,
  );
  assert.equal(vcekUrl('Milan', CHIP_ID, TCB, 'http://127.0.0.1:9/kds/'), `http://127.0.0.1:9/kds${VCEK_PATH}`);
  assert.equal(certChainUrl('Genoa', 'vlek'), 'https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain');
  assert.equal(crlUrl('Milan', 'vcek'), 'https://kdsintf.amd.com/vcek/v1/Milan/crl');
});

test('Turin: hwid is the first 8 bytes of the chip id and fmcSPL comes first', () => {
  assert.equal(
    vcekUrl('Turin', CHIP_ID, { fmc: 1, bl: 3, tee: 0, snp: 4, ucode: 71 }),
    'https://kdsintf.amd.com/vcek/v1/Turin/3ac3fe21e13fb099?fmcSPL=1&blSPL=3&teeSPL=0&snpSPL=4&ucodeSPL=71',
  );
  throwsWith(() => vcekUrl('Turin', CHIP_ID, TCB), 'KDS_BAD_TCB');
  // Only the part that goes into the URL has to identify the chip.
  const zeroPrefix = Buffer.concat([Buffer.alloc(8), CHIP_ID.subarray(8)]);
  throwsWith(() => vcekUrl('Turin', zeroPrefix, { ...TCB, fmc: 1 }), 'KDS_NO_CHIP_ID');
  assert.match(vcekUrl('Milan', zeroPrefix, TCB), /\/vcek\/v1\/Milan\/00000000000000000eb28a80/);
});

test('bad arguments are input errors', () => {
  throwsWith(() => vcekUrl('Rome' as 'Milan', CHIP_ID, TCB), 'KDS_BAD_PRODUCT');
  throwsWith(() => vcekUrl('Milan', CHIP_ID.subarray(0, 63), TCB), 'KDS_BAD_CHIP_ID');
  throwsWith(() => vcekUrl('Milan', CHIP_ID, { ...TCB, ucode: 256 }), 'KDS_BAD_TCB');
  throwsWith(() => vcekUrl('Milan', CHIP_ID, { ...TCB, snp: 1.5 }), 'KDS_BAD_TCB');
  throwsWith(() => certChainUrl('Milan', 'ask' as 'vcek'), 'KDS_BAD_KIND');
  throwsWith(() => vcekUrl('Milan', CHIP_ID, TCB, 'ftp://example.invalid'), 'KDS_BAD_OPTIONS');
});

test('an all-zero chip id (MASK_CHIP_ID or VLEK) is refused before any request', async (t) => {
  const kds = await startKds(t, {});
  throwsWith(() => vcekUrl('Milan', Buffer.alloc(64), TCB), 'KDS_NO_CHIP_ID');
  const err = await rejectsWith(fetchVcek('Milan', Buffer.alloc(64), TCB, opts(kds, tempCache(t))), 'KDS_NO_CHIP_ID', 'input');
  assert.match(err.message, /MASK_CHIP_ID|VLEK/);
  assert.equal(kds.totalHits(), 0);
});

// ---------------------------------------------------------------------------------------
// VCEK and chain: fetch, cache, offline

test('fetchVcek returns the real VCEK, then serves it from the cache', async (t) => {
  const kds = await startKds(t, { [VCEK_PATH]: [{ status: 200, body: VCEK_DER }] });
  const cacheDir = tempCache(t);
  const events: KdsEvent[] = [];
  const o = opts(kds, cacheDir, { onEvent: (e) => events.push(e) });

  const first = await fetchVcek('Milan', CHIP_ID, TCB, o);
  assert.ok(first.equals(VCEK_DER));
  assert.equal(kds.hits(VCEK_PATH), 1);

  const second = await fetchVcek('Milan', CHIP_ID, TCB, o);
  assert.ok(second.equals(VCEK_DER));
  assert.equal(kds.hits(VCEK_PATH), 1, 'second call must not reach the server');
  assert.deepEqual(
    events.map((e) => e.kind),
    ['fetch', 'cache-hit'],
  );
  assert.equal(events[0]?.url, `${kds.base}${VCEK_PATH}`);

  // One file per URL, no temp files left behind, private directory.
  const files = cacheFiles(cacheDir);
  assert.equal(files.length, 1);
  assert.ok(!files[0]?.endsWith('.tmp'));
  assert.equal(statSync(cacheDir).mode & 0o777, 0o700);
  assert.equal(statSync(join(cacheDir, files[0] ?? '')).mode & 0o077, 0);

  // Offline with a warm cache works and sends nothing.
  const offline = await fetchVcek('Milan', CHIP_ID, TCB, { ...o, offline: true });
  assert.ok(offline.equals(VCEK_DER));
  assert.equal(kds.totalHits(), 1);
});

test('offline with a cold cache fails with KDS_OFFLINE_MISS naming the URL', async (t) => {
  const kds = await startKds(t, { [VCEK_PATH]: [{ status: 200, body: VCEK_DER }] });
  const o = opts(kds, tempCache(t), { offline: true });
  const err = await rejectsWith(fetchVcek('Milan', CHIP_ID, TCB, o), 'KDS_OFFLINE_MISS');
  assert.ok(err.message.includes(`${kds.base}${VCEK_PATH}`), err.message);
  await rejectsWith(fetchCertChain('Milan', 'vcek', o), 'KDS_OFFLINE_MISS');
  await rejectsWith(fetchCrl('Milan', 'vcek', o), 'KDS_OFFLINE_MISS');
  assert.equal(kds.totalHits(), 0);
});

test('fetchCertChain returns the real Milan VCEK and VLEK chains and caches them', async (t) => {
  const kds = await startKds(t, {
    '/vcek/v1/Milan/cert_chain': [{ status: 200, body: MILAN_CHAIN }],
    '/vlek/v1/Milan/cert_chain': [{ status: 200, body: MILAN_VLEK_CHAIN }],
  });
  const cacheDir = tempCache(t);
  const o = opts(kds, cacheDir);
  assert.equal(await fetchCertChain('Milan', 'vcek', o), MILAN_CHAIN.toString('utf8'));
  assert.equal(await fetchCertChain('Milan', 'vlek', o), MILAN_VLEK_CHAIN.toString('utf8'));
  assert.equal(await fetchCertChain('Milan', 'vcek', o), MILAN_CHAIN.toString('utf8'));
  assert.equal(await fetchCertChain('Milan', 'vcek', { ...o, offline: true }), MILAN_CHAIN.toString('utf8'));
  assert.equal(kds.hits('/vcek/v1/Milan/cert_chain'), 1);
  assert.equal(kds.hits('/vlek/v1/Milan/cert_chain'), 1);
  assert.equal(cacheFiles(cacheDir).length, 2);
});

test('every real KDS chain in the vectors passes the structure check', async (t) => {
  const files: Array<[string, 'Milan' | 'Genoa' | 'Turin', 'vcek' | 'vlek']> = [
    ['ask_ark_milan.pem', 'Milan', 'vcek'],
    ['ask_ark_milan_vlek.pem', 'Milan', 'vlek'],
    ['ask_ark_genoa.pem', 'Genoa', 'vcek'],
    ['ask_ark_genoa_vlek.pem', 'Genoa', 'vlek'],
    ['ask_ark_turin_vcek.pem', 'Turin', 'vcek'],
    ['ask_ark_turin_vlek.pem', 'Turin', 'vlek'],
  ];
  const routes: Record<string, Reply[]> = {};
  for (const [file, product, kind] of files) {
    routes[`/${kind}/v1/${product}/cert_chain`] = [{ status: 200, body: readFileSync(join(VECTORS, 'amd-certs', file)) }];
  }
  const kds = await startKds(t, routes);
  const o = opts(kds, tempCache(t));
  for (const [file, product, kind] of files) {
    assert.equal(await fetchCertChain(product, kind, o), readFileSync(join(VECTORS, 'amd-certs', file), 'utf8'), file);
  }
  assert.equal(kds.totalHits(), files.length);
});

test('the cache is keyed by the whole URL: another base URL is another entry', async (t) => {
  const kds1 = await startKds(t, { '/vcek/v1/Milan/cert_chain': [{ status: 200, body: MILAN_CHAIN }] });
  const kds2 = await startKds(t, { '/vcek/v1/Milan/cert_chain': [{ status: 200, body: MILAN_CHAIN }] });
  const cacheDir = tempCache(t);
  await fetchCertChain('Milan', 'vcek', opts(kds1, cacheDir));
  await fetchCertChain('Milan', 'vcek', opts(kds2, cacheDir));
  assert.equal(kds1.totalHits() + kds2.totalHits(), 2);
  assert.equal(cacheFiles(cacheDir).length, 2);
});

// ---------------------------------------------------------------------------------------
// Retries and HTTP errors

test('429 with Retry-After: 0 is retried, then succeeds', async (t) => {
  const kds = await startKds(t, {
    [VCEK_PATH]: [{ status: 429, headers: { 'retry-after': '0' }, body: 'slow down' }, { status: 200, body: VCEK_DER }],
  });
  const events: string[] = [];
  const o = opts(kds, tempCache(t), { retryBaseDelayMs: 60_000, onEvent: (e) => events.push(e.kind) });
  const started = Date.now();
  const got = await fetchVcek('Milan', CHIP_ID, TCB, o);
  assert.ok(got.equals(VCEK_DER));
  assert.equal(kds.hits(VCEK_PATH), 2);
  assert.deepEqual(events, ['fetch', 'retry']);
  assert.ok(Date.now() - started < 10_000, 'Retry-After: 0 must be honoured instead of the backoff');
});

test('5xx is retried with backoff; when retries run out the error is KDS_UNAVAILABLE', async (t) => {
  const kds = await startKds(t, {
    '/vcek/v1/Milan/cert_chain': [{ status: 503 }, { status: 502 }, { status: 200, body: MILAN_CHAIN }],
    '/vcek/v1/Genoa/cert_chain': [{ status: 500 }],
  });
  const o = opts(kds, tempCache(t));
  assert.equal(await fetchCertChain('Milan', 'vcek', o), MILAN_CHAIN.toString('utf8'));
  assert.equal(kds.hits('/vcek/v1/Milan/cert_chain'), 3);

  const err = await rejectsWith(fetchCertChain('Genoa', 'vcek', { ...o, retries: 2 }), 'KDS_UNAVAILABLE');
  assert.match(err.message, /HTTP 500/);
  assert.equal(kds.hits('/vcek/v1/Genoa/cert_chain'), 3, 'one attempt plus two retries');
});

test('persistent 429 ends in KDS_RATE_LIMITED; a Retry-After beyond the limit is not waited for', async (t) => {
  const kds = await startKds(t, {
    '/vcek/v1/Milan/crl': [{ status: 429, headers: { 'retry-after': '0' } }],
    '/vcek/v1/Genoa/crl': [{ status: 429, headers: { 'retry-after': '3600' } }],
  });
  const o = opts(kds, tempCache(t), { retries: 1 });
  await rejectsWith(fetchCrl('Milan', 'vcek', o), 'KDS_RATE_LIMITED');
  assert.equal(kds.hits('/vcek/v1/Milan/crl'), 2);
  const started = Date.now();
  const err = await rejectsWith(fetchCrl('Genoa', 'vcek', { ...o, retries: 3 }), 'KDS_RATE_LIMITED');
  assert.match(err.message, /3600 s/);
  assert.equal(kds.hits('/vcek/v1/Genoa/crl'), 1);
  assert.ok(Date.now() - started < 5000);
});

test('404 fails with KDS_NOT_FOUND without retrying', async (t) => {
  const kds = await startKds(t, { [VCEK_PATH]: [{ status: 404, body: 'no such VCEK' }] });
  const cacheDir = tempCache(t);
  const err = await rejectsWith(fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir)), 'KDS_NOT_FOUND');
  assert.ok(err.message.includes(VCEK_PATH));
  assert.equal(kds.hits(VCEK_PATH), 1);
  assert.deepEqual(cacheFiles(cacheDir), []);
});

test('other 4xx fail with KDS_HTTP_ERROR without retrying', async (t) => {
  const kds = await startKds(t, { '/vcek/v1/Milan/cert_chain': [{ status: 403 }] });
  await rejectsWith(fetchCertChain('Milan', 'vcek', opts(kds, tempCache(t))), 'KDS_HTTP_ERROR');
  assert.equal(kds.totalHits(), 1);
});

test('a server that never answers times out and is retried, bounded', async (t) => {
  const kds = await startKds(t, { [VCEK_PATH]: ['hang'] });
  const err = await rejectsWith(
    fetchVcek('Milan', CHIP_ID, TCB, opts(kds, tempCache(t), { timeoutMs: 100, retries: 1 })),
    'KDS_UNAVAILABLE',
  );
  assert.match(err.message, /within 100 ms/);
  assert.equal(kds.hits(VCEK_PATH), 2);
});

test('connection refused is a network error, retried, then KDS_UNAVAILABLE', async (t) => {
  const kds = await startKds(t, {});
  // A port that was just free on the loopback interface.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const events: string[] = [];
  const o = { ...opts(kds, tempCache(t)), baseUrl: `http://127.0.0.1:${port}`, retries: 2, onEvent: (e: KdsEvent) => events.push(e.kind) };
  await rejectsWith(fetchCertChain('Milan', 'vcek', o), 'KDS_UNAVAILABLE');
  assert.deepEqual(events, ['fetch', 'retry', 'retry']);
});

// ---------------------------------------------------------------------------------------
// Garbage is refused and never cached

test('garbage VCEK bodies are refused and not cached; a good answer later is', async (t) => {
  const truncated = VCEK_DER.subarray(0, VCEK_DER.length - 1);
  const trailing = Buffer.concat([VCEK_DER, Buffer.from([0])]);
  const pem = `-----BEGIN CERTIFICATE-----\n${VCEK_DER.toString('base64')}\n-----END CERTIFICATE-----\n`;
  const notACert = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]);
  const kds = await startKds(t, {});
  const cacheDir = tempCache(t);
  for (const body of [Buffer.from('<html>maintenance</html>'), truncated, trailing, Buffer.from(pem), notACert, Buffer.alloc(0)]) {
    kds.set(VCEK_PATH, [{ status: 200, body }]);
    await rejectsWith(fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir)), 'KDS_BAD_RESPONSE');
    assert.deepEqual(cacheFiles(cacheDir), [], 'nothing may be cached');
  }
  assert.equal(kds.hits(VCEK_PATH), 6, 'a bad body is not retried');
  kds.set(VCEK_PATH, [{ status: 200, body: VCEK_DER }]);
  assert.ok((await fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir))).equals(VCEK_DER));
  assert.equal(cacheFiles(cacheDir).length, 1);
});

test('chains that are not exactly ASK/ASVK then ARK are refused', async (t) => {
  const text = MILAN_CHAIN.toString('utf8');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  assert.equal(blocks.length, 2);
  const [ask, ark] = blocks as [string, string];
  const kds = await startKds(t, {});
  const cacheDir = tempCache(t);
  const bad = [
    ask, // one certificate
    `${ask}\n${ark}\n${ark}\n`, // three
    `${ark}\n${ask}\n`, // wrong order
    `${text}garbage\n`, // trailing text
    `${ask}\n${ark.split('\n').filter((_, i) => i !== 5).join('\n')}\n`, // a base64 line lost: DER truncated
    VCEK_DER, // binary
  ];
  for (const body of bad) {
    kds.set('/vcek/v1/Milan/cert_chain', [{ status: 200, body }]);
    await rejectsWith(fetchCertChain('Milan', 'vcek', opts(kds, cacheDir)), 'KDS_BAD_RESPONSE');
  }
  assert.deepEqual(cacheFiles(cacheDir), []);
});

test('oversized bodies are refused', async (t) => {
  const kds = await startKds(t, { '/vcek/v1/Milan/crl': [{ status: 200, body: Buffer.alloc(2 << 20, 0x30) }] });
  const cacheDir = tempCache(t);
  const err = await rejectsWith(fetchCrl('Milan', 'vcek', opts(kds, cacheDir, { now: IN_JAN })), 'KDS_BAD_RESPONSE');
  assert.match(err.message, /too large|larger than/);
  assert.deepEqual(cacheFiles(cacheDir), []);
});

test('a damaged cache entry is fetched again online and reported offline', async (t) => {
  const kds = await startKds(t, { [VCEK_PATH]: [{ status: 200, body: VCEK_DER }] });
  const cacheDir = tempCache(t);
  await fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir));
  const [file] = cacheFiles(cacheDir);
  assert.ok(file);
  writeFileSync(join(cacheDir, file), VCEK_DER.subarray(0, 100));
  await rejectsWith(fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir, { offline: true })), 'KDS_CACHE_CORRUPT');
  assert.ok((await fetchVcek('Milan', CHIP_ID, TCB, opts(kds, cacheDir))).equals(VCEK_DER));
  assert.equal(kds.hits(VCEK_PATH), 2);
  assert.ok(readFileSync(join(cacheDir, file)).equals(VCEK_DER), 'the damaged entry is replaced');
});

// ---------------------------------------------------------------------------------------
// CRLs

test('CRL: fetched, validated, cached while fresh', async (t) => {
  const kds = await startKds(t, { '/vcek/v1/Milan/crl': [{ status: 200, body: CRL_JAN }] });
  const cacheDir = tempCache(t);
  const o = opts(kds, cacheDir, { now: IN_JAN });
  assert.ok((await fetchCrl('Milan', 'vcek', o)).equals(CRL_JAN));
  assert.ok((await fetchCrl('Milan', 'vcek', o)).equals(CRL_JAN));
  assert.ok((await fetchCrl('Milan', 'vcek', { ...o, offline: true })).equals(CRL_JAN));
  assert.equal(kds.hits('/vcek/v1/Milan/crl'), 1);
});

test('CRL: a stale cached CRL is fetched again online, and is KDS_CRL_STALE offline', async (t) => {
  const kds = await startKds(t, { '/vlek/v1/Milan/crl': [{ status: 200, body: CRL_JAN }, { status: 200, body: CRL_FEB }] });
  const cacheDir = tempCache(t);
  assert.ok((await fetchCrl('Milan', 'vlek', opts(kds, cacheDir, { now: IN_JAN }))).equals(CRL_JAN));

  const err = await rejectsWith(fetchCrl('Milan', 'vlek', opts(kds, cacheDir, { now: IN_FEB, offline: true })), 'KDS_CRL_STALE');
  assert.match(err.message, /2025-02-01T00:00:00\.000Z/);
  assert.equal(kds.hits('/vlek/v1/Milan/crl'), 1);

  assert.ok((await fetchCrl('Milan', 'vlek', opts(kds, cacheDir, { now: IN_FEB }))).equals(CRL_FEB));
  assert.equal(kds.hits('/vlek/v1/Milan/crl'), 2);
  // The fresh CRL replaced the stale one.
  assert.ok((await fetchCrl('Milan', 'vlek', opts(kds, cacheDir, { now: IN_FEB, offline: true }))).equals(CRL_FEB));
  assert.equal(cacheFiles(cacheDir).length, 1);
});

test('CRL: a freshly fetched CRL that is already stale is refused and not cached', async (t) => {
  const kds = await startKds(t, { '/vcek/v1/Genoa/crl': [{ status: 200, body: CRL_JAN }] });
  const cacheDir = tempCache(t);
  await rejectsWith(fetchCrl('Genoa', 'vcek', opts(kds, cacheDir, { now: IN_FEB })), 'KDS_CRL_STALE');
  assert.deepEqual(cacheFiles(cacheDir), []);
});

test('CRL: garbage is refused and not cached', async (t) => {
  const kds = await startKds(t, {});
  const cacheDir = tempCache(t);
  const bad = [
    Buffer.from('not a crl'),
    Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), // a SEQUENCE, but not a CertificateList
    CRL_JAN.subarray(0, CRL_JAN.length - 2),
    Buffer.concat([CRL_JAN, Buffer.from([0x00])]),
    VCEK_DER, // a certificate is not a CRL
  ];
  for (const body of bad) {
    kds.set('/vcek/v1/Milan/crl', [{ status: 200, body }]);
    await rejectsWith(fetchCrl('Milan', 'vcek', opts(kds, cacheDir, { now: IN_JAN })), 'KDS_BAD_RESPONSE');
  }
  assert.deepEqual(cacheFiles(cacheDir), []);
});

test('every request in this file went to 127.0.0.1', () => {
  assert.ok(requested.length > 0);
  for (const url of requested) assert.equal(new URL(url).hostname, '127.0.0.1', url);
});
