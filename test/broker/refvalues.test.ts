// Signed reference values in the broker: an admin trusts a build signer's key, stores the JWS an
// image build produces, and release policies (and volume identities) refer to it by image id.
// Refused: a document no trusted key signed, an altered one, a weak role, no token; removing the
// signer withdraws its documents. Then the CLI (`coffer broker trust ...`, `refvalues ...`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { signReferenceValues, type ReferenceValues } from '../../src/appraisal/index.js';
import { PROBLEM_BASE, SqliteStore, type AuditRecord, type Store } from '../../src/broker/index.js';
import { TrustAndReferences } from '../../src/broker/refvalues.js';
import { runCli } from '../helpers/cli.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, sessionCookie, startTestBroker, type Reply, type TestBroker } from './helpers.js';

let tb: TestBroker;
let admin: string;
let provisioner: string;
let auditor: string;
const signer = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const SECRET = Buffer.from(`ref-released-${'a7b8'.repeat(8)}`);
const tmp = mkdtempSync(join(tmpdir(), 'coffer-refvalues-'));

const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
const adm = (p: string) => `${tb.url}/admin/v0/${p}`;
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();

function values(imageVersion: string, measurement: Buffer): ReferenceValues {
  return { image: { id: 'web-image', version: imageVersion }, issuedAt: '2026-11-01T00:00:00Z', measurements: { snp: [measurement.toString('hex')] } };
}

function assertProblem(r: Reply, status: number, type: string, code?: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
  if (code) assert.equal(r.json.code, code, r.text);
}

async function lastDenial(action: string, problem: string): Promise<AuditRecord> {
  const recs = (await tb.running.broker.store.queryAudit({ action, verdict: 'deny', limit: 1000 })).filter((r) => r.problem === problem);
  const last = recs.at(-1);
  assert.ok(last, `no ${action} deny record with problem ${problem}`);
  return last;
}

async function fetchAs(att: Attester, path: string): Promise<Reply> {
  const auth = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  const cookie = sessionCookie(auth);
  const r = await http(kbs('attest'), { body: await att.attestBody(auth.json.nonce as string), cookie });
  assert.equal(r.status, 200, r.text);
  return http(kbs(`resource/${path}`), { cookie });
}

const putRef = (bearer: string | undefined, name: string, jws: string) => http(adm(`reference-values/${name}`), { method: 'PUT', ...(bearer ? { bearer } : {}), body: { jws } });
const putSigner = (bearer: string | undefined, name: string, key: string) => http(adm(`trusted-keys/reference-signer/${name}`), { method: 'PUT', ...(bearer ? { bearer } : {}), body: { key } });

before(async () => {
  tb = await startTestBroker();
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  provisioner = await tb.token('provisioner');
  auditor = await tb.token('auditor');
});
after(async () => {
  await tb.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

test('no signer trusted yet: a reference-value document is refused; a policy may still name the image but releases nothing', async () => {
  const jws = await signReferenceValues(values('1.0', MEASUREMENT_A), signer.privateKey);
  assertProblem(await putRef(admin, 'web-1', jws), 400, 'bad-request', 'REFERENCE_NO_SIGNERS');
  await lastDenial('admin.refvalues.put', 'bad-request');
});

test('trusted signer → stored document → a policy naming the image releases to a VM with its measurement only', async () => {
  const s = await putSigner(admin, 'build', pem(signer.publicKey));
  assert.equal(s.status, 200, s.text);
  assert.equal(s.json.description, 'Ed25519 public key');
  const r = await putRef(provisioner, 'web-1', await signReferenceValues(values('1.0', MEASUREMENT_A), signer.privateKey));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.imageId, 'web-image');
  assert.equal(r.json.signer, 'build');
  assert.equal(r.json.active, true);

  const pol = await http(adm('policies/web'), { method: 'PUT', bearer: admin, body: { policy: 'id: web\nversion: 1\nevidence:\n  accepted: [sev-snp]\nmeasurements:\n  reference: web-image\nfreshness:\n  nonce: required\n' } });
  assert.equal(pol.status, 200, pol.text);
  assert.equal((await http(adm('secrets/web/key/tls'), { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } })).status, 200);
  const att = new Attester(MEASUREMENT_A);
  const ok = await fetchAs(att, 'web/key/tls');
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(ok.json as unknown as FlattenedJWE, att.privateKey)).plaintext), SECRET);
  const no = await fetchAs(new Attester(MEASUREMENT_B), 'web/key/tls');
  assertProblem(no, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(no.json.rule, 'measurement');
  assert.equal((await lastDenial('kbs.resource', 'policy-denied')).rule, 'measurement');

  // A volume identity may name the image too.
  const v = await http(adm('volumes'), { method: 'POST', bearer: provisioner, body: { id: 'web-vm', identity: { snp: {}, reference: 'web-image' } } });
  assert.equal(v.status, 201, v.text);
  assert.equal((await fetchAs(att, 'volumes/web-vm/key')).status, 200);
  assertProblem(await fetchAs(new Attester(MEASUREMENT_B), 'volumes/web-vm/key'), 403, 'policy-denied');

  const got = await http(adm('reference-values/web-1'), { bearer: auditor });
  assert.equal(got.status, 200, got.text);
  assert.deepEqual((got.json.values as ReferenceValues).measurements.snp, [MEASUREMENT_A.toString('hex')]);
  assert.equal(got.json.jws, undefined);
});

