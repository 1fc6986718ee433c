// The agent with the vTPM (swtpm): TPM quotes as evidence to the real broker (AK pinned through the
// admin API, release by a PCR policy), and the volume key sealed to PCRs in the LUKS2 header so
// that a reboot unlocks without the broker until a PCR changes.
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { SEAL_TOKEN_TYPE, lineLogger, parseAgentConfig, runAgent, tpmAkPem, type AgentRun } from '../../src/guest/index.js';
import { openTpm, parseTpmTarget } from '../../src/guest/tpm/index.js';
import { http, policyFor, startTestBroker, type TestBroker } from '../broker/helpers.js';
import { runCli } from '../helpers/cli.js';
import { requireTools, startSwtpm, type Swtpm } from './tpm/swtpm.js';
import { MEASUREMENT_GOOD, TsmSim, blankVolume, cryptsetupAccepts, deadUrl, failureDouble, findKey, randomKey, sha256File, snpWorld } from './helpers.js';

const world = snpWorld();
const snpKey = randomKey();
let dir: string;
let swtpm: Swtpm;
let sim: TsmSim;
let broker: TestBroker;
let fail: ReturnType<typeof failureDouble>;
let dead: string;
const logs: string[] = [];
let n = 0;

async function pcr(index: number): Promise<string> {
  const tpm = await openTpm(parseTpmTarget(swtpm.tcti));
  try {
    return ((await tpm.readPcrs({ sha256: [index] })).get('sha256')?.get(index) as Buffer).toString('hex');
  } finally {
    await tpm.close();
  }
}

before(async () => {
  requireTools(['swtpm', 'swtpm_setup', 'tpm2_pcrextend', 'tpm2_pcrreset', 'cryptsetup']);
  dir = mkdtempSync(join(tmpdir(), 'coffer-agent-tpm-'));
  swtpm = await startSwtpm({ banks: 'sha256' });
  sim = new TsmSim(dir, world);
  await sim.start();
  broker = await startTestBroker(join(dir, 'broker'), { testOnlySnpRoots: world.roots });
  const admin = await broker.token('admin');
  const adm = (p: string) => `${broker.url}/admin/v0/${p}`;
  // The operator pins the VM's AK, read with `coffer agent tpm-ak`.
  const ak = await runCli(['agent', 'tpm-ak', '--tpm', swtpm.tcti]);
  assert.equal(ak.code, 0, ak.stderr);
  assert.match(ak.stdout, /-----BEGIN PUBLIC KEY-----/);
  assert.equal((await http(adm('trusted-keys/tpm-ak/vm-ak'), { method: 'PUT', bearer: admin, body: { key: ak.stdout } })).status, 200);
  // Its fingerprint (stderr; --json has it too) is what names this VM in the volume identity.
  const akJson = JSON.parse((await runCli(['agent', 'tpm-ak', '--tpm', swtpm.tcti, '--json'])).stdout) as { pem: string; sha256: string; name: string };
  const fingerprint = createHash('sha256').update(createPublicKey(ak.stdout).export({ type: 'spki', format: 'der' })).digest('hex');
  assert.equal(akJson.sha256, fingerprint);
  assert.match(akJson.name, /^000b[0-9a-f]{64}$/);
  assert.ok(ak.stderr.includes(`AK fingerprint (identity.tpm.ak, --tpm-ak): ${fingerprint}`), ak.stderr);
  swtpm.tool(['tpm2_pcrextend', `16:sha256=${'c0'.repeat(32)}`]);
  // PCR 7 anchors the identity (PCRs 16 and 23 are resettable, so they only narrow one); PCR 16 is the one the tests change and restore.
  const v = await http(adm('volumes'), { method: 'POST', bearer: admin, body: { id: 'tpm-vm', identity: { tpm: { pcrs: { sha256: { '7': await pcr(7), '16': await pcr(16) } }, ak: fingerprint } } } });
  assert.equal(v.status, 201, v.text);
  assert.equal((await http(adm('policies/snp'), { method: 'PUT', bearer: admin, body: { policy: policyFor('snp', MEASUREMENT_GOOD) } })).status, 200);
  assert.equal((await http(adm('secrets/snp/key/data'), { method: 'PUT', bearer: admin, body: { value: snpKey.toString('base64') } })).status, 200);
  fail = failureDouble(dir);
  dead = await deadUrl();
});

