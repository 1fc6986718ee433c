// `npm run demo`: the whole Coffer story on one machine, narrated for a newcomer.
//
// SIMULATION. There is no confidential hardware here: a generated "AMD" certificate chain signs
// SEV-SNP reports in a simulated configfs-tsm (test/guest/tsm-sim.ts), and the broker trusts that
// chain only through an in-process test option (testOnlySnpRoots) that no flag or environment
// variable of the real broker reaches. Everything else is the real code: the broker, the guest
// agent, the KBS protocol over HTTP, and cryptsetup on a LUKS2 container in a file. Without
// device-mapper, the agent checks the key with `cryptsetup open --test-passphrase` (explicit
// agent setting volume.unlock) instead of mapping the volume.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { brokerPaths, startBroker, type RunningBroker } from '../src/broker/index.js';
import { lineLogger, parseAgentConfig, probeVolume, runAgent } from '../src/guest/index.js';
import { MEASUREMENT_GOOD, MEASUREMENT_OTHER, TsmSim, blankVolume, failureDouble, sha256File, snpWorld } from '../test/guest/helpers.js';

const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
// eslint-disable-next-line no-control-regex
const out = (s = '') => process.stdout.write(`${color ? s : s.replace(/\x1b\[[0-9;]*m/g, '')}\n`);
const step = (n: number, title: string) => out(`\n\x1b[1m── ${n}. ${title}\x1b[0m`);
const say = (s: string) => out(`   ${s}`);
const indent = (line: string) => process.stdout.write(`     │ ${line}`);

async function admin(b: RunningBroker, token: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${b.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
  const j = (await r.json()) as Record<string, unknown>;
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

async function main(): Promise<number> {
  for (const tool of ['cryptsetup', 'mkfifo']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      out(`the demo needs ${tool}: apt-get install ${tool === 'cryptsetup' ? 'cryptsetup-bin' : 'coreutils'}`);
      return 1;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'coffer-demo-'));
  let broker: RunningBroker | undefined;
  let sim: TsmSim | undefined;
  try {
    out('Coffer demo: a confidential VM proves itself to a key broker and unlocks its encrypted disk.');
    out('\x1b[33mSIMULATION: the SEV-SNP hardware is simulated; reports are signed by a generated stand-in for AMD that the broker trusts for this demo only.\x1b[0m');
    out(`Working directory: ${dir}`);

    step(1, 'Start the key broker');
    const world = snpWorld();
    broker = await startBroker({ paths: brokerPaths({ home: join(dir, 'broker') }), host: '127.0.0.1', port: 0, logStream: { write: () => true } as never, testOnlySnpRoots: world.roots });
    const token = readFileSync(broker.paths.adminTokenFile, 'utf8').trim();
    say(`broker listening on ${broker.url} (SQLite store, key-encryption key and token-signing key created in ${join(dir, 'broker')})`);
    say('it trusts the simulated AMD root (in-process test option; the real broker pins AMD\'s roots)');

    step(2, 'Provision a volume key for one VM identity');
    const volume = (await admin(broker, token, 'POST', '/admin/v0/volumes', { id: 'demo-vm', label: 'demo data volume', identity: { snp: { measurements: [MEASUREMENT_GOOD.toString('hex')] } } })) as { path: string; keyVersion: number };
    const v = { volume };
    say(`POST /admin/v0/volumes → ${v.volume.path}, key version ${v.volume.keyVersion}`);
    say(`the broker generated a 32-byte key and a release policy: only an attested SEV-SNP VM with launch measurement ${MEASUREMENT_GOOD.toString('hex').slice(0, 16)}… gets it.`);
    say('nobody sees the key: not the admin, not the provisioner. It leaves the broker only encrypted to a key that exists inside the VM.');

    step(3, 'Boot a (simulated) confidential VM');
    sim = new TsmSim(join(dir, 'vm'), world);
    await sim.start();
    const disk = join(dir, 'vm', 'data-disk.img');
    blankVolume(disk);
    const fail = failureDouble(join(dir, 'vm'));
    say(`configfs-tsm at ${sim.root}: the agent asks "the firmware" for reports exactly as on /sys/kernel/config/tsm/report`);
    say(`data disk: ${disk} (32 MiB, all zero: a fresh cloud disk). The agent sees: ${(await probeVolume(disk)).kind}`);
    say('failure action: a stand-in for `systemctl poweroff --force --force` that records the call instead of powering off this machine');
    const cfg = parseAgentConfig(
      stringify({
        broker: { url: broker.url },
        evidence: { source: 'configfs-tsm', tsmRoot: sim.root },
        volume: { resource: v.volume.path, device: disk, name: 'demo-data', filesystem: 'none', unlock: 'test-passphrase' },
        deadlineSeconds: 30,
        failure: { action: 'poweroff', command: fail.command },
      }),
    );
    const boot = async () => runAgent(cfg, { log: lineLogger(indent) });

    step(4, 'First boot: attest, receive the key, format the blank disk as LUKS2');
    say('coffer agent unlock (what coffer-unlock.service runs in the initrd):');
    let r = await boot();
    if (r.exitCode !== 0) throw new Error(`first boot failed: ${r.error}`);
    const dump = spawnSync('cryptsetup', ['luksDump', disk], { encoding: 'utf8' }).stdout;
    say(`the disk now holds a LUKS2 header: ${dump.split('\n').filter((l) => /^(Version|Label|\s+\d+: luks2)/.test(l)).map((l) => l.trim()).join('; ')}`);
    say('the key never touched a file or a command line: cryptsetup read it on standard input, and the agent zeroed it afterwards.');

    step(5, 'Second boot: the same VM opens its disk');
    const before = sha256File(disk);
    r = await boot();
    if (r.exitCode !== 0 || r.outcome?.action !== 'opened') throw new Error(`second boot failed: ${r.error}`);
    say('a new nonce, a new in-memory key pair, a new report: the broker released the key again, and it opens the LUKS2 key slot.');

    step(6, 'A VM with a different measurement (someone changed the firmware or the image)');
    sim.set({ measurement: MEASUREMENT_OTHER.toString('hex') });
    r = await boot();
    sim.set();
    if (r.exitCode === 0) throw new Error('the changed VM was given the key');
    say(`refused: ${(r.error ?? '').slice(0, 160)}…`);
    say(`failure action recorded: ${fail.calls().map((c) => `\`systemctl ${c}\``).join(', ')}: the VM powers off; no shell, no unencrypted fallback`);
    say(`the disk is untouched: ${sha256File(disk) === before ? 'same SHA-256 as before the attempt' : 'CHANGED (this is a bug)'}`);

    step(7, 'What the broker recorded');
    const audit = (await admin(broker, token, 'GET', '/admin/v0/audit?limit=200')) as unknown as { records?: Record<string, unknown>[] } | Record<string, unknown>[];
    const recs = (Array.isArray(audit) ? audit : (audit.records ?? [])).filter((a) => String(a.action).startsWith('kbs.'));
    for (const a of recs.slice(-6)) say(`${String(a.action).padEnd(14)} ${String(a.verdict).padEnd(5)} ${String(a.resource ?? '').padEnd(20)} ${String(a.problem ?? a.rule ?? '')}`);
    say('every attestation and release decision, allow or deny, with the rule that decided; never a key.');

    out('\nDone. In a real deployment: docs/boot.md (the boot sequence), docs/protocol.md (the protocol), packaging/ (systemd unit, dracut module).');
    return 0;
  } finally {
    await sim?.stop();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
