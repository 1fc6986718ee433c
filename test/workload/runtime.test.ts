// OCI runtime config.json (runtime-spec v1.2.0) generated from a manifest: the hardened settings
// are there, secrets are not, and the schema refuses what a generator must never emit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest, quantityBytes, runtimeConfig, runtimeConfigSchema } from '../../src/workload/index.js';

const text = readFileSync(join(import.meta.dirname, 'fixtures', 'hardened.yaml'), 'utf8');
const m = () => parseManifest(text).manifest;
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c || assert.fail(`expected ${c}, got ${(e as { code?: string }).code}: ${(e as Error).message}`);

test('hardened container: no capabilities, allow-list seccomp, read-only root, non-root user, no_new_privs, masked paths, limits', () => {
  const r = runtimeConfig(m(), 'api', { Env: ['PATH=/usr/bin', 'LOG_LEVEL=warn'], Cmd: ['ignored'], User: '0' });
  const c = r.config;
  assert.equal(c.ociVersion, '1.2.0');
  assert.deepEqual(c.process.args, ['/app/api', '--listen', ':8443']);
  assert.deepEqual(c.process.user, { uid: 10001, gid: 10001 }, 'the manifest user wins over the image');
  assert.ok(c.process.env.includes('LOG_LEVEL=info') && !c.process.env.includes('LOG_LEVEL=warn'));
  assert.deepEqual(c.process.capabilities, { bounding: [], effective: [], permitted: [] });
  assert.equal(c.process.noNewPrivileges, true);
  assert.equal(c.root.readonly, true);
  const seccomp = c.linux.seccomp;
  assert.ok(seccomp);
  assert.equal(seccomp.defaultAction, 'SCMP_ACT_ERRNO');
  const allowed = new Set(seccomp.syscalls.flatMap((s) => s.names));
  for (const s of ['read', 'write', 'openat', 'execve', 'futex']) assert.ok(allowed.has(s), s);
  assert.ok(!seccomp.syscalls.some((s) => s.names.includes('clone3')), 'clone3 is not filterable by flags: refused');
  const clone = seccomp.syscalls.find((s) => s.names.includes('clone'));
  assert.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], 'clone without namespace flags only');
  assert.equal(seccomp.syscalls.filter((s) => s.names.includes('clone')).length, 1);
  for (const s of ['mount', 'umount2', 'unshare', 'setns', 'bpf', 'ptrace', 'kexec_load', 'init_module', 'keyctl', 'perf_event_open', 'pivot_root', 'open_tree', 'fsopen', 'userfaultfd', 'reboot', 'swapon']) assert.ok(!allowed.has(s), `${s} must not be allowed`);
  assert.ok(c.linux.maskedPaths.includes('/proc/kcore'));
  assert.ok(c.linux.readonlyPaths.includes('/proc/sys'));
  assert.deepEqual(c.linux.namespaces.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  assert.deepEqual(c.linux.resources, { memory: { limit: 1024 ** 3 }, cpu: { quota: 200_000, period: 100_000 }, pids: { limit: 256 } });
  // Volumes: the encrypted one from the agent's state dir, the tmpfs sized; the secret file read-only.
  const byDest = new Map(c.mounts.map((x) => [x.destination, x]));
  assert.equal(byDest.get('/var/lib/pay')?.source, '/run/coffer/volumes/data');
  assert.deepEqual(byDest.get('/tmp')?.options, ['nosuid', 'nodev', 'noexec', 'rw', `size=${64 * 1024 * 1024}`]);
  assert.ok(byDest.get('/run/secrets/db')?.options?.includes('ro'));
  assert.deepEqual(r.secretFiles, [{ source: '/run/coffer/secrets/api/0', destination: '/run/secrets/db', resource: 'payments/key/db' }]);
  assert.ok(runtimeConfigSchema.safeParse(JSON.parse(JSON.stringify(c))).success);
});

test('what the manifest says is what config.json says: added capabilities, host namespaces, secrets in env kept out', () => {
  const t = text
    .replace('        drop: [ALL]', '        drop: [ALL]\n        add: [NET_BIND_SERVICE, SYS_PTRACE]')
    .replace('host:\n  network: false', 'host:\n  network: true')
    .replace('        file: /run/secrets/db', '        env: DB_KEY');
  const r = runtimeConfig(parseManifest(t).manifest, 'api');
  assert.deepEqual(r.config.process.capabilities.effective, ['CAP_NET_BIND_SERVICE', 'CAP_SYS_PTRACE']);
  assert.ok(!r.config.linux.namespaces.some((n) => n.type === 'network'));
  assert.ok(r.config.linux.seccomp?.syscalls.some((s) => s.names.includes('ptrace')), 'CAP_SYS_PTRACE brings ptrace into the allow-list, as Docker does');
  assert.deepEqual(r.secretEnv, [{ name: 'DB_KEY', resource: 'payments/key/db' }]);
  assert.ok(!JSON.stringify(r.config).includes('DB_KEY'), 'no secret name or value in config.json');
});

