// The agent's pure parts and its packaging: configuration, backoff, the volume probe (blkid and
// cryptsetup as oracles), the systemd unit (systemd-analyze verify) and the dracut module (bash -n).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CofferError } from '../../src/errors.js';
import { backoffMs, lineLogger, parseAgentConfig, probeVolume, runFailureAction } from '../../src/guest/index.js';
import fc from 'fast-check';
import { certTable } from './tsm-sim.js';
import { describeAuxblob } from '../../src/guest/index.js';
import { valueOrCoffer } from '../helpers/property.js';
import { REPO } from '../helpers/build.js';
import { runCli } from '../helpers/cli.js';
import { blankVolume, failureDouble, luksVolume, randomKey, requireTool, VOLUME_BYTES } from './helpers.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-guest-units-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const minimal = { broker: { url: 'https://broker.example:8666' }, volume: { resource: 'a/key/b', device: '/dev/vdb', name: 'data' } };
const badConfig = (doc: unknown, re: RegExp) => assert.throws(() => parseAgentConfig(stringify(doc)), (e: unknown) => e instanceof CofferError && e.code === 'AGENT_BAD_CONFIG' && re.test(e.message));

describe('agent configuration', () => {
  it('fills safe defaults: poweroff, open, a 300 s deadline, pbkdf2, format blank volumes', () => {
    const c = parseAgentConfig(stringify(minimal));
    assert.equal(c.failure.action, 'poweroff');
    assert.equal(c.failure.command, undefined);
    assert.equal(c.volume.unlock, 'open');
    assert.equal(c.deadlineSeconds, 300);
    assert.equal(c.evidence.source, 'configfs-tsm');
    assert.equal(c.evidence.tsmRoot, '/sys/kernel/config/tsm/report');
  });

  it('refuses "continue", unknown keys, ca with a pin, a bad resource, a bad pin, and non-YAML', () => {
    badConfig({ ...minimal, failure: { action: 'continue' } }, /no "continue"/);
    badConfig({ ...minimal, failure: { action: 'poweroff', fallback: 'shell' } }, /failure: Unrecognized key/i);
    badConfig({ ...minimal, extra: 1 }, /Unrecognized key/i);
    badConfig({ ...minimal, broker: { url: 'https://b', ca: '/x.pem', pinSha256: 'ab'.repeat(32) } }, /ca or pinSha256, not both/);
    badConfig({ ...minimal, broker: { url: 'https://b', pinSha256: 'abcd' } }, /broker\.pinSha256: must be a SHA-256/);
    badConfig({ ...minimal, volume: { ...minimal.volume, resource: '../../etc/passwd' } }, /volume\.resource: must be repository\/type\/tag/);
    badConfig({ ...minimal, volume: { ...minimal.volume, name: 'a/b' } }, /volume\.name/);
    badConfig({ ...minimal, volume: { ...minimal.volume, minKeyBytes: 16 } }, /volume\.minKeyBytes/);
    // The unsealed key crosses the TPM interface in clear: never a TPM across the network.
    badConfig({ ...minimal, tpmSeal: { enabled: true, device: 'swtpm:host=10.0.0.5,port=2321' } }, /tpmSeal\.device: must be a TPM device/);
    badConfig({ ...minimal, evidence: { source: 'tpm', tpmDevice: 'tcp://tpm.example:2321' } }, /evidence\.tpmDevice: must be a TPM device/);
    badConfig({ ...minimal, tpmSeal: { enabled: true, device: 'nonsense' } }, /tpmSeal\.device/);
    for (const device of ['/dev/tpmrm0', 'swtpm:host=127.0.0.1,port=2321', 'swtpm:path=/run/swtpm.sock']) assert.equal(parseAgentConfig(stringify({ ...minimal, tpmSeal: { enabled: true, device } })).tpmSeal?.device, device);
    assert.throws(() => parseAgentConfig('broker: [unclosed'), (e: unknown) => e instanceof CofferError && e.code === 'AGENT_BAD_CONFIG');
  });

  it('coffer agent check-config: valid exits 0, invalid exits 2 with one line', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, stringify(minimal));
    const ok = await runCli(['agent', 'check-config', '--config', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /valid .*failure action poweroff/);
    const missing = await runCli(['agent', 'check-config', '--config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^coffer: AGENT_NO_CONFIG: /);
  });

  it('the example configuration in packaging/ is valid', () => {
    const c = parseAgentConfig(readFileSync(join(REPO, 'packaging/agent.yaml.example'), 'utf8'));
    assert.equal(c.volume.unlock, 'open');
  });
});

describe('property: configuration and certificate tables from arbitrary input', () => {
  it('any YAML document or text gives a configuration or an AGENT_BAD_CONFIG, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => stringify(v)), fc.record({ broker: fc.jsonValue(), volume: fc.jsonValue(), failure: fc.jsonValue() }).map((v) => stringify(v))), (text) =>
        valueOrCoffer('parseAgentConfig', () => parseAgentConfig(text), { kinds: ['input'] }),
      ),
      { numRuns: 300 },
    );
  });

  it('any auxblob bytes (and mutations of a real table) give a description or a CofferError', () => {
    const real = certTable([{ guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: Buffer.alloc(40, 1) }, { guid: 'c0b406a4-a803-4952-9743-3fb6014cd0ae', der: Buffer.alloc(10, 2) }]);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, b]) => { const c = Buffer.from(real); c[i] = b; return c; })), (bytes) =>
        valueOrCoffer('describeAuxblob', () => describeAuxblob(Buffer.from(bytes))),
      ),
      { numRuns: 300 },
    );
  });
});

