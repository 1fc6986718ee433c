// Rollback protection of provisioned volumes, end to end: the real broker, a simulated SEV-SNP VM
// behind configfs-tsm (tsm-sim.ts), real cryptsetup on LUKS2 files, a failure-action double. The
// host controls the disk: on any boot after the first it may present a blank one, and the agent
// must refuse (VOLUME_RESET) instead of formatting it with the volume's key; only a first boot
// formats, and reports it to the broker.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CofferError } from '../../src/errors.js';
import { configfsTsmSource, fetchResource, lineLogger, parseAgentConfig, runAgent, volumeHeader, type AgentRun } from '../../src/guest/index.js';
import { http, startTestBroker, type TestBroker } from '../broker/helpers.js';
import { runCli } from '../helpers/cli.js';
import { MEASUREMENT_GOOD, TsmSim, blankVolume, cryptsetupAccepts, failureDouble, findKey, luksVolume, requireTool, sha256File, snpWorld } from './helpers.js';

const world = snpWorld();
let dir: string;
let sim: TsmSim;
let broker: TestBroker;
let provisioner: string;
let fail: ReturnType<typeof failureDouble>;
const agentLogs: string[] = [];

before(async () => {
  requireTool('cryptsetup', 'cryptsetup-bin');
  requireTool('mkfs.ext4', 'e2fsprogs');
  dir = mkdtempSync(join(tmpdir(), 'coffer-agent-vol-'));
  sim = new TsmSim(dir, world);
  await sim.start();
  broker = await startTestBroker(join(dir, 'broker'), { testOnlySnpRoots: world.roots });
  provisioner = await broker.token('provisioner');
  fail = failureDouble(dir);
});

