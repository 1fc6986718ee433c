// `coffer tpm verify` on the real GCE and Azure quotes: exit codes, one-line failures without
// stack traces, the --json shape and values, PCR files in both forms, the event-log replay, and
// one spawn of the real bin/coffer (compiled dist/) as a user runs it. Variations go through the
// same run() in-process.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { ensureBuilt } from '../helpers/build.js';
import { runBin, runCli, type Run } from '../helpers/cli.js';
import { parseEventLog, replayEventLog } from '../../src/evidence/eventlog/index.js';
import { synthQuote } from '../evidence/tpm/vectors.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const VECTORS = join(REPO, '../shared/vectors');
const GCE = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85');
const N9009 = join(GCE, 'gce-cos-85-nonce9009');
const NO_NONCE = join(GCE, 'gce-cos-85-no-nonce');
const CA = join(VECTORS, 'gcp/ca');
const KINVOLK = join(VECTORS, 'tpm-quote/azure-vtpm-kinvolk');
const AT = ['--at', '2025-06-01T00:00:00Z'];

const gce = (dir: string, bank: string) => [
  'tpm', 'verify',
  '--quote', join(dir, `quote_${bank}.attest`),
  '--signature', join(dir, `quote_${bank}.tpmt_signature`),
  '--ak', join(dir, 'ak_pub.tpmt'),
  '--ak', join(dir, 'ak_cert.der'),
  '--ak-root', join(CA, 'tpm_ek_root_1.cer'),
  '--ak-chain', join(CA, 'tpm_ek_intermediate_2.crt'),
  '--pcrs', join(dir, 'extracted.json'),
  ...AT,
];

const work = mkdtempSync(join(tmpdir(), 'coffer-tpmcli-'));
after(() => rmSync(work, { recursive: true, force: true }));

before(ensureBuilt);

const bin = (args: string[]): Promise<Run> => runBin(args, { cwd: work });
const cli = runCli;