describe('backoff', () => {
  const r = { initialSeconds: 1, maxSeconds: 30, factor: 2, jitter: 0.3 };
  it('grows exponentially, is capped, and the jitter stays within its fraction', () => {
    assert.equal(backoffMs(1, r, 1), 1000);
    assert.equal(backoffMs(2, r, 1), 2000);
    assert.equal(backoffMs(4, r, 1), 8000);
    assert.equal(backoffMs(10, r, 1), 30_000);
    assert.equal(backoffMs(1, r, 0), 700);
    assert.equal(backoffMs(10, r, 0), 21_000);
  });
});

describe('volume probe', () => {
  before(() => requireTool('blkid', 'util-linux'));
  const blkidType = (p: string) => spawnSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', p], { encoding: 'utf8' }).stdout.trim();
  const blkidPtType = (p: string) => spawnSync('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', p], { encoding: 'utf8' }).stdout.trim();

  it('blank: all zero, and blkid finds nothing either', async () => {
    const p = join(dir, 'blank.img');
    blankVolume(p);
    assert.deepEqual(await probeVolume(p), { kind: 'blank', size: VOLUME_BYTES });
    assert.equal(blkidType(p), '');
  });

  it('LUKS2 made by cryptsetup (blkid: crypto_LUKS); a damaged primary header is not "blank"', async () => {
    const p = join(dir, 'luks.img');
    luksVolume(p, randomKey());
    assert.equal((await probeVolume(p)).kind, 'luks2');
    assert.equal(blkidType(p), 'crypto_LUKS');
    const b = readFileSync(p);
    b.fill(0, 0, 4096);
    writeFileSync(p, b);
    const s = await probeVolume(p);
    assert.equal(s.kind, 'other');
    assert.match((s as { what: string }).what, /LUKS2 secondary header/);
  });

  it('LUKS1 is refused (only LUKS2 is opened)', async () => {
    const p = join(dir, 'luks1.img');
    blankVolume(p);
    const r = spawnSync('cryptsetup', ['luksFormat', '--type', 'luks1', '--batch-mode', '--key-file=-', '--pbkdf-force-iterations', '1000', p], { input: randomKey() });
    assert.equal(r.status, 0, r.stderr.toString());
    const s = await probeVolume(p);
    assert.equal(s.kind, 'other');
    assert.match((s as { what: string }).what, /LUKS version 1/);
  });

  const fsCases: { name: string; tool: string; args: string[]; what: RegExp; blkid: string }[] = [
    { name: 'ext4', tool: 'mkfs.ext4', args: ['-q', '-F'], what: /ext2\/3\/4/, blkid: 'ext4' },
    { name: 'swap', tool: 'mkswap', args: [], what: /swap/, blkid: 'swap' },
  ];
  for (const c of fsCases) {
    it(`${c.name} made by ${c.tool}: refused by name (blkid: ${c.blkid})`, async () => {
      requireTool(c.tool, 'e2fsprogs util-linux');
      const p = join(dir, `${c.name}.img`);
      blankVolume(p);
      assert.equal(spawnSync(c.tool, [...c.args, p]).status, 0);
      const s = await probeVolume(p);
      assert.equal(s.kind, 'other');
      assert.match((s as { what: string }).what, c.what);
      assert.equal(blkidType(p), c.blkid);
    });
  }

  it('a GPT (written by hand: protective MBR + header) and stray bytes at the end are refused', async () => {
    const p = join(dir, 'gpt.img');
    blankVolume(p);
    const b = readFileSync(p);
    b[510] = 0x55;
    b[511] = 0xaa;
    b.write('EFI PART', 512, 'latin1');
    writeFileSync(p, b);
    assert.match(((await probeVolume(p)) as { what: string }).what, /MBR|GPT/);
    const q = join(dir, 'tail.img');
    blankVolume(q);
    const t = readFileSync(q);
    t[t.length - 100] = 1;
    writeFileSync(q, t);
    assert.match(((await probeVolume(q)) as { what: string }).what, /near the end/);
    assert.equal(blkidPtType(q), '');
  });

  it('refuses a volume too small for LUKS2, and a missing device, with one line', async () => {
    const p = join(dir, 'small.img');
    writeFileSync(p, Buffer.alloc(1024 * 1024));
    await assert.rejects(probeVolume(p), (e: unknown) => e instanceof CofferError && e.code === 'VOLUME_TOO_SMALL');
    await assert.rejects(probeVolume(join(dir, 'missing.img')), (e: unknown) => e instanceof CofferError && e.code === 'VOLUME_UNREADABLE');
  });

  it('coffer agent probe prints the verdict', async () => {
    const p = join(dir, 'probe.img');
    blankVolume(p);
    const r = await runCli(['agent', 'probe', p]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /blank \(would be formatted on first boot\)/);
  });
});

