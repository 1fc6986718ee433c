// The agent's TPM unseal path against swtpm and a real LUKS2 header: a coffer-tpm2 token is only
// used when its blob is sealed to (at least) the configured PCRs. The header is not authenticated,
// so a token sealed to other PCRs (which someone with access to the TPM can make) is refused and
// the broker is asked instead.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lineLogger, sealToVolume, unsealFromVolume, SEAL_TOKEN_TYPE } from '../../src/guest/index.js';
import { openTpm, parseTpmTarget } from '../../src/guest/tpm/index.js';
import { luksVolume, randomKey } from './helpers.js';
import { requireTools, startSwtpm, type Swtpm } from './tpm/swtpm.js';

let dir: string;
let sw: Swtpm;

before(async () => {
  requireTools(['swtpm', 'swtpm_setup', 'cryptsetup']);
  dir = mkdtempSync(join(tmpdir(), 'coffer-tpm-agent-'));
  sw = await startSwtpm({ banks: 'sha256' });
});

after(async () => {
  await sw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function importToken(vol: string, blob: Buffer): void {
  const token = JSON.stringify({ type: SEAL_TOKEN_TYPE, keyslots: [], 'coffer-blob': blob.toString('base64') });
  const r = spawnSync('cryptsetup', ['token', 'import', '--json-file=-', vol], { input: token });
  assert.equal(r.status, 0, r.stderr.toString());
}

test('a token sealed to other PCRs than the configured ones is not used; one sealed to them is', async () => {
  const key = randomKey();
  const settings = { target: sw.tcti, pcrs: [7, 16] };
  let log = '';
  const logger = lineLogger((l) => (log += l));

  // Sealed to PCR 23 only (its current value): the TPM would release it, the agent must not ask it to.
  const forged = join(dir, 'forged.img');
  luksVolume(forged, key);
  const tpm = await openTpm(parseTpmTarget(sw.tcti));
  let blob23: Buffer;
  let blob7: Buffer;
  try {
    blob23 = await tpm.seal(key, { sha256: [23] });
    blob7 = await tpm.seal(key, { sha256: [7] });
    assert.ok((await tpm.unseal(blob23)).equals(key), 'the TPM itself would unseal it');
  } finally {
    await tpm.close();
  }
  importToken(forged, blob23);
  assert.equal(await unsealFromVolume(forged, settings, logger), undefined);
  assert.match(log, /WARN tpm: the TPM did not unseal the key \(TPM_SEAL_PCRS_MISMATCH: the token is sealed to sha256:23, which leaves out the configured PCR\(s\) 7,16\)/);

  // A subset of the configured PCRs is refused too.
  const partial = join(dir, 'partial.img');
  luksVolume(partial, key);
  importToken(partial, blob7);
  log = '';
  assert.equal(await unsealFromVolume(partial, settings, logger), undefined);
  assert.match(log, /TPM_SEAL_PCRS_MISMATCH: .* leaves out the configured PCR\(s\) 16\)/);

  // The agent's own seal (to the configured PCRs) unseals; so does it with a subset configured.
  const good = join(dir, 'good.img');
  luksVolume(good, key);
  await sealToVolume(good, key, settings, logger);
  assert.ok((await unsealFromVolume(good, settings, logger))?.equals(key));
  assert.ok((await unsealFromVolume(good, { ...settings, pcrs: [16] }, logger))?.equals(key));
  assert.ok(!log.includes(key.toString('hex')) && !log.includes(key.toString('base64')), 'the key is not logged');
});
