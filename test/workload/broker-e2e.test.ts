// The workload identity end to end: a simulated SEV-SNP guest launched with HOST_DATA = the
// manifest's SHA-256 identity attests to the real broker (fastify on 127.0.0.1:0, SQLite in a temp
// dir); a release policy that names the workload digest releases the secret to it, and refuses
// it to a guest whose manifest differs by one byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, flattenedDecrypt, type FlattenedJWE } from 'jose';
import { canonicalBytes } from '../../src/broker/index.js';
import { parseCertificates } from '../../src/pki/certificate.js';
import { parseManifest, workloadIdentity } from '../../src/workload/index.js';
import { buildReport, defaultChipId, defaultTcb, makeFakeAmd, signReport } from '../helpers/amd-ca.js';
import { http, sessionCookie, startTestBroker, type TestBroker } from '../broker/helpers.js';

const amd = makeFakeAmd('Milan');
const vcek = amd.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan') });
const MEASUREMENT = Buffer.alloc(48, 0x5c);
const SECRET = Buffer.from(`db-key-${'9e'.repeat(16)}`);
const manifestText = readFileSync(join(import.meta.dirname, 'fixtures', 'hardened.yaml'), 'utf8');
const identity = workloadIdentity(parseManifest(manifestText).manifest);

let tb: TestBroker;
let admin: string;

/** A confidential VM launched with `hostData`; its key never leaves it. */
class Guest {
  readonly kp = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  constructor(
    readonly hostData: Buffer,
    readonly measurement: Buffer = MEASUREMENT,
  ) {}
  async attestAndFetch(path: string): Promise<{ status: number; body: Record<string, unknown>; secret?: Buffer }> {
    const auth = await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
    assert.equal(auth.status, 200, auth.text);
    const cookie = sessionCookie(auth);
    const rd = { nonce: auth.json.nonce as string, 'tee-pubkey': await exportJWK(this.kp.publicKey) };
    const reportData = Buffer.alloc(64);
    createHash('sha384').update(canonicalBytes(rd)).digest().copy(reportData);
    const report = signReport(buildReport({ product: 'Milan', measurement: this.measurement, reportData, hostData: this.hostData }), vcek.key);
    const att = await http(`${tb.url}/kbs/v0/attest`, { body: { 'runtime-data': rd, 'tee-evidence': { report: report.toString('base64'), vcek: vcek.pem, cert_chain: amd.vcekChainPem } }, cookie });
    assert.equal(att.status, 200, att.text);
    const res = await http(`${tb.url}/kbs/v0/resource/${path}`, { cookie });
    if (res.status !== 200) return { status: res.status, body: res.json };
    const { plaintext } = await flattenedDecrypt(res.json as unknown as FlattenedJWE, this.kp.privateKey);
    return { status: 200, body: res.json, secret: Buffer.from(plaintext) };
  }
}

before(async () => {
  tb = await startTestBroker(undefined, { testOnlySnpRoots: [{ cert: parseCertificates(amd.ark.der, 'fake ARK')[0] as NonNullable<ReturnType<typeof parseCertificates>[0]>, label: 'ARK-Milan (workload test)', product: 'Milan' }] });
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  // The policy `coffer workload digest` prints (both spellings of the identity), with the launch
  // measurement of the image whose agent enforces HOST_DATA: HOST_DATA is chosen by the launcher
  // and not measured, so on its own it would name the workload any image claims to run.
  const policy = `id: payments-release\nversion: 1\nevidence:\n  accepted: [sev-snp]\nmeasurements:\n  snp: ["${MEASUREMENT.toString('hex')}"]\nworkload:\n  digest: ["${identity.sha384}", "${identity.sha256}"]\nfreshness:\n  nonce: required\n`;
  const p = await http(`${tb.url}/admin/v0/policies/payments`, { method: 'PUT', bearer: admin, body: { policy } });
  assert.equal(p.status, 200, p.text);
  const s = await http(`${tb.url}/admin/v0/secrets/payments/key/db`, { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } });
  assert.equal(s.status, 200, s.text);
});
after(async () => tb.cleanup());

test('released to the guest whose HOST_DATA is the manifest identity', async () => {
  const r = await new Guest(Buffer.from(identity.snpHostData, 'hex')).attestAndFetch('payments/key/db');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.secret, SECRET);
  const recs = await tb.running.broker.store.queryAudit({ action: 'kbs.resource', verdict: 'allow' });
  assert.equal(recs.at(-1)?.rule, 'payments-release@1');
});

test('refused for a manifest changed by one byte, and for no workload identity at all', async () => {
  const changed = manifestText.replace('LOG_LEVEL: info', 'LOG_LEVEL: infO');
  assert.equal(changed.length, manifestText.length);
  const other = workloadIdentity(parseManifest(changed).manifest);
  assert.notEqual(other.sha256, identity.sha256);
  const r = await new Guest(Buffer.from(other.snpHostData, 'hex')).attestAndFetch('payments/key/db');
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.rule, 'workload.digest');
  assert.equal(r.secret, undefined);

  const none = await new Guest(Buffer.alloc(32)).attestAndFetch('payments/key/db');
  assert.equal(none.status, 403);
  assert.equal(none.body.rule, 'workload.digest');

  // A flipped bit in an otherwise right HOST_DATA.
  const flipped = Buffer.from(identity.snpHostData, 'hex');
  flipped[31] = (flipped[31] as number) ^ 1;
  const f = await new Guest(flipped).attestAndFetch('payments/key/db');
  assert.equal(f.status, 403);
  // The right HOST_DATA claimed by another image (launch measurement): refused.
  const impostor = await new Guest(Buffer.from(identity.snpHostData, 'hex'), Buffer.alloc(48, 0x66)).attestAndFetch('payments/key/db');
  assert.equal(impostor.status, 403);
  assert.equal(impostor.body.rule, 'measurement');
  const denied = await tb.running.broker.store.queryAudit({ action: 'kbs.resource', verdict: 'deny' });
  assert.ok(denied.length >= 4);
});

test('a release policy whose only identity is the workload digest is refused (the launcher picks HOST_DATA)', async () => {
  const policy = `id: digest-only\nversion: 1\nevidence:\n  accepted: [sev-snp]\nworkload:\n  digest: ["${identity.sha384}", "${identity.sha256}"]\nfreshness:\n  nonce: required\n`;
  const r = await http(`${tb.url}/admin/v0/policies/digest-only`, { method: 'PUT', bearer: admin, body: { policy } });
  assert.ok(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`);
  assert.match(r.text, /names no VM identity/);
});