describe('failure action', () => {
  it('runs the configured command; a failing command reports false (the unit\'s FailureAction= then applies)', async () => {
    const d = failureDouble(dir);
    let log = '';
    assert.equal(await runFailureAction('reboot', [d.command[0] as string, 'reboot', '--force', '--force'], lineLogger((l) => (log += l))), true);
    assert.deepEqual(d.calls(), ['reboot --force --force']);
    assert.equal(await runFailureAction('halt', ['/bin/false'], lineLogger((l) => (log += l))), false);
    assert.equal(await runFailureAction('halt', [join(dir, 'no-such-command')], lineLogger((l) => (log += l))), false);
    assert.match(log, /exiting non-zero so that the unit's FailureAction= applies/);
  });
});

describe('packaging', () => {
  it('coffer-unlock.service passes systemd-analyze verify, with FailureAction and the initrd ordering', () => {
    requireTool('systemd-analyze', 'systemd');
    const unit = readFileSync(join(REPO, 'packaging/systemd/coffer-unlock.service'), 'utf8');
    assert.match(unit, /^FailureAction=poweroff-force$/m);
    assert.match(unit, /^LimitCORE=0$/m, 'no core dump of a process holding the key');
    assert.match(unit, /^DefaultDependencies=no$/m);
    assert.match(unit, /^Before=.*cryptsetup\.target.*local-fs-pre\.target/m);
    assert.match(unit, /^After=network-online\.target/m);
    const tmp = join(dir, 'unit');
    spawnSync('mkdir', ['-p', tmp]);
    // The binary does not exist on the build machine: point ExecStart at one that does.
    writeFileSync(join(tmp, 'coffer-unlock.service'), unit.replace('/usr/bin/coffer agent unlock', '/bin/true agent unlock'));
    const r = spawnSync('systemd-analyze', ['verify', join(tmp, 'coffer-unlock.service')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
  });

  it('the dracut module is valid bash and installs the unit, node and cryptsetup', () => {
    const f = join(REPO, 'packaging/dracut/90coffer/module-setup.sh');
    assert.equal(spawnSync('bash', ['-n', f]).status, 0);
    const text = readFileSync(f, 'utf8');
    for (const s of ['inst_binary node', 'inst_binary cryptsetup', 'coffer-unlock.service', 'rd.shell=0']) assert.ok(text.includes(s), s);
  });
});
