// The KBS protocol with simulated Intel TDX: the test makes an Intel-like PKI with openssl (a root,
// an "Intel SGX PCK Platform CA", a PCK certificate carrying the SGX extension with FMSPC and TCB),
// and signs DCAP v4 quotes the way a TD's quoting enclave does (attestation key signs header and
// TD report, the PCK key signs the QE report that binds the attestation key). The broker trusts
// the test root only through the in-process option testOnlyTdxRoots; the same quotes are refused
// by a broker that trusts the pinned Intel root. REPORT_DATA binds the nonce and tee-pubkey as for
// SEV-SNP. Refusals: wrong MRTD, report data of another runtime-data, a flipped signed byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { generateEarSigningKey } from '../../src/appraisal/index.js';
import { Broker, FileKekProvider, PROBLEM_BASE, SqliteStore, buildServer, canonicalBytes, createToken, type AuditRecord } from '../../src/broker/index.js';
import { INTEL_QE_SIGNERS, INTEL_QE_VENDOR_ID } from '../../src/evidence/dcap/verify.js';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { Attester, LogSink, http, sessionCookie, type Reply } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-broker-tdx-'));
const MRTD_A = Buffer.alloc(48, 0xd1);
const MRTD_B = Buffer.alloc(48, 0xd2);
const MRCONFIGID = Buffer.alloc(48, 0x5c);
const SECRET = Buffer.from(`tdx-released-${'9e8d'.repeat(8)}`);

// ----- a stand-in for Intel's PCK PKI (openssl), and a quoting enclave (node:crypto)

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
function oid(s: string): Buffer {
  const parts = s.split('.').map(Number);
  const out = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const bytes = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return der(0x06, Buffer.from(out));
}
const seq = (...xs: Buffer[]) => der(0x30, Buffer.concat(xs));
const int = (n: number) => der(0x02, n < 0x80 ? Buffer.from([n]) : Buffer.from([0, n]));
const octets = (b: Buffer) => der(0x04, b);
const SGX = '1.2.840.113741.1.13.1';

function sgxExtension(): Buffer {
  const tcb = [...Array.from({ length: 16 }, (_, i) => seq(oid(`${SGX}.2.${i + 1}`), int(3))), seq(oid(`${SGX}.2.17`), int(11)), seq(oid(`${SGX}.2.18`), octets(Buffer.alloc(16, 3)))];
  return seq(
    seq(oid(`${SGX}.1`), octets(Buffer.alloc(16, 0x11))),
    seq(oid(`${SGX}.2`), seq(...tcb)),
    seq(oid(`${SGX}.3`), octets(Buffer.from([0, 0]))),
    seq(oid(`${SGX}.4`), octets(Buffer.from('90c06f000000', 'hex'))),
    seq(oid(`${SGX}.5`), der(0x0a, Buffer.from([0]))),
  );
}

interface FakeIntel {
  root: Certificate;
  chainPem: string;
  pckKey: KeyObject;
}

function makeFakeIntel(name: string): FakeIntel {
  const d = join(dir, name);
  execFileSync('mkdir', ['-p', d]);
  const sh = (args: string[]) => execFileSync('openssl', args, { cwd: d, stdio: 'pipe' });
  for (const k of ['root', 'ca', 'pck']) sh(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${k}.key`]);
  sh(['req', '-x509', '-new', '-key', 'root.key', '-subj', '/CN=Test Intel SGX Root CA/O=Coffer tests', '-days', '2', '-out', 'root.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeFileSync(join(d, 'ca.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  sh(['req', '-new', '-key', 'ca.key', '-subj', '/CN=Intel SGX PCK Platform CA/O=Coffer tests', '-out', 'ca.csr']);
  sh(['x509', '-req', '-in', 'ca.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '2', '-extfile', 'ca.ext', '-out', 'ca.pem']);
  const ext = sgxExtension().toString('hex').match(/../g)?.join(':') ?? '';
  writeFileSync(join(d, 'pck.ext'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n${SGX}=DER:${ext}\n`);
  sh(['req', '-new', '-key', 'pck.key', '-subj', '/CN=Intel SGX PCK Certificate/O=Coffer tests', '-out', 'pck.csr']);
  sh(['x509', '-req', '-in', 'pck.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-days', '1', '-extfile', 'pck.ext', '-out', 'pck.pem']);
  const pem = (f: string) => readFileSync(join(d, f), 'utf8');
  return { root: parseCertificates(pem('root.pem'), 'test root')[0] as Certificate, chainPem: `${pem('pck.pem')}${pem('ca.pem')}${pem('root.pem')}`, pckKey: createPrivateKey(pem('pck.key')) };
}

