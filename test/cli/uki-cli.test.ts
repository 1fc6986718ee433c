// `coffer uki ...` and `coffer image ...` in-process on a commander program: UKI build checked
// with objdump, sbverify and systemd-measure; SNP/TDX measurement JSON; PCR prediction; the
// signed reference-value document loaded by the appraisal's ReferenceStore with the trusted key.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { reportError, toJson, EXIT_USAGE, type Io } from '../../src/cli/output.js';
import type { CliContext } from '../../src/cli/main.js';
import { registerUki } from '../../src/cli/uki.js';
import { registerImage } from '../../src/cli/image.js';
import { registerSecureboot } from '../../src/cli/secureboot.js';
import { ReferenceStore } from '../../src/appraisal/reference.js';
import { authenticodeHash } from '../../src/image/index.js';
import { LINUX_STUB, packagedFile, tempDir, tool } from '../image/tools.js';
import { objdumpSections, ovmfPath, systemdMeasure } from '../image/measure-tools.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const nl = (t: string): string => (t.endsWith('\n') ? t : `${t}\n`);
  const io: Io = { out: (t) => void (stdout += nl(t)), err: (t) => void (stderr += nl(t)) };
  let exit = 0;
  const ctx: CliContext = { io, setExit: (c) => (exit = c) };
  const program = new Command('coffer')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: (s, write) => write(`coffer: ${s.trim().replace(/^error: /, 'usage: ')} (see --help)\n`) })
    .exitOverride();
  registerUki(program, ctx);
  registerImage(program, ctx);
  registerSecureboot(program, ctx);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (args.includes('--json')) io.out(toJson({ ok: false, error: { code: 'USAGE', message: e.message } }));
      return { code: EXIT_USAGE, stdout, stderr };
    }
    return { code: reportError(e, { json: args.includes('--json') }, io), stdout, stderr };
  }
  return { code: exit, stdout, stderr };
}

let dir: string;
let keys: string;
const ROOT = 'cd'.repeat(32);

