// The guest's TPM client against a real TPM (swtpm/libtpms) with tpm2-tools as the oracle: PCR
// reads, extends, quotes (verified by Coffer's verifier and by tpm2_checkquote), seal/unseal in
// both directions with tpm2-tools, NV certificates, EK names. swtpm serves one client at a time:
// every Coffer session is closed before a tpm2-tools command runs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assembleAttestationKey, parseTpmQuote, parseTpmtPublic, verifyTpmQuote } from '../../../src/evidence/tpm/index.js';
import { akTemplate, buildCommand, encodeSealedBlob, openTpm, parseResponse, parseSealedBlob, policyPcrDigest, selectionFromInput, NV_INDEX, TPM_CC, TPM_PT, TPM_RH, TPMA_NV, TPMA_OBJECT, Tpm, TpmClient, type TpmQuoteEvidence } from '../../../src/guest/tpm/index.js';
import { parsePcrRead, rejectsCoffer, tpm2b, tpm2ToolsPcrFile } from './helpers.js';
import { requireTools, startSwtpm, type Swtpm } from './swtpm.js';

const TOOLS = ['swtpm', 'swtpm_setup', 'openssl', 'tpm2_pcrread', 'tpm2_pcrextend', 'tpm2_checkquote', 'tpm2_createprimary', 'tpm2_create', 'tpm2_load', 'tpm2_unseal', 'tpm2_createpolicy', 'tpm2_flushcontext', 'tpm2_nvdefine', 'tpm2_nvwrite', 'tpm2_nvread', 'tpm2_createek', 'tpm2_readpublic', 'tpm2_getcap', 'tpm2_startauthsession'];

let sw: Swtpm;

/** A Coffer client for the duration of fn, closed afterwards so that tpm2-tools can connect. */
async function withTpm<T>(fn: (tpm: Tpm) => Promise<T>, framing: 'raw' | 'mssim' = 'raw'): Promise<T> {
  const tpm = await openTpm({ kind: 'tcp', host: '127.0.0.1', port: sw.port as number, framing });
  try {
    return await fn(tpm);
  } finally {
    await tpm.close();
  }
}

/** tpm2-tools without a resource manager leave sessions (and objects) loaded: flush after each. */
function tool(args: string[], opts: { allowFail?: boolean } = {}): { status: number; stdout: string; stderr: string } {
  const r = sw.tool(args, opts);
  sw.tool(['tpm2_flushcontext', '-t']);
  sw.tool(['tpm2_flushcontext', '-l']);
  return r;
}

const file = (name: string) => readFileSync(join(sw.dir, name));
const put = (name: string, data: Uint8Array) => writeFileSync(join(sw.dir, name), data);
const extendOnce = (size: number, old: Buffer, d: Buffer, h: string) => createHash(h).update(old.length ? old : Buffer.alloc(size)).update(d).digest();

before(async () => {
  requireTools(TOOLS);
  sw = await startSwtpm({ banks: 'sha256,sha384' });
  // Non-zero PCRs in both banks, set by tpm2-tools.
  tool(['tpm2_pcrextend', `16:sha256=${'a5'.repeat(32)},sha384=${'5a'.repeat(48)}`]);
  tool(['tpm2_pcrextend', `23:sha256=${'11'.repeat(32)}`]);
  tool(['tpm2_pcrextend', `7:sha256=${'22'.repeat(32)},sha384=${'33'.repeat(48)}`]);
});

after(async () => {
  await sw?.stop();
});

