/**
 * The broker's attest-and-release round trip (auth → attest → resource, then the client decrypts
 * the JWE) against a real broker process on loopback, with N concurrent clients, on SQLite and, if
 * one answers on 127.0.0.1:5432, PostgreSQL (a throwaway database, dropped afterwards). Beside it,
 * in the same run, the cryptographic floor of one round trip on the broker's side, measured on one
 * core like the broker's event loop:
 *   SNP report signature (ECDSA P-384) + VCEK chain (VCEK←ASK, ASK←ARK: RSA-PSS SHA-384, 2048-bit
 *   in the test's fake AMD chain where AMD's are 4096-bit; the ARK is pinned by hash) + EAR token signature (ES384) + JWE to the tee-pubkey (ephemeral P-384 key,
 *   ECDH-ES, Concat KDF, A256KW, A256GCM) + the secret's data key unwrap (RFC 3394) and AES-GCM.
 * Printed as round trips per second, p50/p99 latency, and the ratio RT/s ÷ floor/s (1.0 would
 * mean the broker did nothing but the unavoidable cryptography), and the CPU the broker process
 * used per round trip beside the floor's milliseconds: the clients share the machine, and a wall
 * time far above the broker's CPU time is waiting (each SQLite commit is fsync'd, synchronous=FULL).
 *
 * The clients simulate the VM in this process (the fake AMD signs each report, the attester
 * decrypts each JWE): on real hardware the PSP signs the report. Their cost is printed too.
 *
 * Knobs: BENCH_BROKER_SECONDS (per concurrency level, default 3), BENCH_BROKER_CLIENTS
 * (default "1,8,32"), BENCH_BROKER_PG=0 to skip PostgreSQL.
 * Run alone: node --import tsx bench/broker.ts
 */
