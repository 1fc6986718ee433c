// configfs-tsm against the simulated kernel (tsm-sim.ts): the same open/write/read/rmdir calls the
// agent makes on /sys/kernel/config/tsm/report.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CofferError } from '../../src/errors.js';
import { fromTsm, parseSnpReport, verifySnpReport } from '../../src/evidence/snp/index.js';
import { configfsTsmSource, describeAuxblob, tsmReport } from '../../src/guest/index.js';
import { FAKE_AMD_AT } from '../helpers/amd-ca.js';
import { certTable } from './tsm-sim.js';
import { MEASUREMENT_GOOD, TsmSim, snpWorld } from './helpers.js';

const world = snpWorld();
let dir: string;
let sim: TsmSim;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-tsm-'));
  sim = new TsmSim(dir, world);
  await sim.start();
});
after(async () => {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

const code = (c: string) => (e: unknown) => e instanceof CofferError && e.code === c;

describe('configfs-tsm', () => {
  it('writes the report data to inblob, returns a report carrying it with the certificate table, and removes its entry', async () => {
    sim.set();
    const rd = Buffer.alloc(64);
    rd.write('coffer report data', 'utf8');
    const r = await tsmReport(rd, { root: sim.root });
    assert.equal(r.provider, 'sev_guest');
    assert.equal(r.generation, 1);
    const ev = fromTsm(r.outblob, r.auxblob);
    const report = parseSnpReport(ev.report);
    assert.deepEqual(Buffer.from(report.reportData), rd);
    assert.deepEqual(Buffer.from(report.measurement), MEASUREMENT_GOOD);
    // The report verifies to the fake AMD root with the auxblob's certificates: the table was parsed right.
    verifySnpReport(ev.report, { at: FAKE_AMD_AT, certificates: ev.certificates, roots: world.roots });
    assert.match(describeAuxblob(r.auxblob), /VCEK \(\d+ bytes\), ASK .*ARK/);
    assert.deepEqual(readdirSync(sim.root), [], 'the entry is removed');
  });

  it('counts a privlevel write in the generation and puts the level into the report (VMPL)', async () => {
    sim.set();
    const r = await tsmReport(Buffer.alloc(64, 7), { root: sim.root, privlevel: 2 });
    assert.equal(r.generation, 2);
    assert.equal(parseSnpReport(r.outblob).vmpl, 2);
  });

  it('refuses a report when the generation advanced by more than its own writes (someone else wrote inblob)', async () => {
    sim.set({ meddle: true });
    await assert.rejects(tsmReport(Buffer.alloc(64, 1), { root: sim.root }), code('TSM_GENERATION_RACE'));
    assert.deepEqual(readdirSync(sim.root), [], 'the entry is removed even so');
    sim.set();
  });

  it('refuses an entry whose generation is not 0 when first read (someone wrote to our new entry)', async () => {
    sim.set({ startGeneration: 1 });
    // (The simulator, unlike configfs, keeps its files until it gives up: the entry is not removable here.)
    await assert.rejects(tsmReport(Buffer.alloc(64, 1), { root: sim.root }), code('TSM_GENERATION_RACE'));
    sim.set();
    const r = await tsmReport(Buffer.alloc(64, 1), { root: sim.root });
    assert.equal(r.generation, 1, 'and its twin from 0 passes');
  });

  it('refuses report data that is not 64 bytes, an existing entry, a missing configfs and a wrong provider', async () => {
    await assert.rejects(tsmReport(Buffer.alloc(48), { root: sim.root }), code('TSM_BAD_REPORT_DATA'));
    await assert.rejects(tsmReport(Buffer.alloc(64), { root: join(dir, 'nope') }), code('TSM_UNAVAILABLE'));
    const plain = join(dir, 'plain');
    mkdirSync(join(plain, 'taken'), { recursive: true });
    await assert.rejects(tsmReport(Buffer.alloc(64), { root: plain, entryName: 'taken' }), code('TSM_ENTRY_EXISTS'));
    // A directory nobody populates is not a configfs-tsm entry.
    await assert.rejects(tsmReport(Buffer.alloc(64), { root: plain, attributeWaitMs: 50 }), code('TSM_NOT_AN_ENTRY'));
    assert.deepEqual(readdirSync(plain), ['taken']);
    sim.set({ provider: 'tdx_guest' });
    await assert.rejects(configfsTsmSource({ root: sim.root }).collect(Buffer.alloc(64)), code('TSM_WRONG_PROVIDER'));
    sim.set();
  });

  it('the SNP source refuses a report without a VCEK in auxblob (the broker could not verify it)', async () => {
    sim.set({ noVcek: true });
    await assert.rejects(configfsTsmSource({ root: sim.root }).collect(Buffer.alloc(64)), code('TSM_NO_VCEK'));
    sim.set();
    const ev = (await configfsTsmSource({ root: sim.root }).collect(Buffer.alloc(64, 3))) as { outblob: string; auxblob: string };
    assert.equal(Buffer.from(ev.outblob, 'base64').length, 0x4a0);
  });

  it('certTable (the simulator) and parseCertTable (the verifier) agree; a truncated table is refused', () => {
    const t = certTable([{ guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: Buffer.from([1, 2, 3]) }]);
    assert.equal(describeAuxblob(t), 'VCEK (3 bytes)');
    assert.throws(() => describeAuxblob(t.subarray(0, 30)), (e: unknown) => e instanceof CofferError);
    assert.equal(existsSync(sim.root), true);
  });
});