const es256 = (data: Buffer, key: KeyObject) => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

/** A DCAP v4 TDX quote with this MRTD, MRCONFIGID and REPORT_DATA, certified through `intel`. */
function tdxQuote(intel: FakeIntel, mrtd: Buffer, reportData: Buffer, tdAttributes: Buffer = Buffer.alloc(8)): Buffer {
  const header = Buffer.concat([u16(4), u16(2), u32(0x81), u16(0), u16(0), Buffer.from(INTEL_QE_VENDOR_ID, 'hex'), Buffer.alloc(20)]);
  const body = Buffer.concat([Buffer.alloc(16, 1), Buffer.alloc(48, 0xee), Buffer.alloc(48), Buffer.alloc(8), tdAttributes, Buffer.alloc(8, 0xe7), mrtd, MRCONFIGID, Buffer.alloc(48), Buffer.alloc(48), Buffer.alloc(4 * 48, 0x33), reportData]);
  assert.equal(body.length, 584);
  const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = ak.publicKey.export({ format: 'jwk' });
  const akRaw = Buffer.concat([Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
  const signature = es256(Buffer.concat([header, body]), ak.privateKey);
  const qeAuth = Buffer.alloc(32, 0xa5);
  const qeReportData = Buffer.concat([createHash('sha256').update(akRaw).update(qeAuth).digest(), Buffer.alloc(32)]);
  const qeReport = Buffer.concat([
    Buffer.alloc(16, 2), u32(0), Buffer.alloc(12), Buffer.alloc(16), Buffer.alloc(16), Buffer.alloc(32, 0x9a), Buffer.alloc(32),
    INTEL_QE_SIGNERS.tdx.mrSigner, Buffer.alloc(32), Buffer.alloc(64), u16(INTEL_QE_SIGNERS.tdx.isvProdId), u16(4), u16(0), Buffer.alloc(42), Buffer.alloc(16), qeReportData,
  ]);
  assert.equal(qeReport.length, 384);
  const chain = Buffer.from(intel.chainPem, 'latin1');
  const inner = Buffer.concat([u16(5), u32(chain.length), chain]);
  const qeCert = Buffer.concat([qeReport, es256(qeReport, intel.pckKey), u16(qeAuth.length), qeAuth, inner]);
  const sigData = Buffer.concat([signature, akRaw, u16(6), u32(qeCert.length), qeCert]);
  return Buffer.concat([header, body, u32(sigData.length), sigData]);
}

// ----- a broker built in-process (testOnlyTdxRoots is an in-process option only)

interface Running {
  url: string;
  broker: Broker;
  app: FastifyInstance;
  admin: string;
}

async function startBroker(name: string, tdxRoots?: Certificate[]): Promise<Running> {
  const home = join(dir, name);
  execFileSync('mkdir', ['-p', home]);
  const store = await SqliteStore.open(join(home, 'broker.db'));
  const broker = new Broker({ store, kek: FileKekProvider.open(join(home, 'kek.key'), { create: true }), earKey: generateEarSigningKey().privateKey, ...(tdxRoots ? { testOnlyTdxRoots: tdxRoots.map((cert) => ({ cert, label: 'test Intel root' })) } : {}) });
  const app = await buildServer({ broker, logStream: new LogSink(), rateLimit: { max: 100_000, timeWindowMs: 60_000 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, broker, app, admin: (await createToken(store, 'admin', { at: Date.now() })).token };
}

let intel: FakeIntel;
let other: FakeIntel;
let b: Running;
let prod: Running;

function reportDataOf(rd: unknown): Buffer {
  const out = Buffer.alloc(64);
  createHash('sha384').update(canonicalBytes(rd)).digest().copy(out);
  return out;
}

function assertProblem(r: Reply, status: number, type: string, code?: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
  if (code) assert.equal(r.json.code, code, r.text);
}

async function lastDenial(run: Running, action: string, problem: string): Promise<AuditRecord> {
  const last = (await run.broker.store.queryAudit({ action, verdict: 'deny', limit: 1000 })).filter((r) => r.problem === problem).at(-1);
  assert.ok(last, `no ${action} deny record with problem ${problem}`);
  return last;
}

/** auth (tee tdx) → quote → attest, against `run`. */
async function attest(run: Running, att: Attester, o: { mrtd?: Buffer; intel?: FakeIntel; bind?: (rd: Buffer) => Buffer; tamper?: (q: Buffer) => void; tdAttributes?: Buffer } = {}): Promise<{ cookie: string; reply: Reply }> {
  const auth = await http(`${run.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'tdx', 'extra-params': '' } });
  assert.equal(auth.status, 200, auth.text);
  const cookie = sessionCookie(auth);
  const rd = await att.runtimeData(auth.json.nonce as string);
  const want = reportDataOf(rd);
  const q = tdxQuote(o.intel ?? intel, o.mrtd ?? MRTD_A, o.bind ? o.bind(want) : want, o.tdAttributes);
  o.tamper?.(q);
  return { cookie, reply: await http(`${run.url}/kbs/v0/attest`, { body: { 'runtime-data': rd, 'tee-evidence': { quote: q.toString('base64') } }, cookie }) };
}

before(async () => {
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) assert.fail('the TDX broker test needs openssl: run `apt-get install openssl`');
  intel = makeFakeIntel('intel');
  other = makeFakeIntel('other');
  b = await startBroker('broker', [intel.root]);
  prod = await startBroker('prod');
  const policy = `id: tdx-release\nversion: 1\nevidence:\n  accepted: [tdx]\nmeasurements:\n  tdx: ["${MRTD_A.toString('hex')}"]\nfreshness:\n  nonce: required\n`;
  assert.equal((await http(`${b.url}/admin/v0/policies/tdx-team`, { method: 'PUT', bearer: b.admin, body: { policy } })).status, 200);
  assert.equal((await http(`${b.url}/admin/v0/secrets/tdx-team/key/disk`, { method: 'PUT', bearer: b.admin, body: { value: SECRET.toString('base64') } })).status, 200);
});

after(async () => {
  for (const r of [b, prod]) {
    if (!r) continue;
    await r.app.close();
    await r.broker.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

test('TDX quote certified by the (test) Intel PCK chain, REPORT_DATA bound → token → secret released by MRTD → decrypted here', async () => {
  const att = new Attester();
  const { cookie, reply } = await attest(b, att);
  assert.equal(reply.status, 200, reply.text);
  const res = await http(`${b.url}/kbs/v0/resource/tdx-team/key/disk`, { cookie });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(res.json as unknown as FlattenedJWE, att.privateKey)).plaintext), SECRET);
  assert.equal((await b.broker.store.queryAudit({ action: 'kbs.resource', verdict: 'allow' })).at(-1)?.rule, 'tdx-release@1');
});

test('refused: another MRTD → policy-denied (measurement); REPORT_DATA of another runtime-data → evidence-unbound; audited', async () => {
  const att = new Attester();
  const { cookie, reply } = await attest(b, att, { mrtd: MRTD_B });
  assert.equal(reply.status, 200, reply.text);
  const res = await http(`${b.url}/kbs/v0/resource/tdx-team/key/disk`, { cookie });
  assertProblem(res, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(res.json.rule, 'measurement');
  assert.equal((await lastDenial(b, 'kbs.resource', 'policy-denied')).rule, 'measurement');
  const unbound = await attest(b, att, { bind: (rd) => Buffer.from(rd.map((x, i) => (i === 3 ? x ^ 0x80 : x))) });
  assertProblem(unbound.reply, 403, 'evidence-unbound', 'KBS_EVIDENCE_UNBOUND');
  assert.equal((await lastDenial(b, 'kbs.attest', 'evidence-unbound')).rule, 'freshness.binding');
});

test('refused: a flipped byte in the signed TD report; a PCK chain to another root; the pinned Intel root does not know the test root', async () => {
  const att = new Attester();
  const flipped = await attest(b, att, { tamper: (q) => void (q[48 + 200] = (q[48 + 200] as number) ^ 1) });
  assertProblem(flipped.reply, 403, 'evidence-invalid', 'DCAP_QUOTE_BAD_SIGNATURE');
  assert.match((await lastDenial(b, 'kbs.attest', 'evidence-invalid')).detail ?? '', /DCAP_QUOTE_BAD_SIGNATURE/);
  const foreign = await attest(b, att, { intel: other });
  assertProblem(foreign.reply, 403, 'evidence-invalid');
  assert.match(foreign.reply.json.code as string, /^PKI_/, foreign.reply.text);
  const production = await attest(prod, att);
  assertProblem(production.reply, 403, 'evidence-invalid');
  assert.match(production.reply.json.code as string, /^PKI_/, production.reply.text);
  await lastDenial(prod, 'kbs.attest', 'evidence-invalid');
});

test('a TDX volume identity (MRTD + MRCONFIGID) releases its key to that TD only', async () => {
  const provisioner = (await createToken(b.broker.store, 'provisioner', { at: Date.now() })).token;
  const v = await http(`${b.url}/admin/v0/volumes`, { method: 'POST', bearer: provisioner, body: { id: 'td-1', identity: { tdx: { mrtd: [MRTD_A.toString('hex')], mrConfigId: [MRCONFIGID.toString('hex')] } } } });
  assert.equal(v.status, 201, v.text);
  const att = new Attester();
  const ok = await attest(b, att);
  const key = await http(`${b.url}/kbs/v0/resource/volumes/td-1/key`, { cookie: ok.cookie });
  assert.equal(key.status, 200, key.text);
  assert.equal(Buffer.from((await flattenedDecrypt(key.json as unknown as FlattenedJWE, att.privateKey)).plaintext).length, 32);
  const wrong = await attest(b, att, { mrtd: MRTD_B });
  assertProblem(await http(`${b.url}/kbs/v0/resource/volumes/td-1/key`, { cookie: wrong.cookie }), 403, 'policy-denied');
});

test('refused at attestation: a migratable TD (TD_ATTRIBUTES.MIGRATABLE, bit 29) and a debug TD; audited with the rule', async () => {
  const att = new Attester();
  const attrs = (bit: number) => {
    const a = Buffer.alloc(8);
    a.writeBigUInt64LE(1n << BigInt(bit));
    return a;
  };
  const migratable = await attest(b, att, { tdAttributes: attrs(29) });
  assertProblem(migratable.reply, 403, 'attestation-denied', 'KBS_ATTESTATION_DENIED');
  assert.equal(migratable.reply.json.rule, 'migration');
  assert.equal((await lastDenial(b, 'kbs.attest', 'attestation-denied')).rule, 'migration');
  const debug = await attest(b, att, { tdAttributes: attrs(0) });
  assertProblem(debug.reply, 403, 'attestation-denied', 'KBS_ATTESTATION_DENIED');
  assert.equal(debug.reply.json.rule, 'debug');
  // Twin: another attribute (PKS, bit 30) is neither.
  assert.equal((await attest(b, att, { tdAttributes: attrs(30) })).reply.status, 200);
});

test('a tcb: minimum for tdx compares the PCK TCB (it passed vacuously before): below → policy-denied (tcb.minimum); at it → released', async () => {
  const pol = (sgx1: number) => `id: tdx-tcb\nversion: 1\nmeasurements:\n  tdx: ["${MRTD_A.toString('hex')}"]\ntcb:\n  tdx:\n    "90c06f000000": { sgx1: ${sgx1}, pceSvn: 11 }\n`;
  for (const [prefix, sgx1] of [['tdx-tcb-high', 4], ['tdx-tcb-ok', 3]] as const) {
    assert.equal((await http(`${b.url}/admin/v0/policies/${prefix}`, { method: 'PUT', bearer: b.admin, body: { policy: pol(sgx1) } })).status, 200);
    assert.equal((await http(`${b.url}/admin/v0/secrets/${prefix}/key/disk`, { method: 'PUT', bearer: b.admin, body: { value: SECRET.toString('base64') } })).status, 200);
  }
  const att = new Attester();
  const { cookie } = await attest(b, att);
  // The test PCK certifies every SGX TCB component at 3 and PCESVN 11 for FMSPC 90c06f000000.
  const low = await http(`${b.url}/kbs/v0/resource/tdx-tcb-high/key/disk`, { cookie });
  assertProblem(low, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(low.json.rule, 'tcb.minimum');
  assert.match(low.json.detail as string, /pck sgx1 3 < 4/);
  assert.equal((await lastDenial(b, 'kbs.resource', 'policy-denied')).rule, 'tcb.minimum');
  assert.equal((await http(`${b.url}/kbs/v0/resource/tdx-tcb-ok/key/disk`, { cookie })).status, 200);
});
