// Live quotes from a real TPM: swtpm (libtpms) driven by tpm2-tools, on a random 127.0.0.1 port
// with a private state directory. An EK, an ECC AK (ECDSA) and two RSA AKs (RSASSA, RSAPSS) are
// created, PCRs extended in two banks, quotes taken with a nonce; Coffer must verify them, agree
// with tpm2-tools on the AK name, the qualified signer and the PCR digest (tpm2_checkquote accepts
// the same quotes), and reject byte flips, a wrong nonce, another AK and an unrestricted key.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError } from '../../../src/errors.js';
import {
  TPM_RH,
  computePcrDigest,
  loadAttestationKey,
  parseTpm2ToolsPcrs,
  parseTpmQuote,
  parseTpmSignature,
  parseTpmtPublic,
  qualifiedName,
  tpmName,
  verifyTpmQuote,
  type PcrBanks,
} from '../../../src/evidence/tpm/index.js';
import { expectCoffer } from './vectors.js';

const TOOLS = ['openssl', 'swtpm', 'swtpm_setup', 'tpm2_createek', 'tpm2_createak', 'tpm2_createprimary', 'tpm2_readpublic', 'tpm2_pcrextend', 'tpm2_quote', 'tpm2_checkquote', 'tpm2_sign', 'tpm2_flushcontext'];
const INSTALL = 'apt-get install swtpm swtpm-tools tpm2-tools openssl';

const dir = mkdtempSync(join(tmpdir(), 'coffer-swtpm-'));
const state = join(dir, 'state');
let tcti = '';
let swtpm: ChildProcess | undefined;

function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status === 0;
}