const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');
const STACK = /^\s+at .+[:(]/m;

function failsWithOneLine(r: Run, exit: number, code: string): string {
  assert.equal(r.code, exit, `exit status (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.doesNotMatch(r.stderr, STACK, 'no stack trace');
  const l = lines(r.stderr);
  assert.equal(l.length, 1, `exactly one line on stderr, got:\n${r.stderr}`);
  assert.match(l[0] as string, new RegExp(`^coffer: ${code}: \\S`));
  return l[0] as string;
}

interface Json {
  ok: boolean;
  claims: {
    type: string;
    qualifiedSigner: string;
    extraData: string;
    clock: { clock: string; resetCount: number; restartCount: number; safe: boolean };
    firmwareVersion: string;
    pcrSelection: { bank: string; pcrs: number[] }[];
    pcrDigest: string;
    signature: { alg: string; hash: string };
    ak: { type: string; key: string; name: string | null; attributes: { names: string[]; restricted: boolean } | null; certificate: { issuer: string; notAfter: string } | null; forms: string[] } | null;
    pcrs: Record<string, Record<string, string>> | null;
  } | null;
  checks: { name: string; ok: boolean; notChecked?: boolean; description: string; code?: string; expected?: string; found?: string }[];
  error?: { code: string; message: string };
}

const tmp = (name: string, data: Buffer | string): string => {
  const p = join(work, name);
  writeFileSync(p, data);
  return p;
};

/** The kinvolk Azure quote's raw RSASSA-SHA256 signature as a TPMT_SIGNATURE file. */
function kinvolkSig(): string {
  const raw = readFileSync(join(KINVOLK, 'derived/quote.sig'));
  const head = Buffer.from([0x00, 0x14, 0x00, 0x0b, raw.length >> 8, raw.length & 0xff]);
  return tmp('kinvolk.tpmt_signature', Buffer.concat([head, raw]));
}

/** PCR values in the tpm2-tools 5.x `-o` layout (one bank, 8 values per TPML_DIGEST). */
function tss(values: Buffer[], hash = 0x000b): Buffer {
  const sel = Buffer.alloc(132);
  sel.writeUInt32LE(1, 0);
  sel.writeUInt16LE(hash, 4);
  sel[6] = 3;
  for (let i = 0; i < values.length; i++) sel[7 + (i >> 3)] = (sel[7 + (i >> 3)] as number) | (1 << (i & 7));
  const lists: Buffer[] = [];
  for (let off = 0; off < values.length; off += 8) {
    const l = Buffer.alloc(532);
    const chunk = values.slice(off, off + 8);
    l.writeUInt32LE(chunk.length, 0);
    chunk.forEach((v, j) => {
      l.writeUInt16LE(v.length, 4 + j * 66);
      v.copy(l, 6 + j * 66);
    });
    lists.push(l);
  }
  const n = Buffer.alloc(4);
  n.writeUInt32LE(lists.length);
  return Buffer.concat([sel, n, ...lists]);
}

describe('coffer tpm verify: GCE Shielded VM quotes', () => {
  for (const bank of ['sha1', 'sha256', 'sha384']) {
    test(`${bank} bank with nonce, AK certificate chain and event log → VERIFIED, exit 0`, async () => {
      const r = await cli([...gce(N9009, bank), '--nonce', '9009', '--eventlog', join(N9009, 'event_log.bin')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const out = lines(r.stdout);
      assert.match(out[0] as string, /^VERIFIED {2}TPM 2\.0 quote, RSASSA\/SHA256 by AK RSA-2048, AK certificate chained to tpm_ek_v1_cloud_host_root-signer-0-2018-04-06/);
      assert.ok(out.some((l) => /Extra data \(nonce\)\s+9009$/.test(l)));
      assert.ok(out.some((l) => l.includes('AK name') && l.endsWith('000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4')));
      assert.ok(out.some((l) => new RegExp(`ok {3}eventlog\\.${bank} +the event log replays to the quoted ${bank} PCRs 0,1,2,3,4,5,6,7,8,9;`).test(l)));
      assert.ok(!out.some((l) => l.includes('FAIL')));
    });
  }

  test('--json: claims and checks with the vector values', async () => {
    const r = await cli([...gce(N9009, 'sha256'), '--nonce', '9009', '--eventlog', join(N9009, 'event_log.bin'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Json;
    assert.equal(j.ok, true);
    assert.equal(j.error, undefined);
    const c = j.claims;
    assert.ok(c);
    assert.equal(c.type, 'quote');
    assert.equal(c.extraData, '9009');
    assert.equal(c.qualifiedSigner, '000bde01fe4b4ade2f8b7ae19b8a8897e0cb77ae417731d8ce38697ec4f6c095030a');
    assert.deepEqual(c.clock, { clock: '8219159552', resetCount: 10, restartCount: 0, safe: true });
    assert.equal(c.firmwareVersion, '0x2016051100162800');
    assert.deepEqual(c.pcrSelection, [{ bank: 'sha256', pcrs: Array.from({ length: 24 }, (_, i) => i) }]);
    assert.equal(c.pcrDigest, '048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808');
    assert.deepEqual(c.signature, { alg: 'rsassa', hash: 'sha256' });
    assert.equal(c.ak?.type, 'rsa');
    assert.equal(c.ak?.name, '000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4');
    assert.deepEqual(c.ak?.attributes?.names, ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'restricted', 'sign']);
    assert.deepEqual(c.ak?.forms, ['TPMT_PUBLIC', 'X.509 certificate']);
    assert.equal(c.ak?.certificate?.notAfter, '2051-08-24T23:16:05.000Z');
    assert.equal(c.pcrs?.sha256?.['0'], '0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf');
    assert.deepEqual(j.checks.map((x) => x.name), ['tpm.signature', 'tpm.format', 'tpm.ak.attributes', 'tpm.ak.key', 'pki.signature', 'pki.signature', 'pki.anchor', 'pki.validity', 'tpm.ak.certificate', 'tpm.qualified-signer', 'tpm.nonce', 'tpm.pcr-digest', 'eventlog.sha256']);
    assert.ok(j.checks.every((x) => x.ok));
  });

  test('the no-nonce quote: --nonce required (exit 2); with --no-nonce-check it verifies with a loud warning', async () => {
    failsWithOneLine(await cli(gce(NO_NONCE, 'sha1')), 2, 'TPM_NONCE_REQUIRED');
    const r = await cli([...gce(NO_NONCE, 'sha1'), '--no-nonce-check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^coffer: WARNING: --no-nonce-check: the quote was NOT checked for freshness/);
    // M3: a check not performed is shown as `--`, and named in a NOT CHECKED header line.
    assert.ok(lines(r.stdout).some((l) => /^ {2}-- {3}tpm\.nonce +NOT CHECKED: WARNING: freshness is unproven/.test(l)));
    assert.match(lines(r.stdout)[1] as string, /^ {2}NOT CHECKED: tpm\.nonce \(see below/);
    const j = JSON.parse((await cli([...gce(NO_NONCE, 'sha1'), '--no-nonce-check', '--json'])).stdout) as Json;
    assert.equal(j.ok, true);
    assert.match(j.checks.find((x) => x.name === 'tpm.nonce')?.description ?? '', /^NOT CHECKED: WARNING: freshness is unproven.*extraData is empty/);
    assert.equal(j.checks.find((x) => x.name === 'tpm.nonce')?.notChecked, true);
    failsWithOneLine(await cli([...gce(NO_NONCE, 'sha1'), '--no-nonce-check', '--nonce', '00']), 2, 'USAGE');
  });

  test('wrong nonce → exit 1 TPM_NONCE_MISMATCH; a flipped quote byte → TPM_BAD_SIGNATURE (and in --json)', async () => {
    const line = failsWithOneLine(await cli([...gce(N9009, 'sha256'), '--nonce', '9008']), 1, 'TPM_NONCE_MISMATCH');
    assert.match(line, /\(expected 9008, found 9009\)|extraData is not the expected nonce/);
    const attest = Buffer.from(readFileSync(join(N9009, 'quote_sha256.attest')));
    attest[50] = (attest[50] as number) ^ 1;
    const bad = tmp('flipped.attest', attest);
    const args = gce(N9009, 'sha256');
    args[args.indexOf('--quote') + 1] = bad;
    failsWithOneLine(await cli([...args, '--nonce', '9009']), 1, 'TPM_BAD_SIGNATURE');
    const r = await cli([...args, '--nonce', '9009', '--json']);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.stdout) as Json;
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'TPM_BAD_SIGNATURE');
    assert.deepEqual(j.checks.map((c) => [c.name, c.ok]), [['tpm.signature', false]]);
    assert.equal(j.claims?.pcrSelection[0]?.bank, 'sha256', 'claims of the unverified quote are still shown');
  });

  test('AK certificate without a root → exit 2; chained to the wrong root → exit 1 PKI_CHAIN_INCOMPLETE', async () => {
    const noRoot = gce(N9009, 'sha1').filter((a, i, all) => a !== '--ak-root' && all[i - 1] !== '--ak-root');
    failsWithOneLine(await cli([...noRoot, '--nonce', '9009']), 2, 'TPM_AK_ROOT_REQUIRED');
    const wrong = gce(N9009, 'sha1');
    wrong[wrong.indexOf('--ak-root') + 1] = join(CA, 'gcp_ek_ak_ca_root.crt');
    failsWithOneLine(await cli([...wrong, '--nonce', '9009']), 1, 'PKI_CHAIN_INCOMPLETE');
    const other = gce(N9009, 'sha1');
    other[other.indexOf(join(N9009, 'ak_cert.der'))] = join(VECTORS, 'gcp/gce-ek-ak-certs/pca_tpm_rsa_sign_cert.pem');
    failsWithOneLine(await cli([...other, '--nonce', '9009']), 1, 'TPM_AK_MISMATCH');
  });

  test('--eventlog alone cannot stand for the 24 quoted PCRs (PCRs 10-23 are not in the log); a foreign log diverges', async () => {
    const args = gce(N9009, 'sha256').filter((a, i, all) => a !== '--pcrs' && all[i - 1] !== '--pcrs');
    const line = failsWithOneLine(await cli([...args, '--nonce', '9009', '--eventlog', join(N9009, 'event_log.bin')]), 2, 'TPM_PCR_MISSING');
    assert.match(line, /sha256:10, sha256:11/);
    // The COS 85 AMD-SEV log (another GCE boot) agrees up to PCR 4; PCR 5 (GPT) differs.
    const r = await cli([...gce(N9009, 'sha256'), '--nonce', '9009', '--eventlog', join(VECTORS, 'tpm-eventlog/go-eventlog/cos-85-amd-sev.bin')]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(lines(r.stderr)[0] as string, /^coffer: TPM_EVENTLOG_MISMATCH: PCR sha256:5: the event log does not replay to the quoted value; .* from event 18 at the earliest \(expected 158cd54b/);
    // A SHA-1-only log cannot be compared with a SHA-256 quote at all.
    failsWithOneLine(await cli([...gce(N9009, 'sha256'), '--nonce', '9009', '--eventlog', join(VECTORS, 'tpm-eventlog/go-eventlog/debian-10.bin')]), 1, 'TPM_EVENTLOG_NO_COMMON_BANK');
  });

  test('--expect-pcrs: a reference value that differs → exit 1 TPM_PCR_VALUE_MISMATCH', async () => {
    const ref = tmp('ref.json', JSON.stringify({ sha256: { '0': '0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf', '7': '00'.repeat(32) } }));
    const r = await cli([...gce(N9009, 'sha256'), '--nonce', '9009', '--expect-pcrs', ref]);
    assert.equal(r.code, 1);
    assert.equal(lines(r.stderr).length, 1);
    assert.match(r.stderr, /^coffer: TPM_PCR_VALUE_MISMATCH: PCR sha256:7 differs from its reference value \(expected 0{64}, found 3365d7fa/);
  });

  test('usage: a missing --quote, bad --nonce hex, an unreadable file → exit 2, one line', async () => {
    const r = await cli(['tpm', 'verify', '--signature', 'x', '--ak', 'y', '--nonce', '00']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--quote/);
    failsWithOneLine(await cli([...gce(N9009, 'sha1'), '--nonce', 'zz']), 2, 'BAD_HEX');
    failsWithOneLine(await cli([...gce(N9009, 'sha1'), '--nonce', '9009', '--pcrs', join(work, 'absent.json')]), 2, 'FILE_UNREADABLE');
    failsWithOneLine(await cli([...gce(N9009, 'sha1'), '--nonce', '9009', '--at', '2025-13-01']), 2, 'BAD_TIME');
  });
});

describe('coffer tpm verify --eventlog: the quote must cover the log (review H3, exp5)', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const akFile = () => tmp('synth-ak.pem', key.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const log = join(N9009, 'event_log.bin');
  const replayed = replayEventLog(parseEventLog(readFileSync(log))).pcrs.sha256 as Record<number, Buffer>;
  const select = (pcrs: number[]) => {
    const bitmap = Buffer.alloc(3);
    for (const p of pcrs) bitmap[p >> 3] = (bitmap[p >> 3] as number) | (1 << (p & 7));
    return Buffer.concat([Buffer.from('00000001000b03', 'hex'), bitmap]);
  };
  const digestOf = (pcrs: number[]) => createHash('sha256').update(Buffer.concat(pcrs.map((p) => replayed[p] as Buffer))).digest();
  const quoteArgs = (name: string, pcrs: number[]) => {
    const q = synthQuote(select(pcrs), digestOf(pcrs), key.privateKey, Buffer.from('9009', 'hex'));
    return ['tpm', 'verify', '--quote', tmp(`${name}.msg`, q.attest), '--signature', tmp(`${name}.sig`, q.signature), '--ak', akFile(), '--nonce', '9009'];
  };

  test('a quote selecting only PCR 0, with the PCR values taken from the log → exit 1 TPM_EVENTLOG_NOT_COVERED', async () => {
    const line = failsWithOneLine(await cli([...quoteArgs('pcr0', [0]), '--eventlog', log]), 1, 'TPM_EVENTLOG_NOT_COVERED');
    assert.match(line, /needed: .*sha256:0,1,2,3,4,5,6,7,8,9/);
    const j = JSON.parse((await cli([...quoteArgs('pcr0', [0]), '--eventlog', log, '--json'])).stdout) as Json;
    assert.deepEqual([j.ok, j.error?.code], [false, 'TPM_EVENTLOG_NOT_COVERED']);
  });

  test('an empty selection → exit 1 TPM_EMPTY_SELECTION; sizeofSelect 0 → exit 2 TPM_BAD_PCR_SELECTION', async () => {
    const empty = synthQuote(Buffer.from('00000000', 'hex'), createHash('sha256').digest(), key.privateKey, Buffer.from('9009', 'hex'));
    failsWithOneLine(await cli(['tpm', 'verify', '--quote', tmp('empty.msg', empty.attest), '--signature', tmp('empty.sig', empty.signature), '--ak', akFile(), '--nonce', '9009', '--eventlog', log]), 1, 'TPM_EMPTY_SELECTION');
    const short = synthQuote(Buffer.from('00000001000b00', 'hex'), createHash('sha256').digest(), key.privateKey, Buffer.from('9009', 'hex'));
    failsWithOneLine(await cli(['tpm', 'verify', '--quote', tmp('short.msg', short.attest), '--signature', tmp('short.sig', short.signature), '--ak', akFile(), '--nonce', '9009', '--eventlog', log]), 2, 'TPM_BAD_PCR_SELECTION');
  });

  test('a quote selecting every PCR the log extends (0-9) → VERIFIED from the log alone', async () => {
    const r = await cli([...quoteArgs('all', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), '--eventlog', log]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lines(r.stdout).some((l) => /ok {3}eventlog\.replay +.*the quote covers every PCR the log extends in sha256/.test(l)));
  });

  test('with --pcrs, PCRs the log extends but the quote does not select are NOT CHECKED (--), not passed', async () => {
    const sel = [0, 1, 2, 3, 4, 5, 6, 7];
    const pcrs = tmp('sel.json', JSON.stringify({ sha256: Object.fromEntries(sel.map((p) => [String(p), (replayed[p] as Buffer).toString('hex')])) }));
    const r = await cli([...quoteArgs('pcr0-7', sel), '--pcrs', pcrs, '--eventlog', log]);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.ok(out.some((l) => /^ {2}-- {3}eventlog\.sha256\.unquoted +NOT CHECKED: the event log extends sha256 PCR\(s\) 8,9, which the quote does not select/.test(l)), r.stdout);
    assert.match(out[1] as string, /^ {2}NOT CHECKED: .*eventlog\.sha256\.unquoted/);
  });
});

describe('coffer tpm verify: Azure vTPM quote', () => {
  test('PEM AK, JSON PCRs and the same PCRs as a tpm2-tools file → VERIFIED; a changed PCR → TPM_PCR_DIGEST_MISMATCH', async () => {
    const sig = kinvolkSig();
    const base = ['tpm', 'verify', '--quote', join(KINVOLK, 'derived/quote.msg'), '--signature', sig, '--ak', join(KINVOLK, 'akpub.pem'), '--nonce', Buffer.from('challenge').toString('hex')];
    const r = await cli([...base, '--pcrs', join(KINVOLK, 'derived/pcrs_sha256.json'), '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as Json;
    assert.equal(j.claims?.extraData, '6368616c6c656e6765');
    assert.equal(j.claims?.ak?.name, null);
    assert.match(j.checks.find((c) => c.name === 'tpm.ak.attributes')?.description ?? '', /^NOT CHECKED/);

    const values = Object.values(JSON.parse(readFileSync(join(KINVOLK, 'derived/pcrs_sha256.json'), 'utf8')) as Record<string, string>).map((h) => Buffer.from(h, 'hex'));
    assert.equal(values.length, 24);
    const ok = await cli([...base, '--pcrs', tmp('kinvolk.pcrs', tss(values))]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^VERIFIED {2}TPM 2\.0 quote, RSASSA\/SHA256 by AK RSA-2048\n/);
    const changed = values.map((v) => Buffer.from(v));
    (changed[4] as Buffer)[0] = ((changed[4] as Buffer)[0] as number) ^ 1;
    failsWithOneLine(await cli([...base, '--pcrs', tmp('kinvolk-bad.pcrs', tss(changed))]), 1, 'TPM_PCR_DIGEST_MISMATCH');
    // The quote as a TPM2B_ATTEST (size-prefixed) is accepted too.
    const msg = readFileSync(join(KINVOLK, 'derived/quote.msg'));
    const t2b = tmp('kinvolk.tpm2b', Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]));
    const args = [...base];
    args[args.indexOf('--quote') + 1] = t2b;
    assert.equal((await cli([...args, '--pcrs', join(KINVOLK, 'derived/pcrs_sha256.json')])).code, 0);
  });
});

describe('bin/coffer (spawned, compiled)', () => {
  test('verifies a GCE quote as JSON (exit 0), and fails a wrong nonce in one line (exit 1)', async () => {
    const r = await bin([...gce(N9009, 'sha384'), '--nonce', '9009', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Json;
    assert.equal(j.ok, true);
    assert.equal(j.claims?.pcrDigest, '6c250f48d304517716f4a5a9127bf8762a80b63df783cb724630b180a3a66bea');
    assert.equal(j.claims?.pcrSelection[0]?.bank, 'sha384');
    const bad = await bin([...gce(N9009, 'sha384'), '--nonce', '01']);
    failsWithOneLine(bad, 1, 'TPM_NONCE_MISMATCH');
  });
});