after(async () => {
  await sim?.stop();
  await broker?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function provision(id: string, reprovision = false): Promise<void> {
  const r = await http(`${broker.url}/admin/v0/volumes`, { method: 'POST', bearer: provisioner, body: { id, identity: { snp: { measurements: [MEASUREMENT_GOOD.toString('hex')] } }, ...(reprovision ? { reprovision } : {}) } });
  assert.equal(r.status, reprovision ? 200 : 201, r.text);
}

async function agent(volume: string, id: string, url = broker.url): Promise<AgentRun & { log: string }> {
  const cfg = parseAgentConfig(
    stringify({
      broker: { url, requestTimeoutSeconds: 30 },
      evidence: { source: 'configfs-tsm', tsmRoot: sim.root },
      volume: { resource: `volumes/${id}/key`, device: volume, name: 'coffer-test', filesystem: 'ext4', unlock: 'test-passphrase' },
      deadlineSeconds: 60,
      retry: { initialSeconds: 0.2, maxSeconds: 0.5, factor: 2, jitter: 0.2 },
      failure: { action: 'poweroff', command: fail.command },
    }),
  );
  let log = '';
  const r = await runAgent(cfg, { log: lineLogger((l) => (log += l)) });
  agentLogs.push(log);
  return { ...r, log };
}

/** The volume's key as an attested VM gets it (a release that reports nothing). */
const volumeKey = (id: string) => fetchResource({ broker: broker.url, resource: `volumes/${id}/key`, evidence: configfsTsmSource({ root: sim.root }) });
const initializedAt = async (id: string) => (await broker.running.broker.store.getVolume(id))?.initializedAt;

type Answer = { status: number; body: Buffer } | undefined;
/** A proxy in front of the broker: `answer` replies instead of the broker (which never sees the request), `edit` rewrites its reply. */
async function proxy(edit: (url: string, status: number, body: Buffer) => Answer, answer: (url: string) => Answer = () => undefined): Promise<{ url: string; close(): Promise<void> }> {
  const t = new URL(broker.url);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const own = answer(req.url ?? '');
      if (own) {
        res.writeHead(own.status, { 'content-type': 'application/problem+json', 'content-length': String(own.body.length) });
        res.end(own.body);
        return;
      }
      const up = httpRequest({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host } }, (ur) => {
        const body: Buffer[] = [];
        ur.on('data', (c: Buffer) => body.push(c));
        ur.on('end', () => {
          const out = edit(req.url ?? '', ur.statusCode ?? 502, Buffer.concat(body)) ?? { status: ur.statusCode ?? 502, body: Buffer.concat(body) };
          res.writeHead(out.status, { ...ur.headers, 'content-length': String(out.body.length) });
          res.end(out.body);
        });
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

describe('guest agent: only the first boot of a provisioned volume formats', () => {
  it('first boot formats and reports; a later boot with a blank disk is VOLUME_RESET: failure action, disk untouched, key nowhere', async () => {
    sim.set();
    await provision('vm-db');
    const vol = join(dir, 'db.img');
    blankVolume(vol);
    const first = await agent(vol, 'vm-db');
    assert.equal(first.exitCode, 0, first.log);
    assert.equal(first.outcome?.action, 'formatted');
    assert.deepEqual(first.outcome?.volume, { id: 'vm-db', keyVersion: 1, initialized: false, reported: true });
    assert.equal(typeof (await initializedAt('vm-db')), 'number', 'the broker records it initialized');
    assert.match(first.log, /INFO initialized: the broker records volume vm-db key version 1 as initialized/);
    const allow = (await broker.running.broker.store.queryAudit({ action: 'kbs.volume-initialized', verdict: 'allow' })).at(-1);
    assert.equal(allow?.resource, 'volumes/vm-db/key');

    // Boot 2: the same disk opens, nothing to report.
    const second = await agent(vol, 'vm-db');
    assert.equal(second.exitCode, 0, second.log);
    assert.equal(second.outcome?.action, 'opened');
    assert.deepEqual(second.outcome?.volume, { id: 'vm-db', keyVersion: 1, initialized: true });

    // Boot 3: the host swaps in a blank disk.
    const swapped = join(dir, 'db-blank.img');
    blankVolume(swapped);
    const hash = sha256File(swapped);
    const calls = fail.calls().length;
    const reset = await agent(swapped, 'vm-db');
    assert.equal(reset.exitCode, 1, reset.log);
    assert.match(reset.error ?? '', /^VOLUME_RESET: .*is blank, but the broker says volume vm-db \(key version 1\) was already initialized.*re-provision the volume at the broker/);
    assert.deepEqual(fail.calls().slice(calls), ['poweroff --force --force']);
    assert.equal(sha256File(swapped), hash, 'the blank disk is not written');
    assert.equal(cryptsetupAccepts(vol, await volumeKey('vm-db')), true, 'the real volume still opens with the key');
    const key = await volumeKey('vm-db');
    assert.deepEqual(findKey(key, dir, [...agentLogs, broker.logs.text()]), [], 'the key is in no file and no log');

    // Re-provisioning is the way to start over: a new key version, not initialized, formatted once more.
    await provision('vm-db', true);
    const fresh = await agent(swapped, 'vm-db');
    assert.equal(fresh.exitCode, 0, fresh.log);
    assert.equal(fresh.outcome?.action, 'formatted');
    assert.deepEqual(fresh.outcome?.volume, { id: 'vm-db', keyVersion: 2, initialized: false, reported: true });
  });

  it('a LUKS2 volume the broker does not know as initialized (a lost report) opens and is reported; then a blank disk is refused', async () => {
    sim.set();
    await provision('vm-lost');
    const vol = join(dir, 'lost.img');
    luksVolume(vol, await volumeKey('vm-lost'));
    assert.equal(await initializedAt('vm-lost'), undefined);
    const r = await agent(vol, 'vm-lost');
    assert.equal(r.exitCode, 0, r.log);
    assert.equal(r.outcome?.action, 'opened');
    assert.deepEqual(r.outcome?.volume, { id: 'vm-lost', keyVersion: 1, initialized: false, reported: true });
    assert.equal(typeof (await initializedAt('vm-lost')), 'number');
    const blank = join(dir, 'lost-blank.img');
    blankVolume(blank);
    const reset = await agent(blank, 'vm-lost');
    assert.match(reset.error ?? '', /^VOLUME_RESET: /);
  });

  it('a report the broker refuses: the boot continues with the volume open, the next boot reports it', async () => {
    sim.set();
    await provision('vm-flaky');
    const p = await proxy(
      () => undefined,
      (url) => (url === '/kbs/v0/volume-initialized' ? { status: 403, body: Buffer.from(JSON.stringify({ type: 'urn:coffer:problem:not-released', title: 'x', status: 403, detail: 'refused by a test proxy', code: 'KBS_VOLUME_NOT_RELEASED' })) } : undefined),
    );
    try {
      const vol = join(dir, 'flaky.img');
      blankVolume(vol);
      const r = await agent(vol, 'vm-flaky', p.url);
      assert.equal(r.exitCode, 0, r.log);
      assert.equal(r.outcome?.action, 'formatted');
      assert.deepEqual(r.outcome?.volume, { id: 'vm-flaky', keyVersion: 1, initialized: false, reported: false });
      assert.match(r.log, /WARN initialized: the broker did not record volume vm-flaky as initialized \(KBS_VOLUME_NOT_RELEASED: .*the boot continues/);
      assert.equal(await initializedAt('vm-flaky'), undefined);
      const next = await agent(vol, 'vm-flaky');
      assert.equal(next.outcome?.action, 'opened');
      assert.equal(next.outcome?.volume?.reported, true);
      assert.equal(typeof (await initializedAt('vm-flaky')), 'number');
    } finally {
      await p.close();
    }
  });

  it('the host cannot flip "initialized" to false: the protected header is authenticated (AGENT_JWE_INVALID, nothing formatted)', async () => {
    sim.set();
    await provision('vm-flip');
    const vol = join(dir, 'flip.img');
    blankVolume(vol);
    assert.equal((await agent(vol, 'vm-flip')).outcome?.action, 'formatted');
    const p = await proxy((url, status, body) => {
      if (!url.startsWith('/kbs/v0/resource/') || status !== 200) return undefined;
      const jwe = JSON.parse(body.toString('utf8')) as Record<string, string>;
      const h = JSON.parse(Buffer.from(jwe.protected as string, 'base64url').toString('utf8')) as Record<string, Record<string, unknown>>;
      assert.equal(h['coffer.volume']?.initialized, true);
      (h['coffer.volume'] as Record<string, unknown>).initialized = false;
      jwe.protected = Buffer.from(JSON.stringify(h)).toString('base64url');
      return { status, body: Buffer.from(JSON.stringify(jwe)) };
    });
    try {
      const blank = join(dir, 'flip-blank.img');
      blankVolume(blank);
      const hash = sha256File(blank);
      const r = await agent(blank, 'vm-flip', p.url);
      assert.equal(r.exitCode, 1, r.log);
      assert.match(r.error ?? '', /^AGENT_JWE_INVALID: /);
      assert.equal(sha256File(blank), hash);
    } finally {
      await p.close();
    }
  });

  it('coffer fetch --json shows the volume header; fetching marks nothing', async () => {
    sim.set();
    await provision('vm-cli');
    const r = await runCli(['fetch', '--broker', broker.url, '--resource', 'volumes/vm-cli/key', '--tsm-root', sim.root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(out.volume, { id: 'vm-cli', keyVersion: 1, initialized: false });
    assert.equal(out.size, 32);
    assert.doesNotMatch(r.stdout, /cookie|token|kbs-session/i);
    assert.equal(await initializedAt('vm-cli'), undefined);
  });
});

describe('the coffer.volume protected header (agent side)', () => {
  const bad = (e: unknown) => e instanceof CofferError && e.code === 'AGENT_JWE_BAD_VOLUME_HEADER';
  it('is required for a volume key, exact, and refused on any other resource', () => {
    const good = { id: 'vm-a', keyVersion: 3, initialized: true };
    assert.deepEqual(volumeHeader('volumes/vm-a/key', { 'coffer.volume': good }), good);
    assert.equal(volumeHeader('app/key/one', {}), undefined);
    assert.throws(() => volumeHeader('volumes/vm-a/key', {}), bad, 'missing (an older broker): refused, not guessed');
    for (const v of [
      { ...good, id: 'vm-b' },
      { ...good, keyVersion: 0 },
      { ...good, keyVersion: '3' },
      { ...good, initialized: 'true' },
      { id: 'vm-a', keyVersion: 3 },
      { ...good, extra: 1 },
      null,
      [good],
    ]) {
      assert.throws(() => volumeHeader('volumes/vm-a/key', { 'coffer.volume': v }), bad, JSON.stringify(v));
    }
    assert.throws(() => volumeHeader('app/key/one', { 'coffer.volume': good }), bad);
  });
});
