// The KBS protocol with a real TPM: swtpm (libtpms) on a random 127.0.0.1 port, driven by
// tpm2-tools. An ECC AK is made under the EK and pinned through the admin API; for every session
// the test asks swtpm for a quote whose extraData is the 64-byte report data (SHA-384 of the JCS
// runtime-data, zero padded), sends it as `tee: "tpm"` evidence in the guest-components shape,
// fetches a secret released by a PCR policy and decrypts it with the key that stayed here.
// Refusals: a quote over another nonce, a flipped signature byte, PCR values that are not the
// quoted ones, an AK nobody pinned, a PCR policy the TPM does not satisfy, an SNP-only policy,
// and a volume bound to one AK fetched with another pinned AK of the same TPM (same PCR values).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { PROBLEM_BASE, canonicalBytes, type AuditRecord } from '../../src/broker/index.js';
import { parseTpm2ToolsPcrs } from '../../src/evidence/tpm/index.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie, startTestBroker, type Reply, type TestBroker } from './helpers.js';

const TOOLS = ['openssl', 'swtpm', 'swtpm_setup', 'tpm2_createek', 'tpm2_createak', 'tpm2_readpublic', 'tpm2_pcrextend', 'tpm2_pcrread', 'tpm2_quote', 'tpm2_flushcontext'];
const INSTALL = 'apt-get install swtpm swtpm-tools tpm2-tools openssl';
const SELECTION = 'sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23';

const dir = mkdtempSync(join(tmpdir(), 'coffer-broker-tpm-'));
let swtpm: ChildProcess | undefined;
let tcti = '';
let tb: TestBroker;
let admin: string;
let pcr16 = '';
let pcr7 = '';
const SECRET = Buffer.from(`tpm-released-${'5ec2e7'.repeat(6)}`);

function tpm(args: string[]): string {
  const [cmd, ...rest] = args;
  const r = spawnSync(cmd as string, rest, { cwd: dir, encoding: 'utf8', env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: 30_000 });
  assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

function flush(): void {
  tpm(['tpm2_flushcontext', '-t']);
  tpm(['tpm2_flushcontext', '-s']);
}

async function startSwtpm(): Promise<void> {
  const state = join(dir, 'state');
  mkdirSync(state);
  execFileSync('swtpm_setup', ['--tpm2', '--tpmstate', state, '--pcr-banks', 'sha256', '--overwrite'], { stdio: 'pipe' });
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const pidFile = join(dir, `swtpm-${port}.pid`);
    const child = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${state}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear', '--pid', `file=${pidFile}`], { stdio: 'ignore' });
    // The pid file appears once both sockets are bound; a busy port makes swtpm exit instead.
    for (let i = 0; i < 500 && child.exitCode === null; i++) {
      if (existsSync(pidFile)) {
        swtpm = child;
        tcti = `swtpm:host=127.0.0.1,port=${port}`;
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill();
  }
  assert.fail('swtpm did not start on any of 8 random ports');
}

function createAk(label: string): void {
  tpm(['tpm2_createak', '-C', 'ek.ctx', '-c', `${label}.ctx`, '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', `${label}.pub`, '-n', `${label}.name`, '-r', `${label}.priv`]);
  flush();
  tpm(['tpm2_readpublic', '-c', `${label}.ctx`, '-f', 'pem', '-o', `${label}.pem`]);
  flush();
}

/** A fresh quote by `ak` over all SHA-256 PCRs with `extraData` as qualifying data. */
function quote(ak: string, extraData: Buffer): { message: string; signature: string; pcrs: string[] } {
  const label = `q-${Math.random().toString(16).slice(2)}`;
  tpm(['tpm2_quote', '-c', `${ak}.ctx`, '-l', SELECTION, '-q', extraData.toString('hex'), '-m', `${label}.msg`, '-s', `${label}.sig`, '-o', `${label}.pcrs`, '-g', 'sha256']);
  flush();
  const banks = parseTpm2ToolsPcrs(readFileSync(join(dir, `${label}.pcrs`))).banks;
  const bank = banks.get('sha256');
  assert.ok(bank);
  const pcrs = Array.from({ length: 24 }, (_, i) => (bank.get(i) as Buffer).toString('hex'));
  return { message: readFileSync(join(dir, `${label}.msg`)).toString('base64'), signature: readFileSync(join(dir, `${label}.sig`)).toString('base64'), pcrs };
}

function reportData(runtimeData: unknown): Buffer {
  const out = Buffer.alloc(64);
  createHash('sha384').update(canonicalBytes(runtimeData)).digest().copy(out);
  return out;
}

function tpmEvidence(ak: string, q: { message: string; signature: string; pcrs: string[] }): Record<string, unknown> {
  return { tpm_quote: q, ak_public: readFileSync(join(dir, `${ak}.pub`)).toString('base64') };
}

const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
const adm = (p: string) => `${tb.url}/admin/v0/${p}`;

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

async function session(): Promise<{ cookie: string; nonce: string }> {
  const r = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'tpm', 'extra-params': '' } });
  assert.equal(r.status, 200, r.text);
  return { cookie: sessionCookie(r), nonce: r.json.nonce as string };
}