after(async () => {
  await sim?.stop();
  await broker?.cleanup();
  await swtpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function cfg(vol: string, o: { evidence: 'tpm' | 'configfs-tsm'; resource: string; url?: string; seal?: boolean; deadline?: number }) {
  return parseAgentConfig(
    stringify({
      broker: { url: o.url ?? broker.url, requestTimeoutSeconds: 30 },
      evidence: o.evidence === 'tpm' ? { source: 'tpm', tpmDevice: swtpm.tcti } : { source: 'configfs-tsm', tsmRoot: sim.root },
      volume: { resource: o.resource, device: vol, name: 'tpm-test', unlock: 'test-passphrase' },
      deadlineSeconds: o.deadline ?? 30,
      retry: { initialSeconds: 0.2, maxSeconds: 0.4, factor: 2, jitter: 0 },
      failure: { action: 'poweroff', command: fail.command },
      ...(o.seal ? { tpmSeal: { enabled: true, pcrs: [16], device: swtpm.tcti } } : {}),
    }),
  );
}

async function agent(vol: string, o: Parameters<typeof cfg>[1]): Promise<AgentRun & { log: string }> {
  let log = '';
  const r = await runAgent(cfg(vol, o), { log: lineLogger((l) => (log += l)) });
  logs.push(log);
  return { ...r, log };
}

function sealTokens(vol: string): { type: string; 'coffer-blob': string }[] {
  const r = spawnSync('cryptsetup', ['luksDump', '--dump-json-metadata', vol], { encoding: 'utf8' });
  const meta = JSON.parse(r.stdout) as { tokens: Record<string, { type: string; 'coffer-blob': string }> };
  return Object.values(meta.tokens).filter((t) => t.type === SEAL_TOKEN_TYPE);
}

describe('agent with TPM evidence (swtpm)', () => {
  it('a quote bound to the runtime-data releases the volume key under a PCR policy; the key opens what the agent formatted', async () => {
    const vol = join(dir, `vol-${++n}.img`);
    blankVolume(vol);
    const r = await agent(vol, { evidence: 'tpm', resource: 'volumes/tpm-vm/key' });
    assert.equal(r.exitCode, 0, r.log);
    assert.equal(r.outcome?.action, 'formatted');
    assert.match(r.log, /INFO evidence: TPM quote over 24 SHA-256 PCRs/);
    // The same key through `coffer fetch --evidence tpm`: cryptsetup accepts it, and no other.
    const out = join(dir, 'tpm-vm.key');
    const f = await runCli(['fetch', '--broker', broker.url, '--resource', 'volumes/tpm-vm/key', '--evidence', 'tpm', '--tpm', swtpm.tcti, '--out', out]);
    assert.equal(f.code, 0, f.stderr);
    const key = readFileSync(out);
    rmSync(out);
    assert.equal(cryptsetupAccepts(vol, key), true);
    assert.equal(cryptsetupAccepts(vol, randomKey()), false);
    assert.deepEqual(findKey(key, dir, logs), []);
  });

  it('after a PCR 16 change the broker refuses (policy-denied), the failure action runs, the volume is untouched', async () => {
    const vol = join(dir, `vol-${++n}.img`);
    blankVolume(vol);
    const hash = sha256File(vol);
    const calls = fail.calls().length;
    swtpm.tool(['tpm2_pcrextend', `16:sha256=${'0d'.repeat(32)}`]);
    try {
      const r = await agent(vol, { evidence: 'tpm', resource: 'volumes/tpm-vm/key' });
      assert.equal(r.exitCode, 1);
      assert.match(r.error ?? '', /^KBS_POLICY_DENIED: .*\[urn:coffer:problem:policy-denied\]/);
      assert.deepEqual(fail.calls().slice(calls), ['poweroff --force --force']);
      assert.equal(sha256File(vol), hash);
    } finally {
      swtpm.tool(['tpm2_pcrreset', '16']);
      swtpm.tool(['tpm2_pcrextend', `16:sha256=${'c0'.repeat(32)}`]);
    }
  });
});

describe('agent with the key sealed to the TPM', () => {
  it('seals after a broker unlock, unlocks from the TPM without the broker, is refused after a PCR change, re-seals when the broker releases again', async () => {
    const vol = join(dir, `vol-${++n}.img`);
    blankVolume(vol);
    const o = { evidence: 'configfs-tsm' as const, resource: 'snp/key/data', seal: true };

    const first = await agent(vol, o);
    assert.equal(first.exitCode, 0, first.log);
    assert.equal(first.outcome?.keySource, 'broker');
    assert.match(first.log, /volume key sealed to the TPM under PCRs sha256:16/);
    const t1 = sealTokens(vol);
    assert.equal(t1.length, 1);

    // Reboot without a broker: the TPM unseals, the volume opens, no failure action.
    const calls = fail.calls().length;
    const offline = await agent(vol, { ...o, url: dead, deadline: 2 });
    assert.equal(offline.exitCode, 0, offline.log);
    assert.equal(offline.outcome?.keySource, 'tpm');
    assert.doesNotMatch(offline.log, /INFO auth:/, 'the broker was not contacted');
    assert.equal(fail.calls().length, calls);

    // A PCR changes (another kernel, another Secure Boot state): the TPM refuses, the broker is unreachable → failure action.
    swtpm.tool(['tpm2_pcrextend', `16:sha256=${'ee'.repeat(32)}`]);
    const hash = sha256File(vol);
    const refused = await agent(vol, { ...o, url: dead, deadline: 2 });
    assert.equal(refused.exitCode, 1);
    assert.match(refused.log, /WARN tpm: the TPM did not unseal the key \(TPM_RC_POLICY_FAIL/);
    assert.match(refused.error ?? '', /^AGENT_DEADLINE: /);
    assert.deepEqual(fail.calls().slice(calls), ['poweroff --force --force']);
    assert.equal(sha256File(vol), hash, 'the volume is untouched');

    // The broker is back and releases: the key is re-sealed to the new PCR value, replacing the old token.
    const online = await agent(vol, o);
    assert.equal(online.exitCode, 0, online.log);
    assert.equal(online.outcome?.keySource, 'broker');
    const t2 = sealTokens(vol);
    assert.equal(t2.length, 1);
    assert.notEqual(t2[0]?.['coffer-blob'], t1[0]?.['coffer-blob']);
    const again = await agent(vol, { ...o, url: dead, deadline: 2 });
    assert.equal(again.outcome?.keySource, 'tpm', again.log);

    assert.deepEqual(findKey(snpKey, dir, [...logs, broker.logs.text()]), [], 'the key is nowhere: not in the sealed token, not in the logs');
    swtpm.tool(['tpm2_pcrreset', '16']);
    swtpm.tool(['tpm2_pcrextend', `16:sha256=${'c0'.repeat(32)}`]);
  });

  it('the AK PEM is stable across calls (a primary key from a fixed template)', async () => {
    assert.equal(await tpmAkPem(swtpm.tcti), await tpmAkPem(swtpm.tcti));
  });
});