import { X509Certificate, createCipheriv, createDecipheriv, createHash, diffieHellman, generateKeyPairSync, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { aesKeyUnwrap, aesKeyWrap } from '../src/broker/index.js';
import { SNP_SIGNED_LENGTH } from '../src/evidence/snp/index.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie } from '../test/broker/helpers.js';
import { startChild, writeFakeArk, type ChildBroker } from '../test/broker/fixtures/children.js';

const SECONDS = Number(process.env.BENCH_BROKER_SECONDS ?? 3);
const CLIENTS = (process.env.BENCH_BROKER_CLIENTS ?? '1,8,32').split(',').map(Number).filter((n) => n > 0);
const FLOOR_MS = 300;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function opsPerSecond(fn: () => void, ms = FLOOR_MS): number {
  let n = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < limit) {
    fn();
    n++;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}

/** The broker-side cryptography of one round trip, on the same kinds of keys and data. */
function makeFloor(): () => void {
  const att = new Attester();
  const ev = att.evidence({ nonce: 'x', 'tee-pubkey': {} }) as { report: string; vcek: string; cert_chain: string };
  const report = Buffer.from(ev.report, 'base64');
  const vcek = new X509Certificate(ev.vcek);
  const pems = ev.cert_chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const [ask, ark] = pems.map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate];
  const signed = report.subarray(0, SNP_SIGNED_LENGTH);
  const sig = Buffer.alloc(96);
  for (let i = 0; i < 48; i++) {
    sig[47 - i] = report[0x2a0 + i] as number;
    sig[95 - i] = report[0x2e8 + i] as number;
  }
  if (!cryptoVerify('sha384', signed, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('floor: the report signature does not verify');
  if (!vcek.verify(ask.publicKey) || !ask.verify(ark.publicKey)) throw new Error('floor: the VCEK chain does not verify');
  const ear = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const earPayload = Buffer.alloc(900, 0x41);
  const teePub: KeyObject = att.publicKey;
  const kek = randomBytes(32);
  const dataKey = randomBytes(32);
  const wrapped = aesKeyWrap(kek, dataKey);
  const secretIv = randomBytes(12);
  const c0 = createCipheriv('aes-256-gcm', dataKey, secretIv);
  const secretCt = Buffer.concat([c0.update(Buffer.alloc(64, 7)), c0.final()]);
  const secretTag = c0.getAuthTag();
  return () => {
    // attest: evidence and chain, then the EAR token
    if (!cryptoVerify('sha384', signed, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('floor');
    if (!vcek.verify(ask.publicKey) || !ask.verify(ark.publicKey)) throw new Error('floor');
    cryptoSign('sha384', earPayload, { key: ear, dsaEncoding: 'ieee-p1363' });
    // resource: open the secret, encrypt it to the tee-pubkey
    const dk = aesKeyUnwrap(kek, wrapped);
    const d = createDecipheriv('aes-256-gcm', dk, secretIv);
    d.setAuthTag(secretTag);
    const plain = Buffer.concat([d.update(secretCt), d.final()]);
    const eph = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const z = diffieHellman({ privateKey: eph.privateKey, publicKey: teePub });
    const kw = createHash('sha256').update(Buffer.from([0, 0, 0, 1])).update(z).update('ECDH-ES+A256KW').digest();
    const cek = randomBytes(32);
    aesKeyWrap(kw, cek);
    const c = createCipheriv('aes-256-gcm', cek, randomBytes(12));
    c.update(plain);
    c.final();
  };
}

interface Run {
  clients: number;
  rtps: number;
  p50: number;
  p99: number;
  floor: number;
  errors: number;
  /** CPU the broker process used per round trip (ms): beside the floor's ms, what the broker spends; wall time above it is waiting (disk, database, the clients). */
  cpuMsPerRt: number;
}

/** User + system CPU of a process in ms, from /proc (Linux); NaN elsewhere. */
function cpuMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command name; clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

async function roundTrip(url: string, att: Attester, path: string): Promise<void> {
  const a = await http(`${url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  if (a.status !== 200) throw new Error(`auth ${a.status}`);
  const cookie = sessionCookie(a);
  const t = await http(`${url}/kbs/v0/attest`, { body: await att.attestBody(a.json.nonce as string), cookie });
  if (t.status !== 200) throw new Error(`attest ${t.status} ${t.text}`);
  const r = await http(`${url}/kbs/v0/resource/${path}`, { cookie });
  if (r.status !== 200) throw new Error(`resource ${r.status} ${r.text}`);
  await flattenedDecrypt(r.json as unknown as FlattenedJWE, att.privateKey);
}

async function load(url: string, clients: number, path: string, floor: () => void, pid?: number): Promise<Run> {
  const atts = Array.from({ length: clients }, () => new Attester(MEASUREMENT_A));
  for (const a of atts.slice(0, 2)) await roundTrip(url, a, path);
  const floors: number[] = [opsPerSecond(floor)];
  const lat: number[] = [];
  let errors = 0;
  const cpu0 = cpuMs(pid);
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(SECONDS * 1e9));
  await Promise.all(
    atts.map(async (att) => {
      while (process.hrtime.bigint() < end) {
        const s = process.hrtime.bigint();
        try {
          await roundTrip(url, att, path);
          lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        } catch {
          errors++;
        }
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuMsPerRt = (cpuMs(pid) - cpu0) / Math.max(1, lat.length);
  floors.push(opsPerSecond(floor));
  lat.sort((a, b) => a - b);
  return { clients, rtps: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), floor: median(floors), errors, cpuMsPerRt };
}

async function setUp(b: ChildBroker, home: string): Promise<string> {
  const admin = readFileSync(join(home, 'admin.token'), 'utf8').trim();
  const pol = await http(`${b.url}/admin/v0/policies/bench`, { method: 'PUT', bearer: admin, body: { policy: policyFor('bench', MEASUREMENT_A) } });
  if (pol.status !== 200) throw new Error(`policy: ${pol.text}`);
  const sec = await http(`${b.url}/admin/v0/secrets/bench/key/disk`, { method: 'PUT', bearer: admin, body: { value: randomBytes(64).toString('base64') } });
  if (sec.status !== 200) throw new Error(`secret: ${sec.text}`);
  return 'bench/key/disk';
}

async function benchStore(label: string, store: (home: string) => string, floor: () => void): Promise<boolean> {
  const home = mkdtempSync(join(tmpdir(), 'coffer-bench-broker-'));
  let child: ChildBroker | undefined;
  let ok = true;
  try {
    child = await startChild(home, store(home), writeFakeArk(home));
    const path = await setUp(child, home);
    for (const n of CLIENTS) {
      const r = await load(child.url, n, path, floor, child.proc.pid);
      ok &&= r.errors === 0 && r.rtps > 0;
      console.log(
        `broker RT ${label.padEnd(10)} ${String(n).padStart(2)} client${n === 1 ? ' ' : 's'}  ${r.rtps.toFixed(0).padStart(6)} RT/s  p50 ${r.p50.toFixed(1).padStart(6)} ms  p99 ${r.p99.toFixed(1).padStart(6)} ms   floor ${r.floor.toFixed(0).padStart(6)}/s   ratio ${(r.rtps / r.floor).toFixed(3)}   broker CPU ${r.cpuMsPerRt.toFixed(1)} ms/RT (floor ${(1000 / r.floor).toFixed(1)} ms)${r.errors ? `   ${r.errors} ERRORS` : ''}`,
      );
    }
  } finally {
    await child?.stop();
    rmSync(home, { recursive: true, force: true });
  }
  return ok;
}

export async function benchBroker(): Promise<boolean> {
  const floor = makeFloor();
  for (let i = 0; i < 30; i++) floor();
  const clientAtt = new Attester();
  const clientCost = opsPerSecond(() => void clientAtt.evidence({ nonce: randomBytes(8).toString('hex'), 'tee-pubkey': {} }));
  console.log('');
  console.log(`broker round trip = auth + attest + resource + JWE decrypt by the client; broker in its own process on 127.0.0.1, ${SECONDS} s per level`);
  console.log(`floor = broker-side crypto of one round trip on one core (P-384 verify, 2× RSA-PSS verify (2048-bit fake AMD chain), ES384 sign, P-384 keygen + ECDH, A256KW ×2, AES-GCM ×2)`);
  console.log(`simulated VM: the fake AMD signs ${clientCost.toFixed(0)} reports/s in the client process (the PSP's job on real hardware)`);
  let ok = await benchStore('sqlite', (home) => join(home, 'broker.db'), floor);
  if (process.env.BENCH_BROKER_PG !== '0') {
    let db: { url: string; drop(): Promise<void> } | undefined;
    try {
      const { freshDatabase } = await import('../test/broker/fixtures/pg.js');
      db = await freshDatabase('bench');
    } catch (e) {
      console.log(`broker RT postgres    skipped: ${(e as Error).message.split('\n')[0]}`);
    }
    if (db) {
      const url = db.url;
      try {
        ok = (await benchStore('postgres', () => url, floor)) && ok;
      } catch (e) {
        console.log(`broker RT postgres    FAILED: ${(e as Error).message.split('\n')[0]}`);
        ok = false;
      } finally {
        await db.drop();
      }
    }
  }
  return ok;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ok = await benchBroker();
  process.exitCode = ok ? 0 : 1;
}