/** auth → quote bound to the runtime-data → attest. */
async function attest(att: Attester, opts: { ak?: string; mutate?: (e: Record<string, unknown>, rd: Buffer) => void; bind?: (rd: Buffer) => Buffer; asString?: boolean } = {}): Promise<{ cookie: string; reply: Reply }> {
  const { cookie, nonce } = await session();
  const rd = await att.runtimeData(nonce);
  const want = reportData(rd);
  const ak = opts.ak ?? 'ak';
  const ev = tpmEvidence(ak, quote(ak, opts.bind ? opts.bind(want) : want));
  opts.mutate?.(ev, want);
  return { cookie, reply: await http(kbs('attest'), { body: { 'runtime-data': rd, 'tee-evidence': opts.asString ? JSON.stringify(ev) : ev }, cookie }) };
}

before(async () => {
  const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length > 0) assert.fail(`the TPM attester test needs ${missing.join(', ')}: run \`${INSTALL}\``);
  await startSwtpm();
  tpm(['tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub']);
  flush();
  createAk('ak');
  createAk('ak-unpinned');
  tpm(['tpm2_pcrextend', `16:sha256=${Buffer.alloc(32, 0xc0).toString('hex')}`]);
  pcr16 = /16\s*:\s*0x([0-9A-Fa-f]{64})/.exec(tpm(['tpm2_pcrread', 'sha256:16']))?.[1]?.toLowerCase() ?? '';
  assert.match(pcr16, /^[0-9a-f]{64}$/);
  // PCR 7 anchors the identity (16 is resettable from inside the VM, so it only narrows one)
  pcr7 = /7\s*:\s*0x([0-9A-Fa-f]{64})/.exec(tpm(['tpm2_pcrread', 'sha256:7']))?.[1]?.toLowerCase() ?? '';
  assert.match(pcr7, /^[0-9a-f]{64}$/);

  tb = await startTestBroker();
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  const pin = await http(adm('trusted-keys/tpm-ak/test-ak'), { method: 'PUT', bearer: admin, body: { key: readFileSync(join(dir, 'ak.pem'), 'utf8') } });
  assert.equal(pin.status, 200, pin.text);
  assert.match(pin.json.description as string, /TPM AK/);
  const pol = (id: string, value: string) => `id: ${id}\nversion: 1\nevidence:\n  accepted: [tpm]\npcrs:\n  sha256:\n    "7": "${pcr7}"\n    "16": "${value}"\nfreshness:\n  nonce: required\n`;
  for (const [prefix, text] of [['tpm-team', pol('tpm-release', pcr16)], ['tpm-other', pol('tpm-other-release', 'ab'.repeat(32))], ['snp-team', policyFor('snp-release', MEASUREMENT_A)]] as const) {
    const r = await http(adm(`policies/${prefix}`), { method: 'PUT', bearer: admin, body: { policy: text } });
    assert.equal(r.status, 200, r.text);
  }
  for (const path of ['tpm-team/key/disk', 'tpm-other/key/disk', 'snp-team/key/disk']) {
    const r = await http(adm(`secrets/${path}`), { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } });
    assert.equal(r.status, 200, r.text);
  }
});