describe('PCRs', () => {
  test('all 24 PCRs of the SHA-256 and SHA-384 banks equal tpm2_pcrread (several PCR_Read calls)', async () => {
    const mine = await withTpm((t) => t.readPcrs({ sha256: [...Array(24).keys()], sha384: [...Array(24).keys()] }));
    const theirs = parsePcrRead(tool(['tpm2_pcrread', 'sha256:all+sha384:all']).stdout);
    for (const bank of ['sha256', 'sha384'] as const) {
      assert.equal(mine.get(bank)?.size, 24);
      assert.equal(theirs.get(bank)?.size, 24);
      for (let i = 0; i < 24; i++) assert.equal(mine.get(bank)?.get(i)?.toString('hex'), theirs.get(bank)?.get(i)?.toString('hex'), `${bank}:${i}`);
    }
    // Not a comparison of two zero tables: the PCRs tpm2-tools extended hold the expected values.
    assert.equal(mine.get('sha256')?.get(16)?.toString('hex'), extendOnce(32, Buffer.alloc(0), Buffer.alloc(32, 0xa5), 'sha256').toString('hex'));
    assert.equal(mine.get('sha384')?.get(16)?.toString('hex'), extendOnce(48, Buffer.alloc(0), Buffer.alloc(48, 0x5a), 'sha384').toString('hex'));
    assert.ok(mine.get('sha256')?.get(0)?.equals(Buffer.alloc(32)));
    // PCRs 17-22 reset to all ones under the PC Client profile (locality-resettable); 0 is zero.
    assert.ok(mine.get('sha256')?.get(17)?.equals(Buffer.alloc(32, 0xff)));
  });

  test('extendPcr (both banks at once) gives what tpm2_pcrread shows and H(old || digest) predicts', async () => {
    const d256 = createHash('sha256').update('workload manifest').digest();
    const d384 = createHash('sha384').update('workload manifest').digest();
    const before = await withTpm(async (t) => {
      const b = await t.readPcrs({ sha256: [15], sha384: [15] });
      await t.extendPcr(15, { sha256: d256, sha384: d384 });
      return b;
    });
    const theirs = parsePcrRead(tool(['tpm2_pcrread', 'sha256:15+sha384:15']).stdout);
    assert.equal(theirs.get('sha256')?.get(15)?.toString('hex'), extendOnce(32, before.get('sha256')?.get(15) as Buffer, d256, 'sha256').toString('hex'));
    assert.equal(theirs.get('sha384')?.get(15)?.toString('hex'), extendOnce(48, before.get('sha384')?.get(15) as Buffer, d384, 'sha384').toString('hex'));
  });

  test('bad selections and digests are refused before reaching the TPM', async () => {
    await withTpm(async (t) => {
      await rejectsCoffer(() => t.readPcrs({ sha256: [24] }), 'TPM_BAD_PCR_SELECTION');
      await rejectsCoffer(() => t.readPcrs({}), 'TPM_BAD_PCR_SELECTION');
      await rejectsCoffer(() => t.readPcrs({ md5: [1] } as never), 'TPM_BAD_PCR_SELECTION');
      await rejectsCoffer(() => t.extendPcr(15, Buffer.alloc(31)), 'TPM_BAD_ARGUMENT');
      await rejectsCoffer(() => t.extendPcr(24, Buffer.alloc(32)), 'TPM_BAD_ARGUMENT');
      // A bank the TPM does not have: the TPM answers with an empty selection.
      await rejectsCoffer(() => t.readPcrs({ sha1: [0] }), 'TPM_PCR_BANK_MISSING');
      // A TPM silently ignores extend digests for banks it does not have: Coffer refuses instead.
      await rejectsCoffer(() => t.extendPcr(15, { sha1: Buffer.alloc(20) }), 'TPM_PCR_BANK_MISSING');
    });
  });
});

