// The guest agent end to end: the real broker (trusting a fake AMD root in-process only), a
// simulated SEV-SNP VM behind a configfs-tsm tree (tsm-sim.ts), real cryptsetup on LUKS2 files,
// and a failure-action double that records what would have powered the VM off.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CofferError } from '../../src/errors.js';
import { checkLuksMetadata, configfsTsmSource, fetchResource, lineLogger, parseAgentConfig, runAgent, type AgentRun } from '../../src/guest/index.js';
import { http, policyFor, startTestBroker, type TestBroker } from '../broker/helpers.js';
import { ensureBuilt } from '../helpers/build.js';
import { BIN, runBin, runCli } from '../helpers/cli.js';
import {
  MEASUREMENT_GOOD,
  MEASUREMENT_OTHER,
  POLICY_DEBUG,
  TsmSim,
  blankVolume,
  type LuksMeta,
  cryptsetupAccepts,
  deadUrl,
  failureDouble,
  findKey,
  luksVolume,
  randomKey,
  requireTool,
  rewriteLuksJson,
  runBinRaw,
  sha256File,
  snpWorld,
  tamperingProxy,
} from './helpers.js';

const RESOURCE = 'vm1/key/data';
const world = snpWorld();
const volumeKey = randomKey();
let dir: string;
let sim: TsmSim;
let broker: TestBroker;
let fail: ReturnType<typeof failureDouble>;
const agentLogs: string[] = [];
let n = 0;

before(async () => {
  requireTool('cryptsetup', 'cryptsetup-bin');
  requireTool('mkfs.ext4', 'e2fsprogs');
  dir = mkdtempSync(join(tmpdir(), 'coffer-agent-'));
  sim = new TsmSim(dir, world);
  await sim.start();
  broker = await startTestBroker(join(dir, 'broker'), { testOnlySnpRoots: world.roots });
  const admin = await broker.token('admin');
  const pol = await http(`${broker.url}/admin/v0/policies/vm1`, { method: 'PUT', bearer: admin, body: { policy: policyFor('vm1-release', MEASUREMENT_GOOD) } });
  assert.equal(pol.status, 200, pol.text);
  const put = await http(`${broker.url}/admin/v0/secrets/${RESOURCE}`, { method: 'PUT', bearer: admin, body: { value: Buffer.from(volumeKey).toString('base64') } });
  assert.equal(put.status, 200, put.text);
  fail = failureDouble(dir);
});

// Each test searched its own volume for the key; dropping it keeps later searches small.
afterEach(() => {
  for (const f of readdirSync(dir)) if (/^(vol|late)-\d+\.img$/.test(f)) rmSync(join(dir, f));
});

