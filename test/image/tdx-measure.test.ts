// TDX MRTD from the TDVF metadata of Debian's OVMF.fd (package ovmf): the parsed sections are
// checked against the metadata bytes found independently (by signature scan), and the MRTD of
// each page order against a straight-line recomputation.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tdvfMetadata, tdxMeasurement } from '../../src/image/index.js';
import { ovmfPath } from './measure-tools.js';

describe('TDX MRTD from TDVF metadata', () => {
  const fw = readFileSync(ovmfPath());

  test('sections parsed = the "TDVF" descriptor bytes found by scanning the image', () => {
    const at = fw.lastIndexOf(Buffer.from('TDVF', 'latin1'));
    assert.ok(at > 0);
    const meta = tdvfMetadata(fw);
    assert.ok(meta);
    assert.equal(meta.offset, at);
    const count = fw.readUInt32LE(at + 12);
    assert.equal(fw.readUInt32LE(at + 4), 16 + 32 * count);
    assert.equal(meta.sections.length, count);
    meta.sections.forEach((s, i) => {
      const d = at + 16 + 32 * i;
      assert.equal(s.descriptorOffset, d);
      assert.deepEqual(
        [s.dataOffset, s.rawDataSize, s.memoryAddress, s.memorySize, s.type, s.attributes],
        [fw.readUInt32LE(d), fw.readUInt32LE(d + 4), fw.readBigUInt64LE(d + 8), fw.readBigUInt64LE(d + 16), fw.readUInt32LE(d + 24), fw.readUInt32LE(d + 28)],
      );
    });
    // Debian's build: BFV (measured, MR.EXTEND) covering the image after the 128 KiB CFV (variables, not extended).
    assert.deepEqual(meta.sections.map((s) => `${s.typeName}/${s.attributes}`), ['BFV/1', 'CFV/0', 'TEMP_MEM/0', 'TEMP_MEM/0', 'TD_HOB/0', 'TEMP_MEM/0']);
    assert.equal(meta.sections[0]?.dataOffset, 0x20000);
    assert.equal(meta.sections[0]?.memoryAddress, 0x100000000n - BigInt(fw.length) + 0x20000n);
  });

  test('both page orders, recomputed straight-line; they differ', () => {
    const meta = tdvfMetadata(fw);
    assert.ok(meta);
    const rec = (tag: string, gpa: bigint) => {
      const b = Buffer.alloc(128);
      b.write(tag, 'latin1');
      b.writeBigUInt64LE(gpa, 16);
      return b;
    };
    const perPage = createHash('sha384');
    const sectionFirst = createHash('sha384');
    for (const s of meta.sections) {
      const mem = Buffer.alloc(Number(s.memorySize));
      fw.copy(mem, 0, s.dataOffset, s.dataOffset + s.rawDataSize);
      const ext = (h: ReturnType<typeof createHash>, p: number) => {
        for (let c = p; c < p + 4096; c += 256) h.update(rec('MR.EXTEND', s.memoryAddress + BigInt(c))).update(mem.subarray(c, c + 256));
      };
      for (let p = 0; p < mem.length; p += 4096) {
        perPage.update(rec('MEM.PAGE.ADD', s.memoryAddress + BigInt(p)));
        if (s.attributes & 1) ext(perPage, p);
      }
      for (let p = 0; p < mem.length; p += 4096) sectionFirst.update(rec('MEM.PAGE.ADD', s.memoryAddress + BigInt(p)));
      if (s.attributes & 1) for (let p = 0; p < mem.length; p += 4096) ext(sectionFirst, p);
    }
    const m = tdxMeasurement(fw);
    assert.equal(m.mrtd.perPage, perPage.digest('hex'));
    assert.equal(m.mrtd.sectionFirst, sectionFirst.digest('hex'));
    assert.equal(m.mrtd.perPage, '4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47');
    assert.equal(m.mrtd.sectionFirst, 'acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1');
    assert.notEqual(m.mrtd.perPage, m.mrtd.sectionFirst);
  });
});