describe('quotes', () => {
  const NONCE32 = createHash('sha256').update('broker runtime data').digest();
  const NONCE48 = createHash('sha384').update('broker runtime data').digest();
  const SELECTION = { sha256: [0, 1, 2, 3, 4, 5, 6, 7, 16, 23], sha384: [7, 16] };
  const quotes: Record<string, TpmQuoteEvidence> = {};

  before(async () => {
    await withTpm(async (t) => {
      quotes.ecc = await t.quote(NONCE32, SELECTION);
      quotes.rsa = await t.quote(NONCE48, SELECTION, { ak: 'rsa' });
      quotes.owner = await t.quote(NONCE32, { sha256: [7] }, { hierarchy: 'owner' });
    });
  });

  const akOf = (q: TpmQuoteEvidence) => assembleAttestationKey([{ kind: 'tpm-public', form: 'TPMT_PUBLIC', public: parseTpmtPublic(q.akPublic) }]);

  test("Coffer's verifier accepts the quotes: signature, restricted AK, qualified signer, nonce, PCR digest", () => {
    for (const [label, nonce] of [['ecc', NONCE32], ['rsa', NONCE48], ['owner', NONCE32]] as const) {
      const q = quotes[label] as TpmQuoteEvidence;
      const v = verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak: akOf(q), nonce, pcrs: q.pcrs, expectedQualifiedSigner: q.akQualifiedName });
      assert.ok(v.checks.every((c) => c.ok), `${label}: ${JSON.stringify(v.checks.filter((c) => !c.ok))}`);
      assert.equal(v.signature.alg, label === 'rsa' ? 'rsassa' : 'ecdsa');
      assert.ok(v.quote.extraData.equals(nonce));
    }
    const q = parseTpmQuote((quotes.ecc as TpmQuoteEvidence).attest);
    assert.deepEqual(q.pcrSelection.map((s) => [s.hashName, s.pcrs]), [['sha256', SELECTION.sha256], ['sha384', SELECTION.sha384]]);
    assert.notEqual((quotes.ecc as TpmQuoteEvidence).akName.toString('hex'), (quotes.owner as TpmQuoteEvidence).akName.toString('hex'), 'different hierarchies, different keys');
  });

  test('tpm2_checkquote accepts them (ECDSA and RSASSA AKs), and rejects a flipped byte, a wrong nonce, a changed PCR', () => {
    for (const [label, nonce] of [['ecc', NONCE32], ['rsa', NONCE48]] as const) {
      const q = quotes[label] as TpmQuoteEvidence;
      put(`${label}.pub`, tpm2b(q.akPublic));
      put(`${label}.msg`, q.attest);
      put(`${label}.sig`, q.signature);
      put(`${label}.pcrs`, tpm2ToolsPcrFile(selectionFromInput(SELECTION), q.pcrs));
      const check = (msg: string, pcrs: string, n: Buffer) => tool(['tpm2_checkquote', '-u', `${label}.pub`, '-m', msg, '-s', `${label}.sig`, '-f', pcrs, '-g', 'sha256', '-q', n.toString('hex')], { allowFail: true });
      const ok = check(`${label}.msg`, `${label}.pcrs`, nonce);
      assert.equal(ok.status, 0, `${label}: ${ok.stderr}`);
      const flipped = Buffer.from(q.attest);
      flipped[flipped.length - 5] = (flipped[flipped.length - 5] as number) ^ 1;
      put(`${label}-bad.msg`, flipped);
      assert.notEqual(check(`${label}-bad.msg`, `${label}.pcrs`, nonce).status, 0, 'flipped attest byte');
      const wrong = Buffer.from(nonce);
      wrong[0] = (wrong[0] as number) ^ 1;
      assert.notEqual(check(`${label}.msg`, `${label}.pcrs`, wrong).status, 0, 'wrong nonce');
      const pcrs = new Map([...q.pcrs].map(([b, m]) => [b, new Map(m)]));
      pcrs.get('sha256')?.set(16, Buffer.alloc(32, 0x42));
      put(`${label}-bad.pcrs`, tpm2ToolsPcrFile(selectionFromInput(SELECTION), pcrs));
      assert.notEqual(check(`${label}.msg`, `${label}-bad.pcrs`, nonce).status, 0, 'changed PCR');
    }
  });

  test("negative twins in Coffer's verifier: flipped byte, wrong nonce, changed PCR, the other AK", async () => {
    const q = quotes.ecc as TpmQuoteEvidence;
    const ak = akOf(q);
    const flipped = Buffer.from(q.attest);
    flipped[10] = (flipped[10] as number) ^ 0x80;
    await rejectsCoffer(() => verifyTpmQuote(flipped, q.signature, { at: new Date(), ak, nonce: NONCE32, pcrs: q.pcrs }), 'TPM_BAD_SIGNATURE');
    await rejectsCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak, nonce: NONCE48, pcrs: q.pcrs }), 'TPM_NONCE_MISMATCH');
    const pcrs = new Map([...q.pcrs].map(([b, m]) => [b, new Map(m)]));
    pcrs.get('sha384')?.set(7, Buffer.alloc(48));
    await rejectsCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak, nonce: NONCE32, pcrs }), 'TPM_PCR_DIGEST_MISMATCH');
    await rejectsCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak: akOf(quotes.owner as TpmQuoteEvidence), nonce: NONCE32 }), 'TPM_BAD_SIGNATURE');
    await rejectsCoffer(() => verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak, nonce: NONCE32, expectedQualifiedSigner: (quotes.owner as TpmQuoteEvidence).akQualifiedName }), 'TPM_QUALIFIED_SIGNER_MISMATCH');
  });

  test('qualifying data: 64 bytes (a full report-data field) is accepted, 65 or none is refused; the AK is the same key every time', async () => {
    await withTpm(async (t) => {
      const q = await t.quote(Buffer.alloc(64, 0xcd), { sha256: [7] });
      assert.ok(parseTpmQuote(q.attest).extraData.equals(Buffer.alloc(64, 0xcd)));
      // A primary AK from a fixed template: nothing to store across boots, the same name each time.
      assert.equal(q.akName.toString('hex'), (quotes.ecc as TpmQuoteEvidence).akName.toString('hex'));
      const ak = await t.attestationKey();
      assert.ok(ak.public.equals(q.akPublic) && ak.qualifiedName.equals(q.akQualifiedName));
      assert.match(ak.pem, /^-----BEGIN PUBLIC KEY-----/);
      const rsa = await t.attestationKey({ ak: 'rsa' });
      assert.ok(rsa.public.equals((quotes.rsa as TpmQuoteEvidence).akPublic));
      await rejectsCoffer(() => t.quote(Buffer.alloc(65), { sha256: [7] }), 'TPM_BAD_ARGUMENT');
      await rejectsCoffer(() => t.quote(Buffer.alloc(0), { sha256: [7] }), 'TPM_BAD_ARGUMENT');
    });
  });

  test('an AK template that is not a restricted signing key is refused (its "quotes" could be forged)', async () => {
    const unrestricted = akTemplate('ecc');
    unrestricted.writeUInt32BE(unrestricted.readUInt32BE(4) & ~TPMA_OBJECT.restricted, 4);
    await withTpm(async (t) => {
      await rejectsCoffer(() => t.quote(Buffer.alloc(32, 1), { sha256: [7] }, { akTemplate: unrestricted }), 'TPM_BAD_AK');
      // A template the TPM itself rejects (RSA key size 1000): the TPM's code, with the parameter it blames.
      const badRsa = akTemplate('rsa');
      badRsa.writeUInt16BE(1000, badRsa.length - 8);
      // inPublic is CreatePrimary's second parameter.
      const e = await rejectsCoffer(() => t.quote(Buffer.alloc(32, 1), { sha256: [7] }, { akTemplate: badRsa }), 'TPM_RC_VALUE');
      assert.equal(e.details?.parameter, 2);
    });
  });
});

