// UKI building and PCR 11: the output parses, objdump (binutils) lists the added sections with
// their sizes and VMAs, sbverify (sbsigntool) accepts the signed UKI, and Coffer's PCR 11 of the
// built UKI equals systemd-measure calculate (systemd 252) on the input files, for every phase.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../../src/errors.js';
import { parseCertificates } from '../../src/pki/certificate.js';
import { addPeSections, authenticodeHash, buildUki, parsePe, peChecksum, predictPcr11, predictUkiPcr11, ukiSections, verifyAuthenticode, type Signer, type UkiSectionName } from '../../src/image/index.js';
import { LINUX_STUB, opensslKey, packagedFile, tempDir, tool } from './tools.js';
import { objdumpSections, systemdMeasure } from './measure-tools.js';

let dir: string;
let stub: Buffer;
let signer: Signer;
let crt: string;

const FLAG: Record<string, string> = { '.linux': 'linux', '.initrd': 'initrd', '.cmdline': 'cmdline', '.osrel': 'osrel', '.pcrpkey': 'pcrpkey' };

function write(name: string, data: Buffer | string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

describe('UKI build', () => {
  before(() => {
    dir = tempDir('uki');
    stub = readFileSync(packagedFile(LINUX_STUB, 'systemd-boot-efi'));
    const k = opensslKey(dir, 'db', 'Coffer UKI test db');
    crt = k.crt;
    signer = { certificate: parseCertificates(readFileSync(k.crt), 'db.crt')[0] as never, privateKey: createPrivateKey(readFileSync(k.key)) };
  });

  const cases = [
    { name: 'kernel, initrd, cmdline, os-release', linux: 300001, initrd: 123457, cmdline: 'console=ttyS0 ro roothash=' + 'ab'.repeat(32), osrel: 'ID=coffer\nVERSION_ID=1\n' },
    { name: 'kernel and cmdline only', linux: 4096, cmdline: 'quiet' },
    { name: 'all five sections, odd sizes', linux: 777777, initrd: 1, cmdline: 'a', osrel: 'ID=x\n', pcrpkey: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n' },
  ];

  for (const [i, c] of cases.entries()) {
    test(`${c.name}: objdump sections, sbverify, PCR 11 = systemd-measure (every phase, sha256 and sha1)`, () => {
      const files: Record<string, string> = {};
      const inputs: Record<string, Buffer> = {};
      inputs.linux = randomBytes(c.linux);
      if (c.initrd !== undefined) inputs.initrd = randomBytes(c.initrd);
      if (c.cmdline !== undefined) inputs.cmdline = Buffer.from(c.cmdline);
      if (c.osrel !== undefined) inputs.osrel = Buffer.from(c.osrel);
      if (c.pcrpkey !== undefined) inputs.pcrpkey = Buffer.from(c.pcrpkey);
      for (const [k, v] of Object.entries(inputs)) files[k] = write(`${i}-${k}`, v);
      const built = buildUki(stub, inputs as never, { signer });
      const path = write(`${i}-uki.efi`, built.image);

      // Parses; sections after the stub's at increasing aligned VMAs; header fields consistent.
      const pe = parsePe(built.image);
      const stubPe = parsePe(stub);
      assert.equal(pe.sections.length, stubPe.sections.length + Object.keys(inputs).length);
      const stubEnd = Math.max(...stubPe.sections.map((s) => s.virtualAddress + Math.max(s.virtualSize, s.sizeOfRawData)));
      let prev = stubEnd;
      for (const s of built.sections) {
        assert.ok(s.virtualAddress >= prev, `${s.name} VMA after the previous section`);
        assert.equal(s.virtualAddress % 0x200, 0);
        assert.equal(s.pointerToRawData % 0x200, 0);
        prev = s.virtualAddress + s.virtualSize;
      }
      assert.equal(built.image.readUInt32LE(pe.checksumOffset), peChecksum(built.image, pe.checksumOffset));

      // objdump -h (binutils) sees every section with its size and VMA.
      const od = objdumpSections(path);
      for (const s of built.sections) {
        const o = od.get(s.name);
        assert.ok(o, `objdump lists ${s.name}`);
        assert.equal(o.size, (inputs[FLAG[s.name] as string] as Buffer).length, `${s.name} size`);
        assert.equal(o.vma, s.virtualAddress, `${s.name} VMA`);
        assert.equal(o.fileOffset, s.pointerToRawData, `${s.name} file offset`);
      }
      for (const s of stubPe.sections) assert.equal(od.get(s.name)?.vma, s.virtualAddress, `stub section ${s.name} kept`);

      // sbverify accepts Coffer's signature; Coffer's own verifier too.
      tool('sbverify', ['--cert', crt, path]);
      assert.equal(verifyAuthenticode(built.image, { certificates: [signer.certificate] }).authorizedBy, 'signature');

      // Sections read back byte-exact; PCR 11 equals systemd-measure for all phases.
      const back = ukiSections(built.image);
      for (const [k, v] of Object.entries(inputs)) assert.ok(back[`.${k}` as UkiSectionName]?.equals(v));
      for (const bank of ['sha256', 'sha1'] as const) {
        const expected = systemdMeasure(files, bank);
        assert.equal(expected.size, 4);
        for (const [phase, hash] of expected) assert.equal(predictUkiPcr11(built.image, { bank, phase: phase.split(':') }).toString('hex'), hash, `${bank} ${phase}`);
      }
    });
  }

  test('systemd 252 measures VirtualSize bytes: hashing SizeOfRawData (zero padded) would not match systemd-measure', () => {
    const linux = randomBytes(1000);
    const files = { linux: write('vs-linux', linux) };
    const expected = systemdMeasure(files, 'sha256', ['enter-initrd']).get('enter-initrd');
    const padded = Buffer.concat([linux, Buffer.alloc(24)]);
    assert.equal(predictPcr11({ '.linux': linux }, { phase: ['enter-initrd'] }).toString('hex'), expected);
    assert.notEqual(predictPcr11({ '.linux': padded }, { phase: ['enter-initrd'] }).toString('hex'), expected);
  });

  test('unsigned UKI: Authenticode hash as sbsign computes it; then signing keeps it', () => {
    const built = buildUki(stub, { linux: randomBytes(5000), cmdline: 'x' });
    assert.equal(built.signed, false);
    const signed = buildUki(stub, { linux: Buffer.alloc(1), cmdline: 'x' }, { signer });
    assert.ok(signed.signed);
    const path = write('unsigned.efi', built.image);
    const out = join(dir, 'sbsigned.efi');
    const k = opensslKey(dir, 'sb', 'sbsign');
    tool('sbsign', ['--key', k.key, '--cert', k.crt, '--output', out, path]);
    assert.equal(authenticodeHash(readFileSync(out)).toString('hex'), authenticodeHash(built.image).toString('hex'));
  });

  test('refusals: no header room, duplicate section, empty section, not a stub', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'OK';
      } catch (e) {
        assert.ok(e instanceof CofferError, String(e));
        return e.code;
      }
    };
    const many = Array.from({ length: 40 }, (_, i) => ({ name: `.s${i}`, data: Buffer.alloc(1) }));
    assert.equal(code(() => addPeSections(stub, many)), 'PE_NO_HEADER_ROOM');
    assert.equal(code(() => addPeSections(stub, [{ name: '.sbat', data: Buffer.alloc(1) }])), 'UKI_SECTION_EXISTS');
    assert.equal(code(() => addPeSections(stub, [{ name: '.x', data: Buffer.alloc(0) }])), 'UKI_EMPTY_SECTION');
    assert.equal(code(() => buildUki(readFileSync(packagedFile('/usr/lib/systemd/boot/efi/systemd-bootx64.efi', 'systemd-boot-efi')), { linux: Buffer.alloc(1) })), 'UKI_NOT_A_STUB');
    assert.equal(code(() => addPeSections(Buffer.alloc(100), [{ name: '.x', data: Buffer.alloc(1) }])), 'PE_BAD_IMAGE');
  });
});
