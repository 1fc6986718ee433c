// A TPM that was powered on but never started (swtpm without startup-clear), reached over Unix
// sockets: commands fail with TPM_RC_INITIALIZE until TPM2_Startup; swtpm's control channel
// reports its capabilities and shuts the TPM down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { openTpm, parseTpmTarget, SwtpmControl, type Tpm } from '../../../src/guest/tpm/index.js';
import { rejectsCoffer } from './helpers.js';
import { requireTools, startSwtpm, type Swtpm } from './swtpm.js';

let sw: Swtpm;

before(async () => {
  requireTools(['swtpm', 'swtpm_setup']);
  sw = await startSwtpm({ unix: true, startupClear: false, banks: 'sha256' });
});

after(async () => {
  await sw?.stop();
});

async function withTpm<T>(fn: (t: Tpm) => Promise<T>, startup = false): Promise<T> {
  const t = await openTpm(parseTpmTarget(`swtpm:path=${sw.socketPath}`), { startup });
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

test('before TPM2_Startup every command fails with TPM_RC_INITIALIZE; openTpm({startup}) starts it; a second Startup is tolerated', async () => {
  const e = await rejectsCoffer(() => withTpm((t) => t.readPcrs({ sha256: [0] })), 'TPM_RC_INITIALIZE');
  assert.equal(e.details?.rc, 0x100);
  assert.match(e.message, /TPM2_PCR_Read failed: TPM_RC_INITIALIZE \(0x100\)/);
  const pcrs = await withTpm((t) => t.readPcrs({ sha256: [0, 17] }), true);
  assert.ok(pcrs.get('sha256')?.get(0)?.equals(Buffer.alloc(32)));
  // Started already: openTpm with startup again is fine, a bare Startup is the TPM's error.
  await withTpm(async (t) => {
    await rejectsCoffer(() => t.client.startup('clear'), 'TPM_RC_INITIALIZE');
    assert.equal((await t.client.getRandom(16)).length, 16);
  }, true);
});

test("swtpm's control channel: capabilities, CMD_INIT (a power cycle: PCRs reset after Startup), then CMD_SHUTDOWN ends swtpm", async () => {
  const ctrl = new SwtpmControl({ path: sw.ctrlPath as string });
  const caps = await ctrl.capabilities();
  assert.ok((caps & 1n) === 1n && (caps & 2n) === 2n, `PTM_CAP_INIT and PTM_CAP_SHUTDOWN in 0x${caps.toString(16)}`);
  await withTpm((t) => t.extendPcr(16, Buffer.alloc(32, 1)), true);
  assert.ok(!(await withTpm((t) => t.readPcrs({ sha256: [16] }))).get('sha256')?.get(16)?.equals(Buffer.alloc(32)));
  await ctrl.init();
  await rejectsCoffer(() => withTpm((t) => t.readPcrs({ sha256: [16] })), 'TPM_RC_INITIALIZE');
  assert.ok((await withTpm((t) => t.readPcrs({ sha256: [16] }), true)).get('sha256')?.get(16)?.equals(Buffer.alloc(32)));
  const exited = once(sw.child, 'exit');
  await ctrl.shutdown();
  await exited;
  await rejectsCoffer(() => withTpm((t) => t.readPcrs({ sha256: [0] })), 'TPM_UNAVAILABLE');
  await rejectsCoffer(() => new SwtpmControl({ path: sw.ctrlPath as string }, 2000).capabilities(), 'TPM_UNAVAILABLE');
});