describe('seal and unseal', () => {
  const SECRET = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

  test('round trip (ECC and RSA SRKs); refused with TPM_RC_POLICY_FAIL after an extend of a sealed PCR', async () => {
    await withTpm(async (t) => {
      const blobE = await t.seal(SECRET, { sha256: [7, 11], sha384: [7] });
      const blobR = await t.seal(SECRET, { sha256: [7, 11] }, { srk: 'rsa' });
      assert.ok((await t.unseal(blobE)).equals(SECRET));
      assert.ok((await t.unseal(blobR)).equals(SECRET));
      assert.ok(!blobE.includes(SECRET), 'the secret is not in the blob in the clear');
      // A PCR outside the selection changes nothing.
      await t.extendPcr(12, Buffer.alloc(32, 1));
      assert.ok((await t.unseal(blobE)).equals(SECRET));
      await t.extendPcr(11, { sha256: Buffer.alloc(32, 2), sha384: Buffer.alloc(48, 2) });
      for (const blob of [blobE, blobR]) {
        const e = await rejectsCoffer(() => t.unseal(blob), 'TPM_RC_POLICY_FAIL', { kind: 'verify', message: /no longer hold the values/ });
        assert.equal(e.details?.session, 1);
      }
      // Only sha384:7 is sealed in that bank: extending sha384:11 alone would not matter; sha384:7 does.
      const blob384 = await t.seal(SECRET, { sha384: [7] });
      await t.extendPcr(7, { sha256: Buffer.alloc(32, 3), sha384: Buffer.alloc(48, 3) });
      await rejectsCoffer(() => t.unseal(blob384), 'TPM_RC_POLICY_FAIL');
    });
  });

  test('sealing to predicted values: refused now, released once the PCR reaches them', async () => {
    await withTpm(async (t) => {
      const now = await t.readPcrs({ sha256: [14] });
      const step = createHash('sha256').update('next boot stage').digest();
      const predicted = new Map([['sha256' as const, new Map([[14, extendOnce(32, now.get('sha256')?.get(14) as Buffer, step, 'sha256')]])]]);
      const blob = await t.seal(SECRET, { sha256: [14] }, { pcrValues: predicted });
      await rejectsCoffer(() => t.unseal(blob), 'TPM_RC_POLICY_FAIL');
      await t.extendPcr(14, step);
      assert.ok((await t.unseal(blob)).equals(SECRET));
    });
  });

  test('the policy digest: computed locally = the TPM trial session = tpm2_createpolicy', async () => {
    const sel = { sha256: [0, 7, 16], sha384: [16] };
    const [local, tpmDigest] = await withTpm(async (t) => [policyPcrDigest(selectionFromInput(sel), await t.readPcrs(sel)), await t.policyDigestNow(sel)]);
    tool(['tpm2_createpolicy', '--policy-pcr', '-l', 'sha256:0,7,16+sha384:16', '-L', 'pol.dat']);
    assert.equal(local.toString('hex'), tpmDigest.toString('hex'));
    assert.equal(local.toString('hex'), file('pol.dat').toString('hex'));
  });

  test('tpm2-tools unseals a Coffer blob, and Coffer unseals an object tpm2-tools sealed (same SRK, same policy)', async () => {
    const sel = { sha256: [7, 16] };
    const blob = await withTpm((t) => t.seal(Buffer.from('made by coffer'), sel));
    const b = parseSealedBlob(blob);
    put('c.pub', tpm2b(b.public));
    put('c.priv', tpm2b(b.private));
    // tpm2-tools' SRK with Coffer's SRK template (ECC P-256, AES-128-CFB, noDA).
    const srk = ['tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc256:null:aes128cfb', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt', '-c', 'srk.ctx'];
    tool(srk);
    tool(['tpm2_load', '-C', 'srk.ctx', '-u', 'c.pub', '-r', 'c.priv', '-c', 'c.ctx']);
    assert.equal(tool(['tpm2_unseal', '-c', 'c.ctx', '-p', 'pcr:sha256:7,16']).stdout, 'made by coffer');
    // userWithAuth is clear: the (empty) auth value opens nothing, with a password or an HMAC session.
    tool(['tpm2_load', '-C', 'srk.ctx', '-u', 'c.pub', '-r', 'c.priv', '-c', 'c.ctx']);
    const pw = tool(['tpm2_unseal', '-c', 'c.ctx', '-p', ''], { allowFail: true });
    assert.notEqual(pw.status, 0, 'empty password');
    assert.match(pw.stderr, /0x12f.*authValue or authPolicy is not available/i);
    tool(['tpm2_load', '-C', 'srk.ctx', '-u', 'c.pub', '-r', 'c.priv', '-c', 'c.ctx']);
    tool(['tpm2_startauthsession', '-S', 'hmac.ctx', '--hmac-session']);
    const hmac = tool(['tpm2_unseal', '-c', 'c.ctx', '-p', 'session:hmac.ctx'], { allowFail: true });
    assert.notEqual(hmac.status, 0, 'HMAC session');
    assert.match(hmac.stderr, /0x12f.*authValue or authPolicy is not available/i);
    // A policy session over other PCRs than the sealed ones does not open it either.
    tool(['tpm2_load', '-C', 'srk.ctx', '-u', 'c.pub', '-r', 'c.priv', '-c', 'c.ctx']);
    assert.notEqual(tool(['tpm2_unseal', '-c', 'c.ctx', '-p', 'pcr:sha256:7'], { allowFail: true }).status, 0, 'a policy over PCR 7 alone');
    tool(['tpm2_load', '-C', 'srk.ctx', '-u', 'c.pub', '-r', 'c.priv', '-c', 'c.ctx']);

    // The other way: tpm2_create seals under a PCR policy; Coffer wraps its pub/priv in a blob and unseals.
    tool(['tpm2_createpolicy', '--policy-pcr', '-l', 'sha256:7,16', '-L', 't.pol']);
    put('t.secret', Buffer.from('made by tpm2-tools'));
    tool(['tpm2_create', '-C', 'srk.ctx', '-g', 'sha256', '-L', 't.pol', '-a', 'fixedtpm|fixedparent|noda', '-i', 't.secret', '-u', 't.pub', '-r', 't.priv']);
    const strip = (x: Buffer) => x.subarray(2, 2 + x.readUInt16BE(0));
    const theirs = encodeSealedBlob({ srk: 'ecc', selection: selectionFromInput(sel), public: strip(file('t.pub')), private: strip(file('t.priv')) });
    assert.equal((await withTpm((t) => t.unseal(theirs))).toString(), 'made by tpm2-tools');
  });

  test('a tampered blob never yields the secret: a flipped private or policy byte fails in the TPM, a strict parser catches the rest', async () => {
    await withTpm(async (t) => {
      const blob = await t.seal(SECRET, { sha256: [7] });
      const b = parseSealedBlob(blob);
      const privAt = blob.length - b.private.length;
      for (const at of [privAt + 10, privAt + b.private.length - 1]) {
        const x = Buffer.from(blob);
        x[at] = (x[at] as number) ^ 1;
        await rejectsCoffer(() => t.unseal(x), 'TPM_RC_INTEGRITY');
      }
      // A weaker policy (the authPolicy replaced) changes the object's name: the private part no longer binds.
      const pubAt = blob.indexOf(b.authPolicy);
      const y = Buffer.from(blob);
      y[pubAt] = (y[pubAt] as number) ^ 1;
      await rejectsCoffer(() => t.unseal(y), 'TPM_RC_INTEGRITY');
      // Attributes widened to userWithAuth (the empty password would open it): refused before the TPM.
      const z = Buffer.from(blob);
      const attrAt = blob.indexOf(b.public) + 4;
      z.writeUInt32BE(z.readUInt32BE(attrAt) | 0x40, attrAt);
      await rejectsCoffer(() => t.unseal(z), 'TPM_BAD_SEALED_BLOB', { message: /attributes/ });
    });
  });

  test('the command and response frames that carried the secret are wiped once used (seal and unseal)', async () => {
    const secret = Buffer.from('5ec7e75ec7e75ec7e75ec7e75ec7e75e', 'hex');
    const frames: Buffer[] = [];
    const codes: number[] = [];
    await withTpm(async (t) => {
      const inner = t.client.transport;
      const recording = new Tpm(new TpmClient({
        description: inner.description,
        close: () => inner.close(),
        send: async (cmd) => {
          frames.push(Buffer.from(cmd.buffer, cmd.byteOffset, cmd.byteLength));
          codes.push(Buffer.from(cmd).readUInt32BE(6));
          const r = await inner.send(cmd);
          frames.push(r);
          return r;
        },
      }));
      const blob = await recording.seal(secret, { sha256: [7] });
      assert.ok((await recording.unseal(blob)).equals(secret));
    });
    assert.ok(codes.includes(TPM_CC.Create) && codes.includes(TPM_CC.Unseal), 'Create and Unseal went out');
    for (const f of frames) assert.ok(!f.includes(secret) && f.every((b) => b === 0), 'a frame was left holding its bytes');
  });

  test('seal refuses an empty or oversized secret', async () => {
    await withTpm(async (t) => {
      await rejectsCoffer(() => t.seal(Buffer.alloc(0), { sha256: [7] }), 'TPM_BAD_ARGUMENT');
      await rejectsCoffer(() => t.seal(Buffer.alloc(129), { sha256: [7] }), 'TPM_BAD_ARGUMENT');
      assert.equal((await t.unseal(await t.seal(Buffer.alloc(128, 9), { sha256: [7] }))).length, 128);
    });
  });
});

describe('NV certificates', () => {
  let der: Buffer;
  before(() => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(sw.dir, 'k.pem'), '-subj', '/CN=Coffer test EK', '-days', '1', '-outform', 'DER', '-out', join(sw.dir, 'ek.der')], { stdio: 'pipe' });
    der = file('ek.der');
    assert.ok(der.length > 700, 'an RSA certificate spans several NV chunks');
  });

  test('a certificate written by tpm2_nvdefine/nvwrite reads back byte for byte (exact size, zero padding, owner-read only)', async () => {
    const hex = (i: number) => `0x${i.toString(16)}`;
    tool(['tpm2_nvdefine', hex(NV_INDEX.EK_CERT_RSA), '-C', 'o', '-s', String(der.length), '-a', 'ownerread|ownerwrite|authread|authwrite|no_da']);
    tool(['tpm2_nvwrite', hex(NV_INDEX.EK_CERT_RSA), '-C', 'o', '-i', 'ek.der']);
    put('padded.der', Buffer.concat([der, Buffer.alloc(300)]));
    tool(['tpm2_nvdefine', hex(NV_INDEX.EK_CERT_ECC), '-C', 'o', '-s', String(der.length + 300), '-a', 'ownerread|ownerwrite|no_da']);
    tool(['tpm2_nvwrite', hex(NV_INDEX.EK_CERT_ECC), '-C', 'o', '-i', 'padded.der']);
    const [exact, padded, rawPadded, pub] = await withTpm(async (t) => [
      await t.readNvCertificate(NV_INDEX.EK_CERT_RSA),
      await t.readNvCertificate(NV_INDEX.EK_CERT_ECC),
      await t.readNv(NV_INDEX.EK_CERT_ECC),
      await t.client.nvReadPublic(NV_INDEX.EK_CERT_ECC),
    ]);
    assert.ok(exact.equals(der));
    assert.ok(padded.equals(der));
    assert.equal(rawPadded.length, der.length + 300);
    assert.equal(pub.attributes & TPMA_NV.AUTHREAD, 0, 'this one is read through the owner hierarchy');
  });

  test('an index Coffer defines and writes reads back the same with tpm2_nvread', async () => {
    const index = 0x01500123;
    const data = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7) & 0xff));
    await withTpm(async (t) => {
      await t.client.nvDefineSpace(index, data.length, TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.AUTHWRITE | TPMA_NV.NO_DA);
      for (let off = 0; off < data.length; off += 512) await t.client.nvWrite(index, index, data.subarray(off, off + 512), off);
    });
    tool(['tpm2_nvread', '0x1500123', '-C', 'o', '-o', 'nv.out']);
    assert.ok(file('nv.out').equals(data));
    await withTpm(async (t) => assert.ok((await t.readNv(index)).equals(data)));
  });

  test("GCE's flow: the AK template read from NV index 0x01C10003, the quote made with it verifies", async () => {
    put('ak.tmpl', akTemplate('ecc'));
    tool(['tpm2_nvdefine', '0x1c10003', '-C', 'o', '-s', String(akTemplate('ecc').length), '-a', 'ownerread|ownerwrite|authread|authwrite|no_da']);
    tool(['tpm2_nvwrite', '0x1c10003', '-C', 'o', '-i', 'ak.tmpl']);
    const nonce = createHash('sha256').update('gce').digest();
    const q = await withTpm(async (t) => t.quote(nonce, { sha256: [0, 7] }, { akTemplate: await t.readNv(NV_INDEX.GCE_AK_TEMPLATE_ECC) }));
    const ak = assembleAttestationKey([{ kind: 'tpm-public', form: 'TPMT_PUBLIC', public: parseTpmtPublic(q.akPublic) }]);
    const v = verifyTpmQuote(q.attest, q.signature, { at: new Date(), ak, nonce, pcrs: q.pcrs, expectedQualifiedSigner: q.akQualifiedName });
    assert.ok(v.checks.every((c) => c.ok));
    assert.notEqual(q.akPublic.toString('hex'), akTemplate('ecc').toString('hex'), 'the TPM fills in the unique field');
  });

  test('refusals: no such index (TPM_RC_HANDLE), never written, not a certificate, trailing garbage', async () => {
    await withTpm(async (t) => {
      const e = await rejectsCoffer(() => t.readNvCertificate(NV_INDEX.GCE_AK_CERT_ECC), 'TPM_RC_HANDLE');
      assert.equal(e.details?.handle, 1);
      await rejectsCoffer(() => t.readNvCertificate(0x81000001), 'TPM_BAD_ARGUMENT');
      await t.client.nvDefineSpace(0x01500200, 64, TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA);
      await rejectsCoffer(() => t.readNvCertificate(0x01500200), 'TPM_NV_NOT_WRITTEN');
      await t.client.nvWrite(TPM_RH.OWNER, 0x01500200, Buffer.alloc(64, 0x41), 0);
      await rejectsCoffer(() => t.readNvCertificate(0x01500200), 'TPM_NV_NOT_A_CERTIFICATE');
      await t.client.nvDefineSpace(0x01500201, der.length + 4, TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA);
      await t.client.nvWrite(TPM_RH.OWNER, 0x01500201, Buffer.concat([der, Buffer.from('junk')]), 0);
      await rejectsCoffer(() => t.readNvCertificate(0x01500201), 'TPM_NV_NOT_A_CERTIFICATE', { message: /not padding/ });
      // Wrong owner password: the TPM refuses (BAD_AUTH-class), Coffer reports the TPM's code.
      const bad = await rejectsCoffer(() => t.readNv(0x01500201, { ownerAuth: Buffer.from('wrong') }), 'TPM_RC_BAD_AUTH');
      assert.equal(bad.details?.session, 1);
    });
  });
});

