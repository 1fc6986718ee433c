// The CLI on the real SEV-SNP vectors: exit codes, one-line failures without stack traces, --json
// shape and values against the manifest, the configfs-tsm forms, and --fetch against a local KDS on
// 127.0.0.1 serving AMD's real certificates.
//
// `bin` spawns the real `bin/coffer` (compiled dist/), as a user runs it; every behaviour the issue
// names is checked that way at least once. A node start costs ~0.5 s of CPU, so the many variations
// (each vector's values, each bad flag) go through `cli`, which calls the same `run()` in-process
// with its output captured.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as cborDecode, encode as cborEncode } from 'cbor2';
import { makeFakeAmd } from '../helpers/amd-ca.js';
import { ensureBuilt } from '../helpers/build.js';
import { runBin, runCli, type Run } from '../helpers/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const VECTORS = join(REPO, '../shared/vectors');
const SNP = join(VECTORS, 'amd-snp');
const CERTS = join(SNP, 'amd-certs');

const manifest = JSON.parse(readFileSync(join(VECTORS, 'manifest.json'), 'utf8')) as { files: { file: string; expected?: Record<string, unknown> }[] };
function expected(file: string): Record<string, string | number> {
  const e = manifest.files.find((f) => f.file === file);
  assert.ok(e, `${file} in manifest`);
  return (e.expected ?? {}) as Record<string, string | number>;
}

// go-sev-guest's real Milan report (v2, DEBUG set) and its VCEK.
const GSG = join(SNP, 'go-sev-guest/attestation.bin');
const GSG_VCEK = join(SNP, 'go-sev-guest/vcek.der');
const MILAN_CHAIN = join(CERTS, 'ask_ark_milan.pem');
const GSG_ARGS = [GSG, '--vcek', GSG_VCEK, '--chain', MILAN_CHAIN];
const AT = ['--at', '2025-06-01T00:00:00Z'];
const TSM_CBOR = join(SNP, 'veraison/sevsnp-tsm-report.cbor');

const work = mkdtempSync(join(tmpdir(), 'coffer-clitest-'));
after(() => rmSync(work, { recursive: true, force: true }));

before(ensureBuilt);

// ---------------------------------------------------------------------------------------

/** Spawns the real bin/coffer; no test may write to the user's cache or reach AMD: an empty cache dir, and --fetch only with --kds-url. */
const bin = (args: string[], opts: { stdin?: Buffer } = {}): Promise<Run> => runBin(args, { cwd: work, env: { COFFER_CACHE_DIR: join(work, 'default-cache') }, ...opts });
/** The same CLI in-process: run() with stdout and stderr captured as processIo would write them. */
const cli = runCli;

const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');
const STACK = /^\s+at .+[:(]/m;

/** Exit `code`, and stderr is exactly one line `coffer: CODE: ...`, no stack trace, nothing on stdout. */
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
  claims: Record<string, unknown> & {
    policy: Record<string, unknown>;
    reportedTcb: Record<string, unknown>;
    currentTcb: Record<string, unknown>;
    committedTcb: Record<string, unknown>;
  };
  checks: { name: string; ok: boolean; description: string; code?: string }[];
  error?: { code: string; message: string };
}

/** stdout is exactly one JSON object (and nothing else). */
function oneJson(r: Run): Json {
  const text = r.stdout.trim();
  assert.ok(text.startsWith('{') && text.endsWith('}'), `one JSON object on stdout, got:\n${r.stdout}`);
  return JSON.parse(text) as Json;
}

/** Every binary claim is lowercase hex of the right size. */
function assertHexClaims(c: Json['claims']): void {
  const sizes: Record<string, number> = { measurement: 48, reportData: 64, hostData: 32, chipId: 64, familyId: 16, imageId: 16, idKeyDigest: 48, authorKeyDigest: 48, reportId: 32, reportIdMa: 32 };
  for (const [k, n] of Object.entries(sizes)) {
    assert.equal(typeof c[k], 'string', k);
    assert.match(c[k] as string, new RegExp(`^[0-9a-f]{${n * 2}}$`), `${k} is ${n} bytes of lowercase hex`);
  }
  for (const t of ['reportedTcb', 'currentTcb', 'committedTcb'] as const) {
    assert.match(String(c[t].raw), /^[0-9a-f]{16}$/, `${t}.raw`);
    for (const k of ['bootloader', 'tee', 'snp', 'microcode']) assert.equal(typeof c[t][k], 'number', `${t}.${k}`);
  }
  assert.ok(['vcek', 'vlek'].includes(c.signingKey as string));
  assert.equal(typeof c.vmpl, 'number');
  assert.equal(typeof c.version, 'number');
  assert.equal(typeof c.policy.debug, 'boolean');
  assert.equal(typeof c.policy.smt, 'boolean');
  assert.equal(typeof c.policy.migrateMa, 'boolean');
}

function assertChecks(j: Json): void {
  assert.ok(Array.isArray(j.checks) && j.checks.length > 0);
  for (const c of j.checks) {
    assert.equal(typeof c.name, 'string');
    assert.match(c.name, /^[a-z]+(\.[a-z-]+)+$/);
    assert.equal(typeof c.ok, 'boolean');
    assert.equal(typeof c.description, 'string');
    assert.ok(c.description.length > 0);
  }
}