test('refused: privileged, no user, a user name, capabilities not dropped, no command', () => {
  const with_ = (from: string, to: string) => parseManifest(text.replace(from, to)).manifest;
  assert.throws(() => runtimeConfig(with_('      user: "10001:10001"', '      user: "10001:10001"\n      privileged: true'), 'api'), code('WORKLOAD_PRIVILEGED'));
  assert.throws(() => runtimeConfig(with_('      user: "10001:10001"\n', ''), 'api'), code('WORKLOAD_NO_USER'));
  assert.throws(() => runtimeConfig(with_('      user: "10001:10001"\n', ''), 'api', { User: 'nginx' }), code('WORKLOAD_NO_USER'));
  assert.equal(runtimeConfig(with_('      user: "10001:10001"\n', ''), 'api', { User: '101:102' }).config.process.user.gid, 102);
  assert.throws(() => runtimeConfig(with_('        drop: [ALL]', '        drop: [NET_RAW]'), 'api'), code('WORKLOAD_CAPS_NOT_DROPPED'));
  assert.throws(() => runtimeConfig(with_('    command: ["/app/api"]\n    args: ["--listen", ":8443"]\n', ''), 'api'), code('WORKLOAD_NO_COMMAND'));
  assert.throws(() => runtimeConfig(m(), 'nope'), code('WORKLOAD_NO_CONTAINER'));
});

test('the runtime-spec schema refuses unknown fields, another version and bad values', () => {
  const good = JSON.parse(JSON.stringify(runtimeConfig(m(), 'api').config)) as Record<string, unknown>;
  assert.ok(runtimeConfigSchema.safeParse(good).success);
  assert.ok(!runtimeConfigSchema.safeParse({ ...good, ociVersion: '1.0.0' }).success);
  assert.ok(!runtimeConfigSchema.safeParse({ ...good, privileged: true }).success);
  const proc = good.process as Record<string, unknown>;
  assert.ok(!runtimeConfigSchema.safeParse({ ...good, process: { ...proc, args: [] } }).success);
  assert.ok(!runtimeConfigSchema.safeParse({ ...good, process: { ...proc, capabilities: { bounding: ['SYS_ADMIN'], effective: [], permitted: [] } } }).success);
  assert.equal(quantityBytes('512Mi'), 512 * 1024 * 1024);
  assert.equal(quantityBytes('1G'), 1e9);
  assert.throws(() => quantityBytes('1 GB'), code('WORKLOAD_BAD_QUANTITY'));
});

test('review: an image that runs as root is not taken as the user; bad image configs are input errors; no core dumps', () => {
  const noUser = parseManifest(text.replace('      user: "10001:10001"\n', '')).manifest;
  for (const User of ['0', '0:0', '00']) assert.throws(() => runtimeConfig(noUser, 'api', { User }), code('WORKLOAD_NO_USER'), User);
  assert.equal(runtimeConfig(noUser, 'api', { User: '1:1' }).config.process.user.uid, 1);
  // The manifest may still say root explicitly (and `workload check` flags it: CW021).
  assert.equal(runtimeConfig(parseManifest(text.replace('user: "10001:10001"', 'user: "0"')).manifest, 'api', { User: '10' }).config.process.user.uid, 0);
  assert.throws(() => runtimeConfig(m(), 'api', { WorkingDir: 'relative' }), code('WORKLOAD_BAD_IMAGE_CONFIG'));
  assert.throws(() => runtimeConfig(m(), 'api', { Env: 'PATH=/bin' } as unknown as { Env: string[] }), code('WORKLOAD_BAD_IMAGE_CONFIG'));
  assert.equal(runtimeConfig(m(), 'api', { WorkingDir: '' }).config.process.cwd, '/');
  assert.deepEqual(runtimeConfig(m(), 'api').config.process.rlimits.find((r) => r.type === 'RLIMIT_CORE'), { type: 'RLIMIT_CORE', hard: 0, soft: 0 });
});