describe('keys and transports', () => {
  test('EK from the TCG default templates has the name tpm2_createek gives (RSA and ECC)', async () => {
    const mine = await withTpm(async (t) => ({ rsa: await t.endorsementKey('rsa'), ecc: await t.endorsementKey('ecc') }));
    for (const kind of ['rsa', 'ecc'] as const) {
      tool(['tpm2_createek', '-c', `ek-${kind}.ctx`, '-G', kind, '-u', `ek-${kind}.pub`]);
      const out = tool(['tpm2_readpublic', '-c', `ek-${kind}.ctx`]).stdout;
      assert.equal(/^name:\s*([0-9a-f]+)/m.exec(out)?.[1], mine[kind].name.toString('hex'), kind);
    }
    assert.notEqual(mine.rsa.name.toString('hex'), mine.ecc.name.toString('hex'));
  });

  test('TPM_PT codes name the properties tpm2_getcap reports (the TPM lists MAX_RESPONSE_SIZE right after MAX_COMMAND_SIZE)', async () => {
    const theirs = tool(['tpm2_getcap', 'properties-fixed']).stdout;
    const raw = (name: string) => Number(new RegExp(`^TPM2_PT_${name}:\\s*\\n\\s*raw:\\s*(0x[0-9a-fA-F]+)`, 'm').exec(theirs)?.[1]);
    const [mine, listed] = await withTpm(async (t) => {
      const values = {
        INPUT_BUFFER: await t.client.getProperty(TPM_PT.INPUT_BUFFER),
        MAX_COMMAND_SIZE: await t.client.getProperty(TPM_PT.MAX_COMMAND_SIZE),
        MAX_RESPONSE_SIZE: await t.client.getProperty(TPM_PT.MAX_RESPONSE_SIZE),
        NV_BUFFER_MAX: await t.client.getProperty(TPM_PT.NV_BUFFER_MAX),
      };
      // GetCapability(TPM_PROPERTIES, from MAX_COMMAND_SIZE, 2): the TPM's own next property code.
      const r = parseResponse(await t.client.transport.send(buildCommand(TPM_CC.GetCapability, [], Buffer.from('00000006' + TPM_PT.MAX_COMMAND_SIZE.toString(16).padStart(8, '0') + '00000002', 'hex'))));
      return [values, [r.params.readUInt32BE(9), r.params.readUInt32BE(17)]] as const;
    });
    assert.deepEqual(listed, [TPM_PT.MAX_COMMAND_SIZE, TPM_PT.MAX_RESPONSE_SIZE]);
    for (const [name, v] of Object.entries(mine)) {
      assert.ok(Number.isInteger(raw(name)), `tpm2_getcap lists TPM2_PT_${name}`);
      assert.equal(v, raw(name), name);
    }
    assert.notEqual(mine.INPUT_BUFFER, mine.MAX_COMMAND_SIZE, 'swtpm reports different values, so a swapped code would show');
  });

  test('the MS-simulator framing (TPM_SEND_COMMAND) on the same port gives the same answers', async () => {
    const raw = await withTpm((t) => t.readPcrs({ sha256: [7, 16], sha384: [16] }));
    const framed = await withTpm(async (t) => {
      const p = await t.readPcrs({ sha256: [7, 16], sha384: [16] });
      const q = await t.quote(Buffer.alloc(32, 1), { sha256: [7] });
      assert.ok(parseTpmQuote(q.attest).extraData.equals(Buffer.alloc(32, 1)));
      return p;
    }, 'mssim');
    assert.deepEqual([...framed.get('sha256') ?? []].map(([i, v]) => [i, v.toString('hex')]), [...raw.get('sha256') ?? []].map(([i, v]) => [i, v.toString('hex')]));
    assert.ok(framed.get('sha384')?.get(16)?.equals(raw.get('sha384')?.get(16) as Buffer));
  });

  test('nothing stays loaded after successes and failures alike (a TPM without a resource manager)', async () => {
    const loaded = () => sw.tool(['tpm2_getcap', 'handles-transient']).stdout.trim() + sw.tool(['tpm2_getcap', 'handles-loaded-session']).stdout.trim();
    assert.equal(loaded(), '');
    await withTpm(async (t) => {
      const blob = await t.seal(Buffer.from('x'), { sha256: [13] });
      assert.equal((await t.unseal(blob)).toString(), 'x');
      await t.quote(Buffer.alloc(32, 5), { sha256: [13] });
      await t.policyDigestNow({ sha256: [13] });
      await t.endorsementKey('ecc');
      await t.extendPcr(13, Buffer.alloc(32, 1));
      await rejectsCoffer(() => t.unseal(blob), 'TPM_RC_POLICY_FAIL');
      const tampered = Buffer.from(blob);
      tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 1;
      await rejectsCoffer(() => t.unseal(tampered), 'TPM_RC_INTEGRITY');
      const bad = akTemplate('ecc');
      bad.writeUInt32BE(bad.readUInt32BE(4) & ~TPMA_OBJECT.sign, 4);
      await rejectsCoffer(() => t.quote(Buffer.alloc(32, 5), { sha256: [13] }, { akTemplate: bad }), 'TPM_RC_ATTRIBUTES');
    });
    assert.equal(loaded(), '');
  });
});