test('refused: a document signed by an untrusted key, an altered one, an unsigned one; audited', async () => {
  const foreign = await signReferenceValues(values('2.0', MEASUREMENT_B), stranger.privateKey);
  assertProblem(await putRef(admin, 'web-2', foreign), 422, 'signature-invalid', 'REFERENCE_BAD_SIGNATURE');
  assert.match((await lastDenial('admin.refvalues.put', 'signature-invalid')).detail ?? '', /REFERENCE_BAD_SIGNATURE/);
  const genuine = await signReferenceValues(values('2.0', MEASUREMENT_A), signer.privateKey);
  const [h, p, sig] = genuine.split('.') as [string, string, string];
  const altered = `${h}.${Buffer.from(Buffer.from(p, 'base64url').toString().replace(MEASUREMENT_A.toString('hex'), MEASUREMENT_B.toString('hex'))).toString('base64url')}.${sig}`;
  assertProblem(await putRef(admin, 'web-2', altered), 422, 'signature-invalid', 'REFERENCE_BAD_SIGNATURE');
  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.`;
  assertProblem(await putRef(admin, 'web-2', unsigned), 422, 'signature-invalid', 'REFERENCE_UNSIGNED');
  assert.equal((await http(adm('reference-values/web-2'), { bearer: admin })).status, 404, 'nothing was stored');
});

test('refused: auditor cannot store reference values, provisioner cannot trust a signer, no token; scoped token cannot; audited', async () => {
  const jws = await signReferenceValues(values('3.0', MEASUREMENT_A), signer.privateKey);
  assertProblem(await putRef(auditor, 'web-3', jws), 403, 'forbidden', 'ADMIN_ROLE');
  await lastDenial('admin.refvalues.put', 'forbidden');
  assertProblem(await putSigner(provisioner, 'mine', pem(stranger.publicKey)), 403, 'forbidden', 'ADMIN_ROLE');
  await lastDenial('admin.trust.put', 'forbidden');
  assertProblem(await putRef(undefined, 'web-3', jws), 401, 'unauthorized', 'ADMIN_NO_TOKEN');
  assert.equal((await lastDenial('admin.refvalues.put', 'unauthorized')).actor, 'anonymous');
  const scoped = await tb.token('provisioner', 'web');
  assertProblem(await putRef(scoped, 'web-3', jws), 403, 'out-of-scope', 'ADMIN_SCOPE');
  await lastDenial('admin.refvalues.put', 'out-of-scope');
  assertProblem(await putSigner(admin, 'rsa', pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)), 400, 'bad-request', 'TRUST_BAD_KEY');
});

test('removing the signer withdraws its documents: the policy naming the image releases nothing any more', async () => {
  assert.equal((await http(adm('trusted-keys/reference-signer/build'), { method: 'DELETE', bearer: admin })).status, 204);
  const list = await http(adm('reference-values'), { bearer: auditor });
  const web1 = (list.json.referenceValues as { name: string; active: boolean }[]).find((d) => d.name === 'web-1');
  assert.equal(web1?.active, false);
  const r = await fetchAs(new Attester(MEASUREMENT_A), 'web/key/tls');
  assertProblem(r, 403, 'policy-denied');
  assert.equal(r.json.rule, 'measurement');
  // Trusting it again brings the document back.
  assert.equal((await putSigner(admin, 'build', pem(signer.publicKey))).status, 200);
  assert.equal((await fetchAs(new Attester(MEASUREMENT_A), 'web/key/tls')).status, 200);
  assert.equal((await http(adm('reference-values/web-1'), { method: 'DELETE', bearer: provisioner })).status, 204);
  assertProblem(await http(adm('reference-values/web-1'), { method: 'DELETE', bearer: provisioner }), 404, 'not-found', 'REFERENCE_NOT_FOUND');
  assertProblem(await fetchAs(new Attester(MEASUREMENT_A), 'web/key/tls'), 403, 'policy-denied');
});

test('CLI: coffer broker trust add|list|rm and refvalues put|list|rm', async () => {
  const common = ['--url', tb.url, '--token-file', tb.running.paths.adminTokenFile];
  const keyFile = join(tmp, 'signer.pem');
  writeFileSync(keyFile, pem(stranger.publicKey));
  const jwsFile = join(tmp, 'ref.jws');
  writeFileSync(jwsFile, await signReferenceValues(values('9.0', MEASUREMENT_B), stranger.privateKey));
  const before = await runCli(['broker', 'refvalues', 'put', 'cli-ref', '--file', jwsFile, ...common]);
  assert.equal(before.code, 1, before.stdout);
  assert.match(before.stderr, /REFERENCE_BAD_SIGNATURE|does not verify/);
  const add = await runCli(['broker', 'trust', 'add', 'reference-signer', 'other', '--key', keyFile, ...common]);
  assert.equal(add.code, 0, add.stderr);
  const put = await runCli(['broker', 'refvalues', 'put', 'cli-ref', '--file', jwsFile, '--json', ...common]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal((JSON.parse(put.stdout) as { referenceValues: { signer: string } }).referenceValues.signer, 'other');
  const list = await runCli(['broker', 'refvalues', 'list', ...common]);
  assert.match(list.stdout, /cli-ref\s+web-image\s+9\.0\s+other\s+yes/);
  const tl = await runCli(['broker', 'trust', 'list', '--purpose', 'reference-signer', ...common]);
  assert.match(tl.stdout, /reference-signer\s+other\s+Ed25519/);
  assert.equal((await runCli(['broker', 'refvalues', 'rm', 'cli-ref', ...common])).code, 0);
  assert.equal((await runCli(['broker', 'trust', 'rm', 'reference-signer', 'other', ...common])).code, 0);
  const gone = await runCli(['broker', 'trust', 'rm', 'reference-signer', 'other', ...common]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /TRUST_NOT_FOUND/);
});

test('a signer trusted only between the two reads of one refresh is not left active once removed (the cache key and the keys come from one read)', async () => {
  const store = await SqliteStore.open(join(tmp, 'race.db'));
  try {
    const racer = generateKeyPairSync('ed25519');
    const jws = await signReferenceValues(values('7.0', MEASUREMENT_B), racer.privateKey);
    await store.putReferenceValues({ name: 'race', imageId: 'web-image', imageVersion: '7.0', jws, sha256: 'race-doc', signer: 'racer', updatedAt: 0, updatedBy: 'test' });
    let reads = 0;
    // The signer is added right after the refresh's first read of the trusted keys (an admin's concurrent request).
    const racing = new Proxy(store, {
      get(t, k) {
        if (k === 'listTrustedKeys') {
          return async (purpose?: 'reference-signer') => {
            const out = await t.listTrustedKeys(purpose);
            if (++reads === 1) await t.putTrustedKey({ purpose: 'reference-signer', name: 'racer', pem: pem(racer.publicKey), sha256: 'racer', createdAt: 0, createdBy: 'test' });
            return out;
          };
        }
        const v = Reflect.get(t, k) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    }) as Store;
    const tr = new TrustAndReferences({ store: racing, now: () => 0, adminAudited: () => Promise.reject(new Error('not used')) });
    await tr.current();
    assert.equal(await store.deleteTrustedKey('reference-signer', 'racer'), true);
    const after = await tr.current();
    assert.equal(after.active.size, 0, 'the document only the removed signer signed is withdrawn');
    assert.equal(after.store.forImage('web-image').length, 0);
    // Twin: while the signer is trusted, the document is active.
    await store.putTrustedKey({ purpose: 'reference-signer', name: 'racer', pem: pem(racer.publicKey), sha256: 'racer', createdAt: 0, createdBy: 'test' });
    assert.deepEqual([...(await tr.current()).active], ['race-doc']);
  } finally {
    await store.close();
  }
});

/** An ECC P-256 TPMT_PUBLIC (nameAlg SHA-256, ECDSA/SHA-256) for `key` with these object attributes. */
function tpmtPublic(key: KeyObject, attributes: number): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  const b2 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
  return Buffer.concat([u16(0x0023), u16(0x000b), u32(attributes), b2(Buffer.alloc(0)), u16(0x0010), u16(0x0018), u16(0x000b), u16(0x0003), u16(0x0010), b2(Buffer.from(jwk.x as string, 'base64url')), b2(Buffer.from(jwk.y as string, 'base64url'))]);
}

test('a tpm-ak given as a TPM public area must be a restricted signing key bound to its TPM (an unrestricted key could sign a forged quote)', async () => {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const put = (name: string, attrs: number) => http(adm(`trusted-keys/tpm-ak/${name}`), { method: 'PUT', bearer: admin, body: { key: tpmtPublic(k, attrs).toString('base64') } });
  // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign, without restricted.
  assertProblem(await put('unrestricted', 0x00040072), 400, 'bad-request', 'TRUST_BAD_KEY');
  assert.match((await lastDenial('admin.trust.put', 'bad-request')).detail ?? '', /not an attestation key/);
  // Restricted but not fixedTPM (duplicable): also refused.
  assertProblem(await put('duplicable', 0x00050070), 400, 'bad-request', 'TRUST_BAD_KEY');
  // Twin: the attributes tpm2_createak gives (restricted | sign | fixedTPM ...) are accepted.
  const ok = await put('restricted', 0x00050072);
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.json.description as string, /TPM AK/);
  assert.equal((await http(adm('trusted-keys/tpm-ak/restricted'), { method: 'DELETE', bearer: admin })).status, 204);
});
