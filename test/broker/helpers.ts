// The simulated SEV-SNP attester and a broker started on real files in a temp dir: shared by the
// broker tests. The fake AMD (test/helpers/amd-ca.ts) signs reports through the real
// verification path; the broker trusts its ARK only through the in-process test option.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, type JWK } from 'jose';
import { parseCertificates } from '../../src/pki/certificate.js';
import type { ProductAnchor } from '../../src/pki/roots.js';
import { brokerPaths, canonicalBytes, createToken, startBroker, type RunningBroker, type Role, type StartOptions } from '../../src/broker/index.js';
import { buildReport, defaultChipId, defaultTcb, makeFakeAmd, signReport, type IssuedCert } from '../helpers/amd-ca.js';

export const MEASUREMENT_A = Buffer.alloc(48, 0xa1);
export const MEASUREMENT_B = Buffer.alloc(48, 0xb2);

const amd = makeFakeAmd('Milan');
let vcek: IssuedCert | undefined;
function theVcek(): IssuedCert {
  vcek ??= amd.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan') });
  return vcek;
}

export function fakeRoots(): ProductAnchor[] {
  return [{ cert: parseCertificates(amd.ark.der, 'fake ARK')[0] as NonNullable<ReturnType<typeof parseCertificates>[0]>, label: 'ARK-Milan (test)', product: 'Milan' }];
}

export function policyFor(id: string, measurement: Buffer): string {
  return `id: ${id}\nversion: 1\nevidence:\n  accepted: [sev-snp]\nmeasurements:\n  snp: ["${measurement.toString('hex')}"]\nfreshness:\n  nonce: required\n`;
}

/** A confidential VM as far as the broker can tell: a key pair that never leaves it, and reports signed by "AMD". */
export class Attester {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  constructor(
    readonly measurement: Buffer = MEASUREMENT_A,
    kind: 'ec' | 'rsa' = 'ec',
  ) {
    const kp = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-384' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = kp.privateKey;
    this.publicKey = kp.publicKey;
  }

  async jwk(): Promise<JWK> {
    return exportJWK(this.publicKey);
  }

  async runtimeData(nonce: string): Promise<Record<string, unknown>> {
    return { nonce, 'tee-pubkey': await this.jwk() };
  }

  /** Evidence whose REPORT_DATA is hash(JCS(boundTo)) zero-padded. */
  evidence(boundTo: unknown, hash: 'sha256' | 'sha384' | 'sha512' = 'sha384', fields: { policy?: bigint } = {}): Record<string, unknown> {
    const reportData = Buffer.alloc(64);
    createHash(hash).update(canonicalBytes(boundTo)).digest().copy(reportData);
    const v = theVcek();
    const report = signReport(buildReport({ product: 'Milan', measurement: this.measurement, reportData, ...fields }), v.key);
    return { report: report.toString('base64'), vcek: v.pem, cert_chain: amd.vcekChainPem };
  }

  async attestBody(nonce: string, hash: 'sha256' | 'sha384' | 'sha512' = 'sha384'): Promise<Record<string, unknown>> {
    const rd = await this.runtimeData(nonce);
    return { 'runtime-data': rd, 'tee-evidence': this.evidence(rd, hash) };
  }
}

/** Captures the broker's log lines. */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    cb();
  }
  text(): string {
    return this.lines.join('');
  }
}

export interface TestBroker {
  dir: string;
  running: RunningBroker;
  url: string;
  logs: LogSink;
  clock: { offsetMs: number };
  token(role: Role, scope?: string): Promise<string>;
  restart(): Promise<void>;
  close(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startTestBroker(dir = mkdtempSync(join(tmpdir(), 'coffer-broker-')), extra: Partial<StartOptions> = {}): Promise<TestBroker> {
  const logs = new LogSink();
  const clock = { offsetMs: 0 };
  const paths = brokerPaths({ home: dir });
  const start = () =>
    startBroker({
      paths,
      host: '127.0.0.1',
      port: 0,
      logStream: logs,
      logLevel: 'debug',
      rateLimit: { max: 100_000, timeWindowMs: 60_000 },
      nonceTtlSeconds: 60,
      testOnlySnpRoots: fakeRoots(),
      clock: () => new Date(Date.now() + clock.offsetMs),
      ...extra,
    });
  const tb: TestBroker = {
    dir,
    running: await start(),
    url: '',
    logs,
    clock,
    token: async (role, scope) => (await createToken(tb.running.broker.store, role, { at: Date.now(), ...(scope ? { scope } : {}) })).token,
    restart: async () => {
      await tb.running.close();
      tb.running = await start();
      tb.url = tb.running.url;
    },
    close: async () => tb.running.close(),
    cleanup: async () => {
      await tb.running.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  tb.url = tb.running.url;
  return tb;
}

export interface Reply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
  text: string;
}

export async function http(url: string, init: { method?: string; body?: unknown; cookie?: string; bearer?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.cookie) headers.cookie = `kbs-session-id=${init.cookie}`;
  if (init.bearer) headers.authorization = `Bearer ${init.bearer}`;
  const r = await fetch(url, { method: init.method ?? (init.body !== undefined ? 'POST' : 'GET'), headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) });
  const text = await r.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = {};
  }
  return { status: r.status, headers: r.headers, json, text };
}

export function sessionCookie(r: Reply): string {
  const m = /kbs-session-id=([^;]+)/.exec(r.headers.get('set-cookie') ?? '');
  if (!m?.[1]) throw new Error('no session cookie');
  return m[1];
}