/** "bl=2 tee=0 snp=5 ucode=68" → the JSON TCB components. */
function tcb(s: string): Record<string, number> {
  const m = /bl=(\d+) tee=(\d+) snp=(\d+) ucode=(\d+)/.exec(s);
  assert.ok(m, s);
  return { bootloader: Number(m[1]), tee: Number(m[2]), snp: Number(m[3]), microcode: Number(m[4]) };
}
function tcbOf(t: Record<string, unknown>): Record<string, number> {
  return { bootloader: t.bootloader as number, tee: t.tee as number, snp: t.snp as number, microcode: t.microcode as number };
}

function flipped(src: string, offset: number, name: string): string {
  const d = readFileSync(src);
  d[offset] = (d[offset] as number) ^ 0x01;
  const p = join(work, name);
  writeFileSync(p, d);
  return p;
}

/** The configfs-tsm CBOR's parts, decoded with cbor2 (not Coffer's decoder). */
function tsmParts(): { outblob: Uint8Array; auxblob: Uint8Array; provider: string } {
  const m = cborDecode(readFileSync(TSM_CBOR)) as { outblob: Uint8Array; auxblob: Uint8Array; provider: string };
  return m;
}

// ---------------------------------------------------------------------------------------

describe('coffer snp verify: the real go-sev-guest report', { concurrency: 3 }, () => {
  test('with --allow-debug: exit 0, VERIFIED, chain to the pinned ARK-Milan', async () => {
    const r = await bin(['snp', 'verify', ...GSG_ARGS, '--allow-debug', ...AT]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const first = lines(r.stdout)[0] as string;
    assert.match(first, /^VERIFIED\s+SEV-SNP report v2, Milan, signed by VCEK, chain to ARK-Milan \(pinned\)$/);
    assert.match(r.stdout, new RegExp(`measurement ${expected('amd-snp/go-sev-guest/attestation.bin').measurement}`));
    assert.match(r.stdout, /ok\s+snp\.signature/);
    assert.match(r.stdout, /ok\s+snp\.policy\.debug\s+guest policy allows debugging \(explicitly accepted\)/);
    assert.doesNotMatch(r.stdout, /FAIL/);
  });

  test('--json: exactly one object, ok:true, claims equal to the manifest, every check named and passed', async () => {
    const r = await bin(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--json', ...AT]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const j = oneJson(r);
    const exp = expected('amd-snp/go-sev-guest/attestation.bin');
    assert.equal(j.ok, true);
    assert.equal(j.error, undefined);
    assertHexClaims(j.claims);
    assertChecks(j);
    assert.ok(j.checks.every((c) => c.ok));
    for (const name of ['snp.signature', 'pki.signature', 'pki.anchor', 'pki.validity', 'snp.tcb', 'snp.chip-id', 'snp.policy.debug']) {
      assert.ok(j.checks.some((c) => c.name === name), `check ${name}`);
    }
    const c = j.claims;
    assert.equal(c.version, exp.version);
    assert.equal(c.product, 'Milan');
    assert.equal(c.signingKey, 'vcek');
    assert.equal(c.measurement, exp.measurement);
    assert.equal(c.reportData, exp.report_data);
    assert.equal(c.hostData, exp.host_data);
    assert.equal(c.chipId, exp.chip_id);
    assert.equal(c.reportId, exp.report_id);
    assert.equal(c.vmpl, exp.vmpl);
    assert.equal(c.policy.raw, '0xb0000');
    assert.equal(c.policy.debug, true);
    assert.equal(c.policy.smt, true);
    assert.equal(c.policy.migrateMa, false);
    assert.deepEqual(tcbOf(c.reportedTcb), tcb(String(exp.reported_tcb)));
    assert.equal(c.reportedTcb.raw, '4405000000000002');
    assert.equal(BigInt(`0x${String(c.reportedTcb.raw)}`).toString(), String(exp.reported_tcb).split(' ')[0]);
    assert.deepEqual(tcbOf(c.currentTcb), tcb(String(exp.reported_tcb)));
    assert.deepEqual(tcbOf(c.committedTcb), tcb(String(exp.reported_tcb)));
    assert.equal((c.platformInfo as { raw: string }).raw, `0x${Number(exp.platform_info).toString(16)}`);
    assert.equal(c.currentFirmware, '1.49.3');
  });

  test('without --allow-debug: exit 1, one stderr line naming SNP_DEBUG_ALLOWED', async () => {
    const r = await bin(['snp', 'verify', ...GSG_ARGS, ...AT]);
    const line = failsWithOneLine(r, 1, 'SNP_DEBUG_ALLOWED');
    assert.match(line, /DEBUG/);
  });

  test('without --allow-debug, --json: {ok:false, error:{code:SNP_DEBUG_ALLOWED}, claims, checks}', async () => {
    const r = await cli(['snp', 'verify', ...GSG_ARGS, '--json', ...AT]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const j = oneJson(r);
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'SNP_DEBUG_ALLOWED');
    assertChecks(j);
    const failed = j.checks.filter((c) => !c.ok);
    assert.deepEqual(failed.map((c) => [c.name, c.code]), [['snp.policy.debug', 'SNP_DEBUG_ALLOWED']]);
    assert.ok(j.checks.find((c) => c.name === 'snp.signature')?.ok, 'the signature itself verified');
    assert.equal(j.claims.measurement, expected('amd-snp/go-sev-guest/attestation.bin').measurement);
  });

  // Offsets: version, policy, report data, measurement, last signed byte, r low byte, r's top
  // (must-be-zero) bytes, s high byte.
  for (const off of [0x00, 0x08, 0x2a, 0x90, 0x29f, 0x2a0, 0x2e0, 0x2e8 + 47]) {
    test(`one flipped byte at 0x${off.toString(16)}: exit 1, one line SNP_BAD_SIGNATURE, no stack trace${off === 0x90 ? ' (bin/coffer)' : ''}`, async () => {
      const p = flipped(GSG, off, `flip-${off}.bin`);
      const exec = off === 0x90 ? bin : cli;
      const r = await exec(['snp', 'verify', p, '--vcek', GSG_VCEK, '--chain', MILAN_CHAIN, '--allow-debug', ...AT]);
      failsWithOneLine(r, 1, 'SNP_BAD_SIGNATURE');
    });
  }

  test('flipped byte with --json: {ok:false, error:{code:SNP_BAD_SIGNATURE}, checks ending in the failed snp.signature}', async () => {
    const p = flipped(GSG, 0x90, 'flip-json.bin');
    const r = await bin(['snp', 'verify', p, '--vcek', GSG_VCEK, '--chain', MILAN_CHAIN, '--allow-debug', '--json', ...AT]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const j = oneJson(r);
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'SNP_BAD_SIGNATURE');
    assertChecks(j);
    const last = j.checks[j.checks.length - 1];
    assert.equal(last?.name, 'snp.signature');
    assert.equal(last?.ok, false);
    assert.equal(last?.code, 'SNP_BAD_SIGNATURE');
  });

  test('another chip\'s real VCEK: exit 1, SNP_BAD_SIGNATURE saying which chip each is', async () => {
    const r = await cli(['snp', 'verify', GSG, '--vcek', join(SNP, 'trustee/test-vcek.der'), '--chain', MILAN_CHAIN, '--allow-debug', ...AT]);
    const line = failsWithOneLine(r, 1, 'SNP_BAD_SIGNATURE');
    assert.match(line, /c38427a30d4c7af9/);
    assert.match(line, /3ac3fe21e13fb099/);
  });

  test('the Genoa chain for a Milan VCEK: exit 1, SNP_WRONG_PRODUCT; no chain at all: PKI_CHAIN_INCOMPLETE', async () => {
    const r1 = await cli(['snp', 'verify', GSG, '--vcek', GSG_VCEK, '--chain', join(CERTS, 'ask_ark_genoa.pem'), '--allow-debug', ...AT]);
    failsWithOneLine(r1, 1, 'SNP_WRONG_PRODUCT');
    const r2 = await cli(['snp', 'verify', GSG, '--vcek', GSG_VCEK, '--allow-debug', ...AT]);
    failsWithOneLine(r2, 1, 'PKI_CHAIN_INCOMPLETE');
  });

  test('--at after the VCEK expired (2029-09-24): exit 1, PKI_EXPIRED', async () => {
    failsWithOneLine(await cli(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--at', '2030-01-01']), 1, 'PKI_EXPIRED');
  });

  test('--expect-measurement: the right one → 0; a wrong one → 1 SNP_MEASUREMENT_MISMATCH; any of several → 0', async () => {
    const m = String(expected('amd-snp/go-sev-guest/attestation.bin').measurement);
    const wrong = `${m.slice(0, -2)}00`;
    const ok = await bin(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-measurement', m, ...AT]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok\s+snp\.measurement/);
    const upper = await cli(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-measurement', `0x${m.toUpperCase()}`, ...AT]);
    assert.equal(upper.code, 0, upper.stderr);
    const bad = await bin(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-measurement', wrong, ...AT]);
    const line = failsWithOneLine(bad, 1, 'SNP_MEASUREMENT_MISMATCH');
    assert.ok(line.includes(wrong) && line.includes(m), 'says what was expected and what was found');
    const either = await cli(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-measurement', wrong, '--expect-measurement', m, ...AT]);
    assert.equal(either.code, 0, either.stderr);
  });

  test('--expect-report-data: full value and zero-padded prefix → 0; a wrong one → 1 SNP_REPORT_DATA_MISMATCH', async () => {
    const rd = String(expected('amd-snp/go-sev-guest/attestation.bin').report_data);
    for (const v of [rd, '0102030405', '01020304050000']) {
      const r = await (v === rd ? bin : cli)(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-report-data', v, ...AT]);
      assert.equal(r.code, 0, `${v}: ${r.stderr}`);
    }
    for (const v of ['0102030406', `${rd.slice(0, -2)}01`, '01020304']) {
      const r = await (v === '0102030406' ? bin : cli)(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-report-data', v, ...AT]);
      failsWithOneLine(r, 1, 'SNP_REPORT_DATA_MISMATCH');
    }
    const j = oneJson(await cli(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--expect-report-data', '0102030406', '--json', ...AT]));
    assert.equal(j.error?.code, 'SNP_REPORT_DATA_MISMATCH');
  });

  test('the report as hex text, as base64, and on stdin verifies the same', async () => {
    const raw = readFileSync(GSG);
    const hexFile = join(work, 'gsg.hex');
    writeFileSync(hexFile, `${raw.toString('hex').replace(/.{64}/g, '$&\n')}`);
    const b64File = join(work, 'gsg.b64');
    writeFileSync(b64File, raw.toString('base64'));
    for (const [src, stdin] of [[hexFile, undefined], [b64File, undefined], ['-', raw]] as const) {
      // stdin needs a real process; the file forms run in-process.
      const r = stdin ? await bin(['snp', 'verify', src, '--vcek', GSG_VCEK, '--chain', MILAN_CHAIN, '--allow-debug', '--json', ...AT], { stdin }) : await cli(['snp', 'verify', src, '--vcek', GSG_VCEK, '--chain', MILAN_CHAIN, '--allow-debug', '--json', ...AT]);
      assert.equal(r.code, 0, `${src}: ${r.stderr}`);
      assert.equal(oneJson(r).claims.measurement, expected('amd-snp/go-sev-guest/attestation.bin').measurement);
    }
  });
});

describe('coffer snp verify: the other real reports', { concurrency: 3 }, () => {
  test('trustee Milan report with an ID block: exit 0 without --allow-debug; claims equal the manifest', async () => {
    const file = 'amd-snp/trustee/test-report.bin';
    const exp = expected(file);
    const r = await cli(['snp', 'verify', join(VECTORS, file), '--vcek', join(SNP, 'trustee/test-vcek.der'), '--chain', MILAN_CHAIN, '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = oneJson(r);
    assert.equal(j.ok, true);
    assertHexClaims(j.claims);
    const c = j.claims;
    assert.equal(c.version, exp.version);
    assert.equal(c.product, 'Milan');
    assert.equal(c.guestSvn, exp.guest_svn);
    assert.equal(c.policy.raw, exp.policy);
    assert.equal(c.policy.debug, false);
    assert.equal(c.familyId, exp.family_id);
    assert.equal(c.imageId, exp.image_id);
    assert.equal(c.vmpl, exp.vmpl);
    assert.equal(c.reportData, exp.report_data);
    assert.equal(c.measurement, exp.measurement);
    assert.equal(c.idKeyDigest, exp.id_key_digest);
    assert.equal(c.chipId, exp.chip_id);
    assert.deepEqual(tcbOf(c.currentTcb), tcb(String(exp.current_tcb)));
    assert.deepEqual(tcbOf(c.reportedTcb), tcb(String(exp.reported_tcb)));
    assert.equal(c.currentFirmware, exp.firmware);
  });

  test('VLEK report: --at 2025-06-01 → 0 with signingKey vlek and the manifest values; --at 2026-01-01 → 1 PKI_EXPIRED', async () => {
    const file = 'amd-snp/trustee/test-vlek-report.bin';
    const exp = expected(file);
    const args = ['snp', 'verify', join(VECTORS, file), '--vcek', join(SNP, 'trustee/test-vlek.der'), '--chain', join(CERTS, 'ask_ark_milan_vlek.pem')];
    const ok = await bin([...args, '--at', '2025-06-01']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^VERIFIED\s+SEV-SNP report v3, Milan, signed by VLEK, chain to ARK-Milan \(pinned\)/);
    const j = oneJson(await cli([...args, '--at', '2025-06-01', '--json']));
    const c = j.claims;
    assertHexClaims(c);
    assert.equal(c.signingKey, 'vlek');
    assert.equal(c.version, exp.version);
    assert.equal(c.vmpl, exp.vmpl);
    assert.equal(c.policy.raw, exp.policy);
    assert.equal((c.platformInfo as { raw: string }).raw, exp.platform_info);
    assert.equal(c.chipId, '0'.repeat(128));
    assert.equal(c.reportData, exp.report_data);
    assert.equal(c.measurement, exp.measurement);
    assert.deepEqual(tcbOf(c.reportedTcb), tcb(String(exp.reported_tcb)));
    assert.deepEqual(tcbOf(c.currentTcb), tcb(String(exp.current_tcb)));
    assert.equal(c.currentFirmware, exp.firmware);
    const line = failsWithOneLine(await bin([...args, '--at', '2026-01-01']), 1, 'PKI_EXPIRED');
    assert.match(line, /SEV-VLEK expired at 2025-12-10/);
  });

  test('trustee e2e Genoa report (v3): exit 0, manifest values', async () => {
    const file = 'amd-snp/trustee/e2e-report.bin';
    const exp = expected(file);
    const exp2 = expected('amd-snp/trustee/e2e-evidence.json');
    const r = await cli(['snp', 'verify', join(VECTORS, file), '--vcek', join(SNP, 'trustee/e2e-vcek.der'), '--chain', join(CERTS, 'ask_ark_genoa.pem'), '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = oneJson(r).claims;
    assert.equal(c.product, 'Genoa');
    assert.equal(c.version, exp.version);
    assert.equal(c.chipId, exp.chip_id);
    assert.equal(c.measurement, exp2.measurement);
    assert.equal(c.reportData, exp2.report_data);
    assert.deepEqual(tcbOf(c.reportedTcb), tcb(String(exp2.reported_tcb)));
    assert.equal(c.currentFirmware, exp2.firmware);
  });

  test('Azure-derived Milan report with the 3-certificate bundle as --vcek: exit 0, manifest values', async () => {
    const file = 'amd-snp/azure-derived/az-milan-hcl-report.snp.bin';
    const exp = expected(file);
    const r = await cli(['snp', 'verify', join(VECTORS, file), '--vcek', join(VECTORS, 'azure-cvm/trustee-az-snp-vtpm/vcek.pem'), '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = oneJson(r).claims;
    assert.equal(c.product, 'Milan');
    assert.equal(c.version, exp.version);
    assert.equal(c.measurement, exp.measurement);
    assert.ok(String(c.reportData).startsWith(String(exp['report_data[0:32]']).split(' ')[0] as string));
    assert.ok(String(c.chipId).startsWith(String(exp.chip_id_prefix)));
  });
});

describe('configfs-tsm forms (veraison Genoa capture)', { concurrency: 3 }, () => {
  const exp = expected('amd-snp/veraison/sevsnp-tsm-report.cbor');
  const checkGenoa = (j: Json): void => {
    assert.equal(j.ok, true);
    const c = j.claims;
    assertHexClaims(c);
    assert.equal(c.product, 'Genoa');
    assert.equal(c.version, exp.version);
    assert.equal(c.measurement, String(exp.measurement).split(' ')[0]);
    const half = String(exp.report_data).split(' ')[0] as string;
    assert.equal(c.reportData, half + half);
    assert.equal(Buffer.from(half, 'hex').toString('latin1'), 'MIDBNH28iioisjPyxxxxxxxxxxxxxxxx');
    const [head, tail] = String(exp.chip_id).split('…') as [string, string];
    assert.ok(String(c.chipId).startsWith(head) && String(c.chipId).endsWith(tail), String(c.chipId));
    assert.deepEqual(tcbOf(c.reportedTcb), tcb(String(exp.reported_tcb)));
  };

  // The real capture's provider is "sev_guest\n"; it was refused (exit 2, SNP_BAD_INPUT with a
  // two-line message) until 5f31bba.
  test('the TSM CBOR file verifies with no --vcek, certificates from its auxblob (bin/coffer)', async () => {
    const r = await bin(['snp', 'verify', TSM_CBOR, '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    checkGenoa(oneJson(r));
  });

  test('the same CBOR re-encoded with provider "sev_guest" (no newline) verifies too', async () => {
    const m = tsmParts();
    assert.equal(m.provider, 'sev_guest\n', 'the real capture carries the newline');
    const p = join(work, 'tsm-trimmed.cbor');
    // Plain Uint8Array: cbor2 would encode a Buffer through its toJSON().
    writeFileSync(p, cborEncode({ outblob: Uint8Array.from(m.outblob), auxblob: Uint8Array.from(m.auxblob), provider: 'sev_guest' }));
    const r = await cli(['snp', 'verify', p, '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    checkGenoa(oneJson(r));
    const human = await cli(['snp', 'verify', p, ...AT]);
    assert.match(human.stdout, /^VERIFIED\s+SEV-SNP report v3, Genoa, signed by VCEK, chain to ARK-Genoa \(pinned\)/);
  });

  test('a configfs-tsm report directory (outblob, auxblob, provider) verifies', async () => {
    const m = tsmParts();
    const dir = join(work, 'tsm-dir');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'outblob'), m.outblob);
    writeFileSync(join(dir, 'auxblob'), m.auxblob);
    writeFileSync(join(dir, 'provider'), 'sev_guest\n');
    assert.ok(Buffer.from(m.outblob).equals(readFileSync(join(SNP, 'veraison/sevsnp-tsm-report.outblob.bin'))));
    const r = await bin(['snp', 'verify', dir, '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    checkGenoa(oneJson(r));
    const human = await cli(['snp', 'verify', dir, ...AT]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^VERIFIED/);
  });

  test('outblob plus --auxblob FILE verifies; outblob alone has no VCEK (exit 2, SNP_NO_ENDORSEMENT_KEY)', async () => {
    const m = tsmParts();
    const aux = join(work, 'auxblob.bin');
    writeFileSync(aux, m.auxblob);
    const out = join(SNP, 'veraison/sevsnp-tsm-report.outblob.bin');
    const r = await cli(['snp', 'verify', out, '--auxblob', aux, '--json', ...AT]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    checkGenoa(oneJson(r));
    failsWithOneLine(await cli(['snp', 'verify', out, ...AT]), 2, 'SNP_NO_ENDORSEMENT_KEY');
    // With the VCEK extracted to PEM and the KDS Genoa chain instead.
    const r2 = await cli(['snp', 'verify', out, '--vcek', join(SNP, 'veraison/sevsnp-tsm-report.vcek.pem'), '--chain', join(CERTS, 'ask_ark_genoa.pem'), ...AT]);
    assert.equal(r2.code, 0, r2.stderr);
  });

  test('a directory whose provider is not sev_guest: exit 2, SNP_BAD_INPUT', async () => {
    const m = tsmParts();
    const dir = join(work, 'tsm-tdx');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'outblob'), m.outblob);
    writeFileSync(join(dir, 'provider'), 'tdx_guest\n');
    failsWithOneLine(await cli(['snp', 'verify', dir, ...AT]), 2, 'SNP_BAD_INPUT');
  });
});

describe('bad usage: exit 2, one line, no stack trace', { concurrency: 3 }, () => {
  const m = String(expected('amd-snp/go-sev-guest/attestation.bin').measurement);
  // The first two run through bin/coffer.
  const cofferErrors: [string, string[], string][] = [
    ['non-hex --expect-measurement', ['--expect-measurement', 'zz'], 'BAD_HEX'],
    ['odd-length --expect-measurement', ['--expect-measurement', m.slice(1)], 'BAD_HEX'],
    ['47-byte --expect-measurement', ['--expect-measurement', m.slice(2)], 'BAD_HEX'],
    ['65-byte --expect-report-data', ['--expect-report-data', 'ab'.repeat(65)], 'BAD_HEX'],
    ['--at yesterday', ['--at', 'yesterday'], 'BAD_TIME'],
    ['--at 2025-13-45', ['--at', '2025-13-45'], 'BAD_TIME'],
    ['--at 20250601', ['--at', '20250601'], 'BAD_TIME'],
    ['--vmpl 4', ['--vmpl', '4'], 'BAD_NUMBER'],
    ['--product Bergamo', ['--product', 'Bergamo'], 'BAD_PRODUCT'],
    ['--offline without --fetch', ['--offline'], 'USAGE'],
    ['missing --vcek file', ['--vcek', join(work, 'no-such.der')], 'FILE_UNREADABLE'],
  ];
  cofferErrors.forEach(([what, extra, code], i) => {
    const exec = i < 2 || code === 'BAD_TIME' && extra[1] === 'yesterday' ? bin : cli;
    test(`${what}: ${code}${exec === bin ? ' (bin/coffer)' : ''}`, async () => {
      const base = extra[0] === '--vcek' ? [GSG, '--chain', MILAN_CHAIN] : GSG_ARGS;
      failsWithOneLine(await exec(['snp', 'verify', ...base, '--allow-debug', ...extra]), 2, code);
    });
  });

  test('a report file that does not exist: FILE_UNREADABLE naming it', async () => {
    const line = failsWithOneLine(await bin(['snp', 'verify', join(work, 'missing.bin'), '--vcek', GSG_VCEK]), 2, 'FILE_UNREADABLE');
    assert.match(line, /missing\.bin does not exist/);
  });

  test('a report that is not a report: SNP_BAD_INPUT', async () => {
    const p = join(work, 'short.bin');
    writeFileSync(p, Buffer.alloc(100, 7));
    failsWithOneLine(await cli(['snp', 'verify', p, '--vcek', GSG_VCEK]), 2, 'SNP_BAD_INPUT');
  });

  test('a chain file that is not PEM or DER: PKI_BAD_CERTIFICATE', async () => {
    const p = join(work, 'junk.pem');
    writeFileSync(p, 'junk');
    failsWithOneLine(await cli(['snp', 'verify', ...GSG_ARGS.slice(0, 3), '--chain', p, '--allow-debug']), 2, 'PKI_BAD_CERTIFICATE');
  });

  test('bad usage with --json: one JSON object with ok:false and the code on stdout', async () => {
    const r = await cli(['snp', 'verify', ...GSG_ARGS, '--json', '--expect-measurement', 'zz']);
    assert.equal(r.code, 2);
    const j = oneJson(r);
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'BAD_HEX');
  });

  for (const [what, args, msg, viaBin] of [
    ['unknown option', ['snp', 'verify', GSG, '--bogus'], /unknown option '--bogus'/, true],
    ['missing argument', ['snp', 'verify'], /missing required argument 'report'/, true],
    ['option without its value', ['snp', 'verify', GSG, '--vcek'], /option '--vcek <file>' argument missing/, false],
    ['unknown command', ['snp', 'frobnicate'], /unknown command 'frobnicate'/, false],
    ['unknown top-level command', ['frobnicate'], /unknown command 'frobnicate'/, false],
  ] as const) {
    test(`${what}: exit 2, one line "coffer: usage: ...", no stack trace${viaBin ? ' (bin/coffer)' : ''}`, async () => {
      const r = await (viaBin ? bin : cli)([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.doesNotMatch(r.stderr, STACK);
      const l = lines(r.stderr);
      assert.equal(l.length, 1, r.stderr);
      assert.match(l[0] as string, /^coffer: usage: /);
      assert.match(l[0] as string, msg);
    });
  }

  test('a usage error with --json: one JSON object, ok:false, error.code USAGE', async () => {
    const r = await cli(['snp', 'verify', GSG, '--bogus', '--json']);
    assert.equal(r.code, 2);
    const j = oneJson(r);
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'USAGE');
  });

  test(
    '--at refuses dates that are not real ISO 8601 instead of rolling them over',
    async () => {
      for (const at of ['2025-02-30', '2025-06-01junk']) {
        failsWithOneLine(await cli(['snp', 'verify', ...GSG_ARGS, '--allow-debug', '--at', at]), 2, 'BAD_TIME');
      }
    },
  );

  // Found by these tests and fixed in 5f31bba: it used to print "coffer: internal error: ...
  // decode error" and exit 1.
  test('a VCEK file damaged by one bit (its public key) is bad input: exit 2, PKI_BAD_CERTIFICATE, not an internal error', async () => {
    const p = flipped(GSG_VCEK, 375, 'vcek-375.der');
    failsWithOneLine(await cli(['snp', 'verify', GSG, '--vcek', p, '--chain', MILAN_CHAIN, '--allow-debug', ...AT]), 2, 'PKI_BAD_CERTIFICATE');
  });
});

// ---------------------------------------------------------------------------------------
// --fetch against a local KDS

describe('--fetch from a local KDS on 127.0.0.1', () => {
  const chip = String(expected('amd-snp/go-sev-guest/attestation.bin').chip_id);
  const VCEK_PATH = `/vcek/v1/Milan/${chip}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`;
  const CHAIN_PATH = '/vcek/v1/Milan/cert_chain';
  const CRL_PATH = '/vcek/v1/Milan/crl';
  let server: Server;
  let base = '';
  const hits = new Map<string, number>();
  const routes = new Map<string, { status: number; body: Buffer }>();
  // A CRL under ARK-Milan's exact name, signed by the test CA's key (not AMD's): it passes the
  // fetcher's shape checks and must fail the verifier's signature check.
  const forgedCrl = makeFakeAmd('Milan').crl({ revokedSerials: [], thisUpdate: new Date('2025-05-01T00:00:00Z'), nextUpdate: new Date('2045-01-01T00:00:00Z') }).der;

  before(async () => {
    routes.set(VCEK_PATH, { status: 200, body: readFileSync(GSG_VCEK) });
    routes.set(CHAIN_PATH, { status: 200, body: readFileSync(MILAN_CHAIN) });
    server = createServer((req, res) => {
      const url = req.url ?? '';
      hits.set(url, (hits.get(url) ?? 0) + 1);
      const r = routes.get(url);
      res.writeHead(r?.status ?? 404);
      res.end(r?.body ?? 'not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const cache = join(work, 'kds-cache');
  const fetchArgs = (): string[] => ['snp', 'verify', GSG, '--fetch', '--kds-url', base, '--cache-dir', cache, '--product', 'Milan', '--allow-debug', ...AT];

  test('CRL endpoint answers 404: exit 1 with one KDS_NOT_FOUND line naming the CRL URL; VCEK and chain were fetched and cached', async () => {
    const r = await bin(fetchArgs());
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.doesNotMatch(r.stderr, STACK);
    const l = lines(r.stderr);
    const errors = l.filter((x) => /^coffer: [A-Z_]+: /.test(x));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, new RegExp(`^coffer: KDS_NOT_FOUND: .*${base.replace(/[.]/g, '\\.')}${CRL_PATH} \\(HTTP 404\\)`));
    // The other lines say what was fetched.
    for (const p of [VCEK_PATH, CHAIN_PATH, CRL_PATH]) assert.ok(l.includes(`coffer: fetching ${base}${p}`), `progress line for ${p}:\n${r.stderr}`);
    assert.equal(hits.get(VCEK_PATH), 1);
    assert.equal(hits.get(CHAIN_PATH), 1);
    assert.equal(hits.get(CRL_PATH), 1);
    const cached = readdirSync(cache);
    assert.ok(cached.some((f) => f.startsWith('vcek-Milan-')), cached.join(' '));
    assert.ok(cached.some((f) => f.startsWith('vcek-Milan-cert_chain-')), cached.join(' '));
    assert.ok(!cached.some((f) => f.includes('crl')));
  });

  test('--json with the 404: one JSON object, ok:false, error.code KDS_NOT_FOUND, no progress lines', async () => {
    const r = await cli([...fetchArgs(), '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const j = oneJson(r);
    assert.equal(j.ok, false);
    assert.equal(j.error?.code, 'KDS_NOT_FOUND');
  });

  test('a CRL forged under ARK-Milan\'s name: exit 1, PKI_CRL_BAD_SIGNATURE; VCEK and chain now come from the cache', async () => {
    routes.set(CRL_PATH, { status: 200, body: forgedCrl });
    const before = { vcek: hits.get(VCEK_PATH), chain: hits.get(CHAIN_PATH) };
    const r = await bin(fetchArgs());
    assert.equal(r.code, 1, r.stderr);
    const errors = lines(r.stderr).filter((x) => /^coffer: [A-Z_]+: /.test(x));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, /^coffer: PKI_CRL_BAD_SIGNATURE: /);
    assert.equal(hits.get(VCEK_PATH), before.vcek, 'VCEK from cache');
    assert.equal(hits.get(CHAIN_PATH), before.chain, 'chain from cache');
    assert.ok(lines(r.stderr).includes(`coffer: fetching ${base}${CRL_PATH}`));
  });

  test('--offline uses only the cache: same verdict, no request at all', async () => {
    const total = [...hits.values()].reduce((a, b) => a + b, 0);
    const r = await cli([...fetchArgs(), '--offline', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const j = oneJson(r);
    assert.equal(j.error?.code, 'PKI_CRL_BAD_SIGNATURE');
    assert.equal([...hits.values()].reduce((a, b) => a + b, 0), total);
    // And an empty cache offline: KDS_OFFLINE_MISS.
    const r2 = await cli(['snp', 'verify', GSG, '--fetch', '--offline', '--kds-url', base, '--cache-dir', join(work, 'empty-cache'), '--product', 'Milan', '--allow-debug', ...AT]);
    failsWithOneLine(r2, 1, 'KDS_OFFLINE_MISS');
  });

  test('a KDS that serves another chip\'s VCEK does not get it trusted: exit 1, SNP_BAD_SIGNATURE', async () => {
    routes.set(VCEK_PATH, { status: 200, body: readFileSync(join(SNP, 'trustee/test-vcek.der')) });
    try {
      const r = await cli(['snp', 'verify', GSG, '--fetch', '--kds-url', base, '--cache-dir', join(work, 'kds-cache-2'), '--product', 'Milan', '--allow-debug', ...AT]);
      assert.equal(r.code, 1, r.stderr);
      const errors = lines(r.stderr).filter((x) => /^coffer: [A-Z_]+: /.test(x));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0] as string, /^coffer: SNP_BAD_SIGNATURE: /);
    } finally {
      routes.set(VCEK_PATH, { status: 200, body: readFileSync(GSG_VCEK) });
    }
  });

  test('a v2 report names no product: without --product, exit 2 SNP_UNKNOWN_PRODUCT before any request', async () => {
    const total = [...hits.values()].reduce((a, b) => a + b, 0);
    const r = await cli(['snp', 'verify', GSG, '--fetch', '--kds-url', base, '--cache-dir', join(work, 'kds-cache-3'), '--allow-debug', ...AT]);
    failsWithOneLine(r, 2, 'SNP_UNKNOWN_PRODUCT');
    assert.equal([...hits.values()].reduce((a, b) => a + b, 0), total);
  });

  test('a VLEK report cannot be fetched from KDS: exit 2, SNP_NO_ENDORSEMENT_KEY', async () => {
    const r = await cli(['snp', 'verify', join(SNP, 'trustee/test-vlek-report.bin'), '--fetch', '--kds-url', base, '--cache-dir', join(work, 'kds-cache-4'), '--at', '2025-06-01']);
    failsWithOneLine(r, 2, 'SNP_NO_ENDORSEMENT_KEY');
  });
});

// ---------------------------------------------------------------------------------------

describe('coffer snp show', { concurrency: 3 }, () => {
  test('prints labelled, aligned lines with the flags spelled out (DEBUG for attestation.bin)', async () => {
    const r = await bin(['snp', 'show', GSG]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const [head, ...rows] = lines(r.stdout);
    assert.match(head as string, /NOT verified/);
    const exp = expected('amd-snp/go-sev-guest/attestation.bin');
    const byLabel = new Map<string, string>();
    let column = -1;
    for (const row of rows) {
      const m = /^(\S.*?)\s{2,}(\S.*)$/.exec(row);
      assert.ok(m, `"label  value" row: ${row}`);
      const valueAt = row.length - (m[2] as string).length;
      if (column === -1) column = valueAt;
      assert.equal(valueAt, column, `values aligned: ${row}`);
      byLabel.set(m[1] as string, m[2] as string);
    }
    assert.match(byLabel.get('Guest policy') ?? '', /^0xb0000\b.*DEBUG/);
    assert.match(byLabel.get('Guest policy') ?? '', /SMT allowed/);
    assert.equal(byLabel.get('Version'), '2');
    assert.equal(byLabel.get('VMPL'), '0');
    assert.equal(byLabel.get('Measurement'), exp.measurement);
    assert.equal(byLabel.get('Report data'), exp.report_data);
    assert.equal(byLabel.get('Chip id'), exp.chip_id);
    assert.equal(byLabel.get('Report id'), exp.report_id);
    assert.match(byLabel.get('Reported TCB') ?? '', /^bl=2 tee=0 snp=5 ucode=68\s+\(0x4405000000000002\)/);
    assert.match(byLabel.get('Signing key') ?? '', /^VCEK/);
    assert.match(byLabel.get('Firmware') ?? '', /1\.49\.3/);
  });

  test('--json: ok:true, verified:false, the decoded claims', async () => {
    const r = await bin(['snp', 'show', GSG, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = oneJson(r) as Json & { verified: boolean };
    assert.equal(j.ok, true);
    assert.equal(j.verified, false);
    assertHexClaims(j.claims);
    assert.equal(j.claims.measurement, expected('amd-snp/go-sev-guest/attestation.bin').measurement);
    assert.equal(j.claims.policy.debug, true);
  });

  test('shows a report whose signature is broken (show does not verify), and the Azure Genoa report', async () => {
    const r = await cli(['snp', 'show', flipped(GSG, 0x2a0, 'show-flip.bin')]);
    assert.equal(r.code, 0, r.stderr);
    const file = 'amd-snp/azure-derived/az-genoa-hcl-report.snp.bin';
    const exp = expected(file);
    const j = oneJson(await cli(['snp', 'show', join(VECTORS, file), '--json']));
    assert.equal(j.claims.product, exp.product);
    assert.equal(j.claims.version, exp.version);
    assert.equal(j.claims.measurement, exp.measurement);
    assert.deepEqual(tcbOf(j.claims.reportedTcb), tcb(String(exp.reported_tcb)));
    assert.ok(String(j.claims.reportData).startsWith(String(exp['report_data[0:32]']).split(' ')[0] as string));
  });

  test('shows the TSM CBOR capture and lists its auxblob certificates', async () => {
    const r = await cli(['snp', 'show', TSM_CBOR]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^SEV-SNP report \(tsm-cbor;/);
    assert.match(r.stdout, /Certificates in auxblob: .*SEV-VCEK/);
  });

  test('a file that is not a report: exit 2, one line', async () => {
    const p = join(work, 'not-a-report.txt');
    writeFileSync(p, 'hello');
    failsWithOneLine(await cli(['snp', 'show', p]), 2, 'SNP_BAD_INPUT');
  });
});

describe('help', { concurrency: 3 }, () => {
  test('coffer --help: exit 0, usage and the snp group', async () => {
    const r = await bin(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: coffer/);
    assert.match(r.stdout, /\bsnp\b/);
  });

  test('coffer snp verify --help: exit 0, every documented option', async () => {
    const r = await bin(['snp', 'verify', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: coffer snp verify \[options\] <report>/);
    for (const o of ['--vcek <file>', '--chain <file>', '--crl <file>', '--fetch', '--at <iso8601>', '--expect-measurement <hex>', '--expect-report-data <hex>', '--json', '--allow-debug']) {
      assert.ok(r.stdout.includes(o), `help mentions ${o}`);
    }
  });

  test('coffer snp show --help and coffer with no arguments: exit 0', async () => {
    assert.equal((await cli(['snp', 'show', '--help'])).code, 0);
    const r = await cli([]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: coffer/);
  });

  test('coffer snp without a sub-command is a usage error: exit 2; coffer status checks every pin: exit 0', async () => {
    assert.equal((await cli(['snp'])).code, 2);
    const st = await cli(['status', '--json']);
    assert.equal(st.code, 0);
    const out = JSON.parse(st.stdout) as { ok: boolean; roots: { product: string; ok: boolean }[] };
    assert.equal(out.ok, true);
    assert.deepEqual(out.roots.map((r) => [r.product, r.ok]), [['Milan', true], ['Genoa', true], ['Turin', true], ['SGX/TDX', true], ['Nitro Enclaves', true]]);
  });
});