after(async () => {
  await tb?.cleanup();
  const child = swtpm;
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('swtpm quote bound to the runtime-data → EAR token → resource released by a PCR policy → decrypted here', async () => {
  const att = new Attester();
  const { cookie, reply } = await attest(att);
  assert.equal(reply.status, 200, reply.text);
  const res = await http(kbs('resource/tpm-team/key/disk'), { cookie });
  assert.equal(res.status, 200, res.text);
  const { plaintext } = await flattenedDecrypt(res.json as unknown as FlattenedJWE, att.privateKey);
  assert.deepEqual(Buffer.from(plaintext), SECRET);
  const rec = (await tb.running.broker.store.queryAudit({ action: 'kbs.resource', verdict: 'allow' })).at(-1);
  assert.equal(rec?.rule, 'tpm-release@1');
  const attestRec = (await tb.running.broker.store.queryAudit({ action: 'kbs.attest', verdict: 'allow' })).at(-1);
  assert.match(attestRec?.evidenceDigest ?? '', /^[0-9a-f]{64}$/);
});

test('the evidence may be sent as a JSON string, and report_data (guest-components) must agree with the quote', async () => {
  const att = new Attester();
  const ok = await attest(att, { asString: true, mutate: (e, rd) => Object.assign(e, { report_data: rd.toString('base64') }) });
  assert.equal(ok.reply.status, 200, ok.reply.text);
  const bad = await attest(att, { mutate: (e) => Object.assign(e, { report_data: Buffer.alloc(64, 1).toString('base64') }) });
  assertProblem(bad.reply, 403, 'evidence-unbound', 'KBS_EVIDENCE_UNBOUND');
});

test('refused: a quote over another nonce (extraData not the runtime-data hash) → evidence-unbound, audited', async () => {
  const att = new Attester();
  const { reply } = await attest(att, { bind: (rd) => Buffer.from(rd.map((b, i) => (i === 0 ? b ^ 1 : b))) });
  assertProblem(reply, 403, 'evidence-unbound', 'KBS_EVIDENCE_UNBOUND');
  assert.equal((await lastDenial('kbs.attest', 'evidence-unbound')).rule, 'freshness.binding');
});

test('refused: a flipped signature byte → evidence-invalid (TPM_BAD_SIGNATURE), audited', async () => {
  const att = new Attester();
  const { reply } = await attest(att, {
    mutate: (e) => {
      const q = e.tpm_quote as { signature: string };
      const sig = Buffer.from(q.signature, 'base64');
      sig[sig.length - 5] = (sig[sig.length - 5] as number) ^ 0x01;
      q.signature = sig.toString('base64');
    },
  });
  assertProblem(reply, 403, 'evidence-invalid', 'TPM_BAD_SIGNATURE');
  assert.match((await lastDenial('kbs.attest', 'evidence-invalid')).detail ?? '', /TPM_BAD_SIGNATURE/);
});

test('refused: PCR values other than the quoted ones → evidence-invalid (TPM_PCR_DIGEST_MISMATCH)', async () => {
  const att = new Attester();
  const { reply } = await attest(att, {
    mutate: (e) => {
      const q = e.tpm_quote as { pcrs: string[] };
      q.pcrs[16] = 'ab'.repeat(32);
    },
  });
  assertProblem(reply, 403, 'evidence-invalid', 'TPM_PCR_DIGEST_MISMATCH');
});

test('refused: an AK nobody pinned → evidence-invalid (KBS_TPM_AK_UNTRUSTED); a PEM AK instead of the TPM public area → bad-request', async () => {
  const att = new Attester();
  const { reply } = await attest(att, { ak: 'ak-unpinned' });
  assertProblem(reply, 403, 'evidence-invalid', 'KBS_TPM_AK_UNTRUSTED');
  await lastDenial('kbs.attest', 'evidence-invalid');
  const pem = await attest(att, { mutate: (e) => Object.assign(e, { ak_public: readFileSync(join(dir, 'ak.pem'), 'utf8') }) });
  assertProblem(pem.reply, 400, 'bad-request', 'KBS_BAD_EVIDENCE');
});

test('refused at release: PCR 16 not the policy value → policy-denied (pcr.sha256.16); an SNP-only policy does not release to a TPM', async () => {
  const att = new Attester();
  const { cookie, reply } = await attest(att);
  assert.equal(reply.status, 200, reply.text);
  const r1 = await http(kbs('resource/tpm-other/key/disk'), { cookie });
  assertProblem(r1, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(r1.json.rule, 'pcr.sha256.16');
  assert.equal((await lastDenial('kbs.resource', 'policy-denied')).rule, 'pcr.sha256.16');
  const r2 = await http(kbs('resource/snp-team/key/disk'), { cookie });
  assertProblem(r2, 403, 'policy-denied');
  assert.ok(r2.json.rule === 'evidence.accepted' || r2.json.rule === 'identity', r2.text);
});

test('an SNP policy without evidence.accepted still does not release to a TPM: no identity rule applies', async () => {
  const r = await http(adm('policies/loose'), { method: 'PUT', bearer: admin, body: { policy: `id: loose\nversion: 1\nmeasurements:\n  snp: ["${MEASUREMENT_A.toString('hex')}"]\n` } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await http(adm('secrets/loose/key/x'), { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } })).status, 200);
  const att = new Attester();
  const { cookie, reply } = await attest(att);
  assert.equal(reply.status, 200, reply.text);
  const res = await http(kbs('resource/loose/key/x'), { cookie });
  assertProblem(res, 403, 'policy-denied', 'KBS_POLICY_NO_IDENTITY_MATCH');
  assert.equal(res.json.rule, 'identity');
  assert.equal((await lastDenial('kbs.resource', 'policy-denied')).rule, 'identity');
});

test('trusted keys: an auditor cannot pin an AK, no token is refused; both audited', async () => {
  const auditor = await tb.token('auditor');
  const key = readFileSync(join(dir, 'ak-unpinned.pem'), 'utf8');
  assertProblem(await http(adm('trusted-keys/tpm-ak/x'), { method: 'PUT', bearer: auditor, body: { key } }), 403, 'forbidden', 'ADMIN_ROLE');
  assert.ok((await lastDenial('admin.trust.put', 'forbidden')).actor.startsWith('token:'));
  assertProblem(await http(adm('trusted-keys/tpm-ak/x'), { method: 'PUT', body: { key } }), 401, 'unauthorized', 'ADMIN_NO_TOKEN');
  assert.equal((await lastDenial('admin.trust.put', 'unauthorized')).actor, 'anonymous');
  assertProblem(await http(adm('trusted-keys/tpm-ak/x'), { method: 'PUT', bearer: admin, body: { key: 'not a key' } }), 400, 'bad-request', 'TRUST_BAD_KEY');
  assertProblem(await http(adm('trusted-keys/nonsense/x'), { method: 'PUT', bearer: admin, body: { key } }), 400, 'bad-request', 'TRUST_BAD_PURPOSE');
  const list = await http(adm('trusted-keys?purpose=tpm-ak'), { bearer: auditor });
  assert.equal(list.status, 200, list.text);
  assert.deepEqual((list.json.keys as { name: string }[]).map((k) => k.name), ['test-ak']);
});

test('an AK certificate chaining to a trusted tpm-ak-root is accepted instead of a pin; without the root, or for another key, refused', async () => {
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' });
  const leafExt = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n';
  sh('openssl ecparam -name prime256v1 -genkey -noout -out ca.key');
  sh('openssl req -x509 -new -key ca.key -subj "/CN=Test vTPM AK CA" -days 2 -out ca.pem -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"');
  for (const [label, pub] of [['akcert', 'ak-unpinned.pem'], ['akcert-other', 'ak.pem']] as const) {
    sh(`printf '${leafExt}' > leaf.ext && openssl x509 -new -subj "/CN=${label}" -force_pubkey ${pub} -CA ca.pem -CAkey ca.key -days 1 -extfile leaf.ext -out ${label}.pem`);
  }
  const withCert = (cert: string) => (e: Record<string, unknown>) => Object.assign(e, { ak_cert: readFileSync(join(dir, cert), 'utf8') });
  const att = new Attester();
  // The certificate alone: no root trusted yet.
  assertProblem((await attest(att, { ak: 'ak-unpinned', mutate: withCert('akcert.pem') })).reply, 403, 'evidence-invalid', 'KBS_TPM_AK_UNTRUSTED');
  const root = await http(adm('trusted-keys/tpm-ak-root/test-ca'), { method: 'PUT', bearer: admin, body: { key: readFileSync(join(dir, 'ca.pem'), 'utf8') } });
  assert.equal(root.status, 200, root.text);
  const { cookie, reply } = await attest(att, { ak: 'ak-unpinned', mutate: withCert('akcert.pem') });
  assert.equal(reply.status, 200, reply.text);
  const res = await http(kbs('resource/tpm-team/key/disk'), { cookie });
  assert.equal(res.status, 200, res.text);
  // A certificate for another key than the one that signed the quote.
  assertProblem((await attest(att, { ak: 'ak-unpinned', mutate: withCert('akcert-other.pem') })).reply, 403, 'evidence-invalid', 'TPM_AK_MISMATCH');
  // A leaf certificate is not a root.
  assertProblem(await http(adm('trusted-keys/tpm-ak-root/leaf'), { method: 'PUT', bearer: admin, body: { key: readFileSync(join(dir, 'akcert.pem'), 'utf8') } }), 400, 'bad-request', 'TRUST_BAD_KEY');
  assert.equal((await http(adm('trusted-keys/tpm-ak-root/test-ca'), { method: 'DELETE', bearer: admin })).status, 204);
  assertProblem((await attest(att, { ak: 'ak-unpinned', mutate: withCert('akcert.pem') })).reply, 403, 'evidence-invalid', 'KBS_TPM_AK_UNTRUSTED');
});

/** The AK's fingerprint as an operator computes it with openssl: SHA-256 of the SPKI DER. */
function opensslFingerprint(label: string): string {
  const der = execFileSync('openssl', ['pkey', '-pubin', '-in', join(dir, `${label}.pem`), '-outform', 'DER']);
  return createHash('sha256').update(der).digest('hex');
}

test('a TPM volume identity (PCRs + AK) releases its key to this TPM with that AK; another PCR value, or another pinned AK of the same TPM (same PCRs), is refused', async () => {
  const ak = opensslFingerprint('ak');
  const mk = (id: string, value: string, akId: string) => http(adm('volumes'), { method: 'POST', bearer: admin, body: { id, identity: { tpm: { pcrs: { sha256: { '7': pcr7, '16': value } }, ak: akId } } } });
  assert.equal((await mk('tpm-vm', pcr16, ak)).status, 201);
  assert.equal((await mk('tpm-vm-other', 'cd'.repeat(32), ak)).status, 201);
  // The same AK named by its TPM name (tpm2_createak -n).
  assert.equal((await mk('tpm-vm-name', pcr16, readFileSync(join(dir, 'ak.name')).toString('hex'))).status, 201);
  const att = new Attester();
  const { cookie, reply } = await attest(att);
  assert.equal(reply.status, 200, reply.text);
  for (const id of ['tpm-vm', 'tpm-vm-name']) {
    const key = await http(kbs(`resource/volumes/${id}/key`), { cookie });
    assert.equal(key.status, 200, key.text);
    assert.equal(Buffer.from((await flattenedDecrypt(key.json as unknown as FlattenedJWE, att.privateKey)).plaintext).length, 32);
  }
  const other = await http(kbs('resource/volumes/tpm-vm-other/key'), { cookie });
  assertProblem(other, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(other.json.rule, 'pcr.sha256.16');

  // VM B: another AK, trusted too (pinned), quoting the very same PCR values.
  createAk('ak2');
  const pin = await http(adm('trusted-keys/tpm-ak/test-ak2'), { method: 'PUT', bearer: admin, body: { key: readFileSync(join(dir, 'ak2.pem'), 'utf8') } });
  assert.equal(pin.status, 200, pin.text);
  assert.notEqual(opensslFingerprint('ak2'), ak);
  const b = new Attester();
  const vmB = await attest(b, { ak: 'ak2' });
  assert.equal(vmB.reply.status, 200, vmB.reply.text);
  for (const id of ['tpm-vm', 'tpm-vm-name']) {
    const stolen = await http(kbs(`resource/volumes/${id}/key`), { cookie: vmB.cookie });
    assertProblem(stolen, 403, 'policy-denied', 'KBS_POLICY_DENIED');
    assert.equal(stolen.json.rule, 'tpm.ak', stolen.text);
  }
  // Its own volume (bound to ak2) is released to it; a shared one to both.
  assert.equal((await mk('tpm-vm-b', pcr16, opensslFingerprint('ak2'))).status, 201);
  assert.equal((await http(kbs('resource/volumes/tpm-vm-b/key'), { cookie: vmB.cookie })).status, 200);
  assertProblem(await http(kbs('resource/volumes/tpm-vm-b/key'), { cookie }), 403, 'policy-denied', 'KBS_POLICY_DENIED');
  const shared = await http(adm('volumes'), { method: 'POST', bearer: admin, body: { id: 'tpm-image', identity: { tpm: { pcrs: { sha256: { '7': pcr7, '16': pcr16 } }, shared: true } } } });
  assert.equal(shared.status, 201, shared.text);
  for (const c of [cookie, vmB.cookie]) assert.equal((await http(kbs('resource/volumes/tpm-image/key'), { cookie: c })).status, 200);
  assert.equal((await http(adm('trusted-keys/tpm-ak/test-ak2'), { method: 'DELETE', bearer: admin })).status, 204);
});