/** Runs a tpm2-tools command against our swtpm; returns stdout. */
function tpm(args: string[]): string {
  const [cmd, ...rest] = args;
  const r = spawnSync(cmd as string, rest, { cwd: dir, encoding: 'utf8', env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: 20_000 });
  assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** No resource manager: flush transient objects (and sessions) after every command that loads one. */
function flush(): void {
  tpm(['tpm2_flushcontext', '-t']);
  tpm(['tpm2_flushcontext', '-s']);
}

function file(name: string): Buffer {
  return readFileSync(join(dir, name));
}

function field(out: string, label: string): string {
  const m = new RegExp(`^${label}:\\s*([0-9a-fA-F]+)\\s*$`, 'm').exec(out);
  assert.ok(m, `no "${label}" in:\n${out}`);
  return (m[1] as string).toLowerCase();
}

/** swtpm as a direct child (not --daemon), so that it is ours to kill and reap. */
async function startSwtpm(): Promise<void> {
  mkdirSync(state);
  // No --create-ek-cert: that would write to the system-wide swtpm-localca state; tpm2_createek makes the EK.
  execFileSync('swtpm_setup', ['--tpm2', '--tpmstate', state, '--pcr-banks', 'sha1,sha256', '--overwrite'], { stdio: 'pipe' });
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const pidFile = join(dir, `swtpm-${port}.pid`);
    const child = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${state}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear', '--pid', `file=${pidFile}`], { stdio: 'ignore' });
    // swtpm writes its pid file once both sockets are bound (a busy port makes it exit instead).
    // A probe connection would not do: swtpm then stops answering the next client.
    for (let i = 0; i < 250 && child.exitCode === null; i++) {
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

const NONCE = Buffer.from('c0ffee0123456789abcdef0011223344', 'hex');
const EXT16 = Buffer.alloc(32, 0xa5);
const EXT23 = Buffer.alloc(32, 0x5a);
const EXT16_SHA1 = Buffer.alloc(20, 0x11);
const SELECTION = 'sha1:0,16+sha256:0,1,2,3,4,5,6,7,8,9,16,23';

interface Ak {
  label: string;
  name: string;
  qualifiedName: string;
}
const aks: Record<string, Ak> = {};
let ekName = '';

interface Quote {
  attest: Buffer;
  signature: Buffer;
  pcrs: PcrBanks;
  calcDigest: string;
}
const quotes: Record<string, Quote> = {};

function createAk(label: string, alg: string, scheme: string): void {
  tpm(['tpm2_createak', '-C', 'ek.ctx', '-c', `${label}.ctx`, '-G', alg, '-g', 'sha256', '-s', scheme, '-u', `${label}.pub`, '-n', `${label}.name`, '-r', `${label}.priv`]);
  flush();
  const out = tpm(['tpm2_readpublic', '-c', `${label}.ctx`, '-f', 'tpmt', '-o', `${label}.tpmt`]);
  flush();
  tpm(['tpm2_readpublic', '-c', `${label}.ctx`, '-f', 'pem', '-o', `${label}.pem`]);
  flush();
  aks[label] = { label, name: field(out, 'name'), qualifiedName: field(out, 'qualified name') };
}

function quote(label: string, ak: string, extra: string[] = []): void {
  const out = tpm(['tpm2_quote', '-c', `${ak}.ctx`, '-l', SELECTION, '-q', NONCE.toString('hex'), '-m', `${label}.msg`, '-s', `${label}.sig`, '-o', `${label}.pcrs`, '-g', 'sha256', ...extra]);
  flush();
  quotes[label] = { attest: file(`${label}.msg`), signature: file(`${label}.sig`), pcrs: parseTpm2ToolsPcrs(file(`${label}.pcrs`)).banks, calcDigest: field(out, 'calcDigest') };
}

before(async () => {
  const missing = TOOLS.filter((t) => !which(t));
  if (missing.length > 0) assert.fail(`the live TPM test needs ${missing.join(', ')}: run \`${INSTALL}\``);
  await startSwtpm();
  tpm(['tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub']);
  ekName = field(tpm(['tpm2_readpublic', '-c', 'ek.ctx']), 'name');
  flush();
  createAk('ak-ecc', 'ecc', 'ecdsa');
  createAk('ak-ecc2', 'ecc', 'ecdsa');
  createAk('ak-rsa', 'rsa', 'rsassa');
  createAk('ak-pss', 'rsa', 'rsapss');
  tpm(['tpm2_pcrextend', `16:sha256=${EXT16.toString('hex')},sha1=${EXT16_SHA1.toString('hex')}`]);
  tpm(['tpm2_pcrextend', `23:sha256=${EXT23.toString('hex')}`]);
  quote('q-ecc', 'ak-ecc');
  quote('q-rsa', 'ak-rsa');
  quote('q-pss', 'ak-pss', ['--scheme', 'rsapss']);
});

after(async () => {
  const child = swtpm;
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const AT = new Date();
const akFiles = (label: string, ...ext: string[]) => loadAttestationKey(ext.map((e) => ({ data: file(`${label}.${e}`), what: `${label}.${e}` })));

describe('swtpm + tpm2-tools live quotes', () => {
  test('AK names: Coffer equals tpm2_readpublic and tpm2_createak -n; qualified names from the EK hierarchy', () => {
    for (const ak of Object.values(aks)) {
      const pub = parseTpmtPublic(file(`${ak.label}.tpmt`));
      assert.equal(tpmName(pub).toString('hex'), ak.name, ak.label);
      assert.equal(pub.name.toString('hex'), ak.name);
      assert.equal(file(`${ak.label}.name`).toString('hex'), ak.name);
      // The AK is a child of the EK, a primary key of the endorsement hierarchy.
      const ekQn = qualifiedName(TPM_RH.ENDORSEMENT, Buffer.from(ekName, 'hex'));
      assert.equal(qualifiedName(ekQn, pub.name).toString('hex'), ak.qualifiedName, ak.label);
      assert.ok(pub.attributes.restricted && pub.attributes.sign && pub.attributes.fixedTPM && !pub.attributes.decrypt);
    }
    const ecc = parseTpmtPublic(file('ak-ecc.tpmt'));
    assert.deepEqual([ecc.type, ecc.ecc?.curveName, ecc.scheme.algName, ecc.scheme.hashName], ['ecc', 'nist-p256', 'ecdsa', 'sha256']);
    const pss = parseTpmtPublic(file('ak-pss.tpmt'));
    assert.deepEqual([pss.type, pss.rsa?.keyBits, pss.scheme.algName], ['rsa', 2048, 'rsapss']);
  });

  test('the quotes verify with Coffer, with the AK as TPM2B_PUBLIC, TPMT_PUBLIC and PEM; tpm2_checkquote agrees', () => {
    for (const [label, ak, alg] of [['q-ecc', 'ak-ecc', 'ecdsa'], ['q-rsa', 'ak-rsa', 'rsassa'], ['q-pss', 'ak-pss', 'rsapss']] as const) {
      const q = quotes[label];
      assert.ok(q);
      if (alg === 'rsapss') {
        // tpm2_checkquote 5.4 verifies RSA-PSS with the maximal salt and so rejects libtpms' quotes,
        // whose salt is as long as the digest; OpenSSL with that salt length is the oracle here.
        writeFileSync(join(dir, `${label}.raw`), parseTpmSignature(q.signature).rsa as Buffer);
        writeFileSync(join(dir, `${label}.dgst`), createHash('sha256').update(q.attest).digest());
        const o = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', `${ak}.pem`, '-sigfile', `${label}.raw`, '-in', `${label}.dgst`, '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:32', '-pkeyopt', 'digest:sha256'], { cwd: dir, encoding: 'utf8' });
        assert.equal(o.status, 0, `openssl RSA-PSS verify ${label}: ${o.stdout}${o.stderr}`);
      } else {
        const r = spawnSync('tpm2_checkquote', ['-u', `${ak}.pub`, '-m', `${label}.msg`, '-s', `${label}.sig`, '-f', `${label}.pcrs`, '-g', 'sha256', '-q', NONCE.toString('hex')], { cwd: dir, encoding: 'utf8' });
        assert.equal(r.status, 0, `tpm2_checkquote ${label}: ${r.stderr}`);
      }
      for (const forms of [['pub'], ['tpmt'], ['pem'], ['pub', 'pem', 'tpmt']]) {
        const v = verifyTpmQuote(q.attest, q.signature, { at: AT, ak: akFiles(ak, ...forms), nonce: NONCE, pcrs: q.pcrs, expectedQualifiedSigner: Buffer.from(aks[ak]?.qualifiedName ?? '', 'hex') });
        assert.ok(v.checks.every((c) => c.ok), `${label} ${forms.join('+')}`);
        assert.equal(v.signature.alg, alg);
        assert.equal(v.quote.qualifiedSigner.toString('hex'), aks[ak]?.qualifiedName);
        assert.ok(v.quote.extraData.equals(NONCE));
      }
      const quoted = parseTpmQuote(q.attest);
      // The selection tpm2_quote asked for, both banks, and the digest tpm2-tools computed.
      assert.deepEqual(quoted.pcrSelection.map((s) => [s.hashName, s.pcrs]), [['sha1', [0, 16]], ['sha256', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 23]]]);
      assert.equal(computePcrDigest(quoted.pcrSelection, q.pcrs, 'sha256').toString('hex'), q.calcDigest);
      assert.equal(quoted.pcrDigest.toString('hex'), q.calcDigest);
    }
  });

  test('the PCR file holds the extended values (two banks, 14 values across two TPML_DIGEST lists)', () => {
    const q = quotes['q-ecc'];
    assert.ok(q);
    const ext = (size: number, d: Buffer, h: string) => createHash(h).update(Buffer.alloc(size)).update(d).digest('hex');
    assert.equal(q.pcrs.get('sha256')?.get(16)?.toString('hex'), ext(32, EXT16, 'sha256'));
    assert.equal(q.pcrs.get('sha256')?.get(23)?.toString('hex'), ext(32, EXT23, 'sha256'));
    assert.equal(q.pcrs.get('sha1')?.get(16)?.toString('hex'), ext(20, EXT16_SHA1, 'sha1'));
    assert.equal(q.pcrs.get('sha256')?.get(0)?.toString('hex'), '00'.repeat(32));
    assert.equal(file('q-ecc.pcrs').length, 132 + 4 + 2 * 532);
    assert.deepEqual([...(q.pcrs.get('sha256')?.keys() ?? [])], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 23]);
  });

  test('RSA-PSS: swtpm uses a salt as long as the digest (32 bytes), which Coffer accepts', () => {
    const q = quotes['q-pss'];
    assert.ok(q);
    const sig = parseTpmSignature(q.signature);
    assert.equal(sig.alg, 'rsapss');
    assert.equal(sig.rsa?.length, 256);
    const v = verifyTpmQuote(q.attest, q.signature, { at: AT, ak: akFiles('ak-pss', 'tpmt'), nonce: NONCE });
    assert.match(v.checks[0]?.description ?? '', /^RSAPSS\/SHA256 signature/);
  });

  test('every byte flip of each quote → TPM_BAD_SIGNATURE; of the ECDSA/RSA signature values too', () => {
    const wrong: string[] = [];
    for (const [label, ak] of [['q-ecc', 'ak-ecc'], ['q-rsa', 'ak-rsa'], ['q-pss', 'ak-pss']] as const) {
      const q = quotes[label];
      assert.ok(q);
      const opts = { at: AT, ak: akFiles(ak, 'tpmt'), nonce: NONCE, pcrs: q.pcrs };
      const attempt = (attest: Buffer, sig: Buffer, what: string) => {
        try {
          verifyTpmQuote(attest, sig, opts);
          wrong.push(`${label} ${what}: accepted`);
        } catch (e) {
          if (!(e instanceof CofferError) || e.code !== 'TPM_BAD_SIGNATURE') wrong.push(`${label} ${what}: ${String(e)}`);
        }
      };
      for (let i = 0; i < q.attest.length; i++) {
        const b = Buffer.from(q.attest);
        b[i] = (b[i] as number) ^ 0x20;
        attempt(b, q.signature, `attest byte ${i}`);
      }
      // Signature values after the header (ECDSA: skip the two size fields too).
      const sig = parseTpmSignature(q.signature);
      const sizeFields = sig.alg === 'ecdsa' ? [4, 5, 6 + (sig.ecdsa?.r.length ?? 0), 7 + (sig.ecdsa?.r.length ?? 0)] : [4, 5];
      for (let i = 4; i < q.signature.length; i++) {
        if (sizeFields.includes(i)) continue;
        const s = Buffer.from(q.signature);
        s[i] = (s[i] as number) ^ 0x01;
        attempt(q.attest, s, `signature byte ${i}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('wrong nonce → TPM_NONCE_MISMATCH; changed PCR → TPM_PCR_DIGEST_MISMATCH (and tpm2_checkquote fails too)', () => {
    const q = quotes['q-ecc'];
    assert.ok(q);
    const ak = akFiles('ak-ecc', 'pub');
    const wrongNonce = Buffer.from(NONCE);
    wrongNonce[0] = (wrongNonce[0] as number) ^ 1;
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: AT, ak, nonce: wrongNonce, pcrs: q.pcrs }), 'TPM_NONCE_MISMATCH', { kind: 'verify' });
    const r1 = spawnSync('tpm2_checkquote', ['-u', 'ak-ecc.pub', '-m', 'q-ecc.msg', '-s', 'q-ecc.sig', '-f', 'q-ecc.pcrs', '-g', 'sha256', '-q', wrongNonce.toString('hex')], { cwd: dir, encoding: 'utf8' });
    assert.notEqual(r1.status, 0, 'tpm2_checkquote rejects the wrong nonce as well');

    // Flip one byte of PCR sha256:16 in the tpm2-tools file itself: it sits in the second TPML_DIGEST
    // (sha1:0,16 and sha256:0-5 fill the first eight slots).
    const raw = Buffer.from(file('q-ecc.pcrs'));
    const off = raw.indexOf(q.pcrs.get('sha256')?.get(16) as Buffer);
    assert.equal(off, 132 + 4 + 532 + 4 + 4 * 66 + 2);
    raw[off] = (raw[off] as number) ^ 0xff;
    writeFileSync(join(dir, 'q-ecc-bad.pcrs'), raw);
    const bad = parseTpm2ToolsPcrs(raw).banks;
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: AT, ak, nonce: NONCE, pcrs: bad }), 'TPM_PCR_DIGEST_MISMATCH', { kind: 'verify' });
    const r2 = spawnSync('tpm2_checkquote', ['-u', 'ak-ecc.pub', '-m', 'q-ecc.msg', '-s', 'q-ecc.sig', '-f', 'q-ecc-bad.pcrs', '-g', 'sha256', '-q', NONCE.toString('hex')], { cwd: dir, encoding: 'utf8' });
    assert.notEqual(r2.status, 0, 'tpm2_checkquote rejects the changed PCR as well');
  });

  test('another AK → TPM_BAD_SIGNATURE; AK files of two different keys → TPM_AK_MISMATCH', () => {
    const q = quotes['q-ecc'];
    assert.ok(q);
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: AT, ak: akFiles('ak-ecc2', 'tpmt'), nonce: NONCE }), 'TPM_BAD_SIGNATURE', { kind: 'verify' });
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: AT, ak: akFiles('ak-rsa', 'tpmt'), nonce: NONCE }), 'TPM_BAD_SIGNATURE', { message: /ECDSA\/SHA256 but the AK is an RSA-2048 key/ });
    expectCoffer(() => akFiles('ak-ecc', 'tpmt').forms && loadAttestationKey([{ data: file('ak-ecc.tpmt'), what: 'a' }, { data: file('ak-ecc2.pem'), what: 'b' }]), 'TPM_AK_MISMATCH', { kind: 'verify' });
    // Same key material, the AK's qualified name from another AK: the expected-qualified-signer check catches it.
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: AT, ak: akFiles('ak-ecc', 'tpmt'), nonce: NONCE, expectedQualifiedSigner: Buffer.from(aks['ak-ecc2']?.qualifiedName ?? '', 'hex') }), 'TPM_QUALIFIED_SIGNER_MISMATCH');
    // An RSASSA AK whose quote is presented as RSAPSS: its TPM public area fixes the scheme.
    const rq = quotes['q-rsa'];
    assert.ok(rq);
    const asPss = Buffer.from(rq.signature);
    asPss.writeUInt16BE(0x0016, 0);
    expectCoffer(() => verifyTpmQuote(rq.attest, asPss, { at: AT, ak: akFiles('ak-rsa', 'tpmt'), nonce: NONCE }), 'TPM_SCHEME_MISMATCH');
    expectCoffer(() => verifyTpmQuote(rq.attest, asPss, { at: AT, ak: akFiles('ak-rsa', 'pem'), nonce: NONCE }), 'TPM_BAD_SIGNATURE');
  });

  test('an unrestricted signing key can sign a forged TPMS_ATTEST: Coffer refuses it as TPM_AK_NOT_RESTRICTED', () => {
    tpm(['tpm2_createprimary', '-C', 'o', '-G', 'ecc', '-c', 'free.ctx', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign']);
    flush();
    tpm(['tpm2_readpublic', '-c', 'free.ctx', '-f', 'tpmt', '-o', 'free.tpmt']);
    flush();
    // A quote that never happened: the real quote's bytes with an invented pcrDigest.
    const real = quotes['q-ecc'];
    assert.ok(real);
    const forged = Buffer.from(real.attest);
    forged.fill(0x42, forged.length - 32);
    writeFileSync(join(dir, 'forged.msg'), forged);
    tpm(['tpm2_sign', '-c', 'free.ctx', '-g', 'sha256', '-s', 'ecdsa', '-o', 'forged.sig', 'forged.msg']);
    flush();
    const ak = akFiles('free', 'tpmt');
    assert.equal(ak.public?.attributes.restricted, false);
    const e = expectCoffer(() => verifyTpmQuote(forged, file('forged.sig'), { at: AT, ak, nonce: NONCE }), 'TPM_AK_NOT_RESTRICTED', { kind: 'verify', message: /missing restricted/ });
    // The signature itself was good: that is exactly why the restriction matters.
    assert.equal((e.details?.checks as { name: string; ok: boolean }[])[0]?.name, 'tpm.signature');
    assert.equal((e.details?.checks as { name: string; ok: boolean }[])[0]?.ok, true);
  });
});