describe('coffer uki / coffer image', () => {
  before(async () => {
    dir = tempDir('uki-cli');
    keys = join(dir, 'keys');
    const r = await cli(['secureboot', 'keygen', '--out', keys, '--owner-guid', '11111111-2222-4333-8444-555555555555']);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(join(dir, 'vmlinuz'), Buffer.alloc(200000, 7));
    writeFileSync(join(dir, 'initrd'), Buffer.alloc(70001, 3));
    writeFileSync(join(dir, 'os-release'), 'ID=coffer\nVERSION_ID=1.0\n');
    writeFileSync(join(dir, 'cmdline'), `console=ttyS0 roothash=${ROOT}`);
  });

  test('uki build (signed): objdump, sbverify, PCR 11 = systemd-measure; uki pcr11', async () => {
    const out = join(dir, 'uki.efi');
    const r = await cli(['uki', 'build', '--stub', packagedFile(LINUX_STUB, 'systemd-boot-efi'), '--linux', join(dir, 'vmlinuz'), '--initrd', join(dir, 'initrd'), '--cmdline', `@${join(dir, 'cmdline')}`, '--os-release', join(dir, 'os-release'), '--sign-key', join(keys, 'db.key'), '--sign-cert', join(keys, 'db.crt'), '--out', out, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = JSON.parse(r.stdout) as { signed: boolean; authenticode: string; sections: { name: string; virtualAddress: number; virtualSize: number }[]; pcr11: { sha256: { phase: string; value: string }[] } };
    assert.equal(j.signed, true);
    assert.equal(j.authenticode, authenticodeHash(readFileSync(out)).toString('hex'));
    const od = objdumpSections(out);
    for (const s of j.sections) assert.deepEqual([od.get(s.name)?.vma, od.get(s.name)?.size], [s.virtualAddress, s.virtualSize]);
    assert.deepEqual(j.sections.map((s) => s.name), ['.osrel', '.cmdline', '.linux', '.initrd']);
    tool('sbverify', ['--cert', join(keys, 'db.crt'), out]);
    const expected = systemdMeasure({ linux: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd'), cmdline: join(dir, 'cmdline'), osrel: join(dir, 'os-release') }, 'sha256');
    for (const p of j.pcr11.sha256.filter((x) => x.phase !== '')) assert.equal(p.value, expected.get(p.phase), p.phase);
    const p = await cli(['uki', 'pcr11', out, '--phase', 'enter-initrd:leave-initrd', '--json']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout) as { values: { value: string }[] }).values[0]?.value, expected.get('enter-initrd:leave-initrd'));
    const s = await cli(['secureboot', 'verify', out, '--db', join(keys, 'db.esl')]);
    assert.equal(s.code, 0, s.stdout + s.stderr);
  });

  test('image measure snp / tdx --json', async () => {
    const s = await cli(['image', 'measure', 'snp', '--ovmf', ovmfPath(), '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--json']);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    const sj = JSON.parse(s.stdout) as { measurement: string; vcpuSignature: string; guestFeatures: string };
    assert.equal(sj.measurement, '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3');
    assert.deepEqual([sj.vcpuSignature, sj.guestFeatures], ['0x800f12', '0x1']);
    const t = await cli(['image', 'measure', 'tdx', '--ovmf', ovmfPath(), '--json']);
    assert.equal(t.code, 0, t.stderr);
    assert.equal((JSON.parse(t.stdout) as { mrtd: { perPage: string } }).mrtd.perPage.length, 96);
    const bad = await cli(['image', 'measure', 'snp', '--ovmf', ovmfPath(), '--vmm', 'xen']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^coffer: USAGE: --vmm/);
    const nk = await cli(['image', 'measure', 'snp', '--ovmf', ovmfPath(), '--kernel', join(dir, 'vmlinuz')]);
    assert.equal(nk.code, 2);
    assert.match(nk.stderr, /OVMF_NO_KERNEL_HASHES/);
    const missing = await cli(['image', 'measure', 'tdx', '--ovmf', join(dir, 'nope.fd')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /FILE_UNREADABLE/);
  });

  test('image reference: signed JWS that ReferenceStore loads with the trusted key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const keyPath = join(dir, 'ref.key');
    writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const out = join(dir, 'ref.jws');
    const uki = join(dir, 'uki.efi');
    const r = await cli(['image', 'reference', '--sign', keyPath, '--uki', uki, '--ovmf', ovmfPath(), '--tdx', '--name', 'coffer-base', '--version', '1.0.0', '--pk', join(keys, 'PK.esl'), '--kek', join(keys, 'KEK.esl'), '--db', join(keys, 'db.esl'), '--issued-at', '2026-01-01T00:00:00Z', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const pcr = await cli(['image', 'measure', 'pcr', '--uki', uki, '--pk', join(keys, 'PK.esl'), '--kek', join(keys, 'KEK.esl'), '--db', join(keys, 'db.esl'), '--json']);
    assert.equal(pcr.code, 0, pcr.stderr);
    const pj = JSON.parse(pcr.stdout) as { pcrs: Record<string, string> };

    const store = await ReferenceStore.load([{ jws: readFileSync(out, 'utf8'), source: out }], [publicKey]);
    const [doc] = store.forImage('coffer-base');
    assert.ok(doc);
    const m = doc.values.measurements;
    assert.deepEqual(doc.values.image, { id: 'coffer-base', name: 'coffer-base', version: '1.0.0' });
    assert.equal(doc.values.issuedAt, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(m.ukiAuthenticode, [authenticodeHash(readFileSync(uki)).toString('hex')]);
    assert.deepEqual(m.snp, ['11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3']);
    assert.equal(m.tdx?.mrtd?.length, 2);
    assert.equal(m.verityRootHash, ROOT);
    assert.equal(m.kernelCommandLine, `console=ttyS0 roothash=${ROOT}`);
    const expected = systemdMeasure({ linux: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd'), cmdline: join(dir, 'cmdline'), osrel: join(dir, 'os-release') }, 'sha256');
    assert.deepEqual(m.pcrs?.sha256, { '4': pj.pcrs['4'], '7': pj.pcrs['7'], '11': expected.get('enter-initrd:leave-initrd:sysinit:ready') });

    // Another signer's key does not load it.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    await assert.rejects(ReferenceStore.load([{ jws: readFileSync(out, 'utf8'), source: out }], [other]), (e: Error & { code?: string }) => e.code === 'REFERENCE_BAD_SIGNATURE');

    // An RSA key cannot sign reference values; a UKI no db certificate allows cannot predict PCR 7.
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    writeFileSync(join(dir, 'rsa.key'), rsa.export({ type: 'pkcs8', format: 'pem' }));
    const bad = await cli(['image', 'reference', '--sign', join(dir, 'rsa.key'), '--uki', uki, '--name', 'x', '--version', '1', '--out', join(dir, 'x.jws')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /REFERENCE_BAD_KEY/);
    const nodb = await cli(['image', 'reference', '--sign', keyPath, '--uki', uki, '--name', 'x', '--version', '1', '--pk', join(keys, 'PK.esl'), '--kek', join(keys, 'KEK.esl'), '--db', join(keys, 'KEK.esl'), '--out', join(dir, 'y.jws')]);
    assert.equal(nodb.code, 2);
    assert.match(nodb.stderr, /SECUREBOOT_UNTRUSTED_SIGNER/);
  });
});