after(async () => {
  await sim?.stop();
  await broker?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function config(volume: string, over: { url?: string; deadline?: number; unlock?: string } = {}) {
  return parseAgentConfig(
    stringify({
      broker: { url: over.url ?? broker.url, requestTimeoutSeconds: 30 },
      evidence: { source: 'configfs-tsm', tsmRoot: sim.root },
      volume: { resource: RESOURCE, device: volume, name: 'coffer-test', filesystem: 'ext4', unlock: over.unlock ?? 'test-passphrase' },
      deadlineSeconds: over.deadline ?? 60,
      retry: { initialSeconds: 0.2, maxSeconds: 0.5, factor: 2, jitter: 0.2 },
      failure: { action: 'poweroff', command: fail.command },
    }),
  );
}

async function agent(volume: string, over: Parameters<typeof config>[1] = {}): Promise<AgentRun & { log: string }> {
  let log = '';
  const r = await runAgent(config(volume, over), { log: lineLogger((l) => (log += l)) });
  agentLogs.push(log);
  return { ...r, log };
}

function leaks(): string[] {
  return findKey(volumeKey, dir, [...agentLogs, broker.logs.text()]);
}

describe('guest agent: unlock', () => {
  it('fetchResource: RCAR with configfs-tsm evidence returns the secret, decrypted with the in-memory key', async () => {
    sim.set();
    const secret = await fetchResource({ broker: broker.url, resource: RESOURCE, evidence: configfsTsmSource({ root: sim.root }) });
    assert.deepEqual(secret, volumeKey);
  });

  it('opens an existing LUKS2 volume with the released key (cryptsetup accepts it), without running the failure action', async () => {
    sim.set();
    const vol = join(dir, `vol-${++n}.img`);
    luksVolume(vol, volumeKey);
    const hash = sha256File(vol);
    const r = await agent(vol);
    assert.equal(r.exitCode, 0, r.log);
    assert.equal(r.outcome?.action, 'opened');
    assert.equal(sha256File(vol), hash, 'opening does not write the volume');
    assert.deepEqual(fail.calls(), []);
    assert.match(r.log, /INFO attest: evidence accepted/);
    assert.match(r.log, /INFO done: .* unlocked/);
    assert.deepEqual(leaks(), []);
  });

  it('first boot: formats a blank volume as LUKS2 with the released key; cryptsetup accepts that key and no other', async () => {
    sim.set();
    const vol = join(dir, `vol-${++n}.img`);
    blankVolume(vol);
    const r = await agent(vol);
    assert.equal(r.exitCode, 0, r.log);
    assert.equal(r.outcome?.action, 'formatted');
    assert.equal(cryptsetupAccepts(vol, volumeKey), true);
    assert.equal(cryptsetupAccepts(vol, randomKey()), false);
    const dump = spawnSync('cryptsetup', ['luksDump', vol], { encoding: 'utf8' });
    assert.match(dump.stdout, /Version:\s+2/);
    assert.deepEqual(fail.calls(), []);
    assert.deepEqual(leaks(), []);
    // Second boot: the same volume is now opened, not formatted again.
    const again = await agent(vol);
    assert.equal(again.outcome?.action, 'opened');
  });

  it('coffer fetch --out writes the secret to a new 0600 file and refuses to overwrite it', async () => {
    sim.set();
    const out = join(dir, 'fetched.key');
    const r = await runCli(['fetch', '--broker', broker.url, '--resource', RESOURCE, '--tsm-root', sim.root, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(out), volumeKey);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const again = await runCli(['fetch', '--broker', broker.url, '--resource', RESOURCE, '--tsm-root', sim.root, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /FETCH_OUT_EXISTS/);
    // This file is the one place the key was asked to go.
    rmSync(out);
  });

  it('coffer fetch: a refusal is one line with the problem type, exit 1', async () => {
    sim.set({ measurement: MEASUREMENT_OTHER.toString('hex') });
    const r = await runCli(['fetch', '--broker', broker.url, '--resource', RESOURCE, '--tsm-root', sim.root, '--out', join(dir, 'never.key')]);
    sim.set();
    assert.equal(r.code, 1);
    const errLines = r.stderr.split('\n').filter((l) => l.startsWith('coffer: '));
    assert.equal(errLines.length, 1, r.stderr);
    assert.match(errLines[0] as string, /^coffer: KBS_POLICY_DENIED: release of vm1\/key\/data refused by the broker \(HTTP 403\): .*\[urn:coffer:problem:policy-denied\]$/);
  });

  it('waits for a device that appears late (udev), and powers off when it never does', async () => {
    sim.set();
    const vol = join(dir, `vol-${++n}.img`);
    const late = join(dir, `late-${n}.img`);
    luksVolume(late, volumeKey);
    const timer = setTimeout(() => renameSync(late, vol), 400);
    const r = await agent(vol);
    clearTimeout(timer);
    assert.equal(r.exitCode, 0, r.log);
    assert.match(r.log, /INFO volume: waiting for .* to appear/);
    const calls = fail.calls().length;
    const missing = await agent(join(dir, 'never-there.img'), { deadline: 1 });
    assert.equal(missing.exitCode, 1);
    assert.match(missing.error ?? '', /^VOLUME_MISSING: /);
    assert.deepEqual(fail.calls().slice(calls), ['poweroff --force --force']);
  });

  it('the key reaches cryptsetup on standard input only: never in its argv or environment (a wrapper records both)', async () => {
    sim.set();
    const vol = join(dir, `vol-${++n}.img`);
    blankVolume(vol);
    const record = join(dir, 'cryptsetup-argv.log');
    const wrapper = join(dir, 'cryptsetup-wrapper');
    writeFileSync(wrapper, `#!/bin/sh\nprintf 'argv: %s\\n' "$*" >> '${record}'\nenv >> '${record}'\nexec cryptsetup "$@"\n`);
    chmodSync(wrapper, 0o755);
    const c = config(vol);
    let log = '';
    const r = await runAgent({ ...c, volume: { ...c.volume, cryptsetup: wrapper } }, { log: lineLogger((l) => (log += l)) });
    agentLogs.push(log);
    assert.equal(r.exitCode, 0, log);
    const rec = readFileSync(record, 'utf8');
    assert.match(rec, /argv: luksFormat --type luks2 --batch-mode --key-file=- /);
    // Opened through a checked copy of the header, never the disk's header read a second time.
    assert.match(rec, /argv: open --type luks2 --test-passphrase --key-file=- --header \S+coffer-hdr-\S+\/header /);
    assert.match(rec, /argv: luksFormat .*--cipher aes-xts-plain64 --key-size 512 /);
    assert.deepEqual(leaks(), [], 'not in the recorded argv and environment either');
  });

  it('the real bin/coffer: `coffer fetch` writes the raw secret to standard output; `coffer agent unlock` exits 0', async () => {
    ensureBuilt();
    sim.set();
    const f = await runBinRaw(BIN, ['fetch', '--broker', broker.url, '--resource', RESOURCE, '--tsm-root', sim.root, '--timeout', '120']);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(f.stdout, volumeKey);
    const vol = join(dir, `vol-${++n}.img`);
    luksVolume(vol, volumeKey);
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, stringify({ broker: { url: broker.url, requestTimeoutSeconds: 120 }, evidence: { tsmRoot: sim.root }, volume: { resource: RESOURCE, device: vol, name: 'bin-test', unlock: 'test-passphrase' }, failure: { command: fail.command } }));
    const a = await runBin(['agent', 'unlock', '--config', file]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, /coffer-agent: \S+ INFO done: /);
    agentLogs.push(a.stderr);
  });

  it('coffer agent unlock: an invalid configuration exits 2 without running a failure action (the unit\'s FailureAction= does)', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, stringify({ broker: { url: broker.url }, volume: { resource: RESOURCE, device: '/dev/null', name: 'x' }, failure: { action: 'continue' } }));
    const calls = fail.calls().length;
    const r = await runCli(['agent', 'unlock', '--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /AGENT_BAD_CONFIG: .*failure\.action: must be one of poweroff, reboot, halt \(there is no "continue"\)/);
    assert.equal(fail.calls().length, calls);
  });
});

describe('guest agent: every failure ends in the failure action, the volume untouched and the key unwritten', () => {
  const cases: { name: string; code: string; setup(vol: string): Promise<{ url?: string; deadline?: number; cleanup?: () => Promise<void> }> }[] = [
    {
      name: 'broker down past the deadline',
      code: 'AGENT_DEADLINE',
      setup: async (vol) => {
        luksVolume(vol, volumeKey);
        return { url: await deadUrl(), deadline: 2 };
      },
    },
    {
      name: 'attestation policy refusal (a debuggable guest)',
      code: 'KBS_ATTESTATION_DENIED',
      setup: async (vol) => {
        luksVolume(vol, volumeKey);
        sim.set({ policy: POLICY_DEBUG });
        return {};
      },
    },
    {
      name: 'wrong launch measurement',
      code: 'KBS_POLICY_DENIED',
      setup: async (vol) => {
        blankVolume(vol);
        sim.set({ measurement: MEASUREMENT_OTHER.toString('hex') });
        return {};
      },
    },
    {
      name: 'a tampered JWE',
      code: 'AGENT_JWE_INVALID',
      setup: async (vol) => {
        blankVolume(vol);
        const proxy = await tamperingProxy(broker.url);
        return { url: proxy.url, cleanup: () => proxy.close() };
      },
    },
    {
      name: 'a wrong key (the volume was formatted with another)',
      code: 'VOLUME_KEY_REJECTED',
      setup: async (vol) => {
        luksVolume(vol, randomKey());
        return {};
      },
    },
    {
      name: 'a volume that is neither blank nor LUKS (ext4)',
      code: 'VOLUME_UNKNOWN_CONTENT',
      setup: async (vol) => {
        blankVolume(vol);
        assert.equal(spawnSync('mkfs.ext4', ['-q', '-F', vol]).status, 0);
        return {};
      },
    },
    {
      name: 'a volume with data but no signature',
      code: 'VOLUME_UNKNOWN_CONTENT',
      setup: async (vol) => {
        blankVolume(vol);
        const b = readFileSync(vol);
        b.write('precious data', 3 * 1024 * 1024);
        writeFileSync(vol, b);
        return {};
      },
    },
    {
      // wipefs, or a zeroed LUKS header: start and end blank, the data still there in between.
      name: 'a volume zero at its first 4 MiB and last 1 MiB, with data in the middle',
      code: 'VOLUME_UNKNOWN_CONTENT',
      setup: async (vol) => {
        blankVolume(vol);
        const b = readFileSync(vol);
        randomBytes(1024 * 1024).copy(b, 12 * 1024 * 1024);
        writeFileSync(vol, b);
        return {};
      },
    },
    {
      // A host-crafted header: with cipher_null key slots any key opens the volume, and its data
      // would be in clear. cryptsetup accepts such a header (checked here); the agent must not.
      name: 'a LUKS2 header with cipher_null key slot and segment (opens with any key)',
      code: 'VOLUME_WEAK_HEADER',
      setup: async (vol) => {
        luksVolume(vol, volumeKey);
        rewriteLuksJson(vol, (m) => {
          m.segments['0'].encryption = 'cipher_null-ecb';
          m.keyslots['0'].area.encryption = 'cipher_null-ecb';
        });
        assert.equal(spawnSync('cryptsetup', ['luksDump', vol]).status, 0, 'cryptsetup takes the crafted header as valid');
        return {};
      },
    },
    {
      name: 'a LUKS2 header whose key slot alone is cipher_null (the host knows the volume key)',
      code: 'VOLUME_WEAK_HEADER',
      setup: async (vol) => {
        luksVolume(vol, volumeKey);
        rewriteLuksJson(vol, (m) => {
          m.keyslots['0'].area.encryption = 'cipher_null-ecb';
        });
        assert.equal(spawnSync('cryptsetup', ['luksDump', vol]).status, 0);
        return {};
      },
    },
    {
      name: 'a report generation race (someone else wrote inblob)',
      code: 'TSM_GENERATION_RACE',
      setup: async (vol) => {
        blankVolume(vol);
        sim.set({ meddle: true });
        return {};
      },
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const vol = join(dir, `vol-${++n}.img`);
      const s = await c.setup(vol);
      const hash = sha256File(vol);
      const calls = fail.calls().length;
      try {
        const r = await agent(vol, { ...(s.url ? { url: s.url } : {}), ...(s.deadline ? { deadline: s.deadline } : {}) });
        assert.equal(r.exitCode, 1, r.log);
        assert.match(r.error ?? '', new RegExp(`^${c.code}: `), r.log);
        assert.match(r.log, new RegExp(`ERROR unlock: FAILED: ${c.code}: `));
        assert.deepEqual(fail.calls().slice(calls), ['poweroff --force --force'], 'the failure action ran once');
        assert.equal(sha256File(vol), hash, 'the volume is untouched');
        assert.deepEqual(leaks(), [], 'the key is nowhere in the temp tree or the logs');
        if (c.code === 'AGENT_DEADLINE') assert.match(r.log, /WARN fetch: attempt 1 failed \(BROKER_UNREACHABLE/);
      } finally {
        sim.set();
        await s.cleanup?.();
      }
    });
  }

  it('checkLuksMetadata accepts the header cryptsetup makes and refuses each weakened variant', () => {
    const vol = join(dir, `vol-${++n}.img`);
    luksVolume(vol, volumeKey);
    const good = spawnSync('cryptsetup', ['luksDump', '--dump-json-metadata', vol], { encoding: 'utf8' }).stdout;
    checkLuksMetadata(good, vol);
    const variants: [string, (m: LuksMeta) => void][] = [
      ['segment cipher_null', (m) => (m.segments['0'].encryption = 'cipher_null-ecb')],
      ['segment aes-cbc', (m) => (m.segments['0'].encryption = 'aes-cbc-essiv:sha256')],
      ['key slot cipher_null', (m) => (m.keyslots['0'].area.encryption = 'cipher_null')],
      ['a second, null key slot', (m) => (m.keyslots['1'] = { ...m.keyslots['0'], area: { ...m.keyslots['0'].area, encryption: 'cipher_null-ecb' } })],
      ['short volume key', (m) => (m.keyslots['0'].key_size = 32)],
      ['linear segment', (m) => (m.segments['0'].type = 'linear')],
      ['two segments', (m) => (m.segments['1'] = { ...m.segments['0'] })],
      ['no key slots', (m) => (m.keyslots = {} as LuksMeta['keyslots'])],
      ['reencryption requirement', (m) => (m.config.requirements = { mandatory: ['online-reencrypt-v2'] })],
      ['integrity', (m) => (m.segments['0'].integrity = { type: 'hmac(sha256)' })],
    ];
    for (const [name, edit] of variants) {
      const m = JSON.parse(good) as LuksMeta;
      edit(m);
      assert.throws(() => checkLuksMetadata(JSON.stringify(m), vol), (e: unknown) => e instanceof CofferError && e.code === 'VOLUME_WEAK_HEADER', name);
    }
    assert.throws(() => checkLuksMetadata('not json', vol), (e: unknown) => e instanceof CofferError && e.code === 'VOLUME_WEAK_HEADER');
  });

  it('the key search would find a leak (the search is not blind)', () => {
    const f = join(dir, 'leak-check.txt');
    writeFileSync(f, `log line ${volumeKey.toString('base64')}\n`);
    assert.deepEqual(findKey(volumeKey, dir), [f]);
    rmSync(f);
    assert.deepEqual(findKey(volumeKey, dir, [`x${volumeKey.toString('hex')}`]), ['text #0']);
  });

  it('a CofferError for every refusal (no stack trace reaches the operator)', async () => {
    await assert.rejects(fetchResource({ broker: 'http://192.0.2.1:1', resource: RESOURCE, evidence: configfsTsmSource({ root: sim.root }) }), (e: unknown) => e instanceof CofferError && e.code === 'AGENT_INSECURE_URL');
    await assert.rejects(fetchResource({ broker: broker.url, resource: RESOURCE, tls: { pinSha256: 'ab'.repeat(32) }, evidence: configfsTsmSource({ root: sim.root }) }), (e: unknown) => e instanceof CofferError && e.code === 'AGENT_BAD_TLS');
    await assert.rejects(fetchResource({ broker: broker.url, resource: '../etc', evidence: configfsTsmSource({ root: sim.root }) }), (e: unknown) => e instanceof CofferError && e.code === 'AGENT_BAD_RESOURCE');
  });
});
