// SP 800-190 rules over the three input formats. Each case marks the offending line with
// `#!CWnnn`: the check must report exactly the marked rules, each at its marked line, and nothing
// else (so a rule that fires too widely fails as surely as one that does not fire).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkModel, loadWorkload, RULES, type Finding } from '../../src/workload/index.js';

const FIX = join(import.meta.dirname, 'fixtures');
const DIGEST = 'sha256:' + 'ab'.repeat(32);
const IMAGE = `registry.example.com/team/app:1.0@${DIGEST}`;
// A JSON string is a YAML double-quoted scalar: the PEM's newlines survive.
const PEM = JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString());

function markers(text: string): { rule: string; line: number }[] {
  return text.split('\n').flatMap((l, i) => [...l.matchAll(/#!(CW\d{3})/g)].map((m) => ({ rule: m[1] as string, line: i + 1 })));
}

function findings(text: string, source = 'case.yaml', allow: string[] = []): Finding[] {
  return checkModel(loadWorkload(text, source).model, { allowRegistries: allow });
}

function assertMarked(text: string, label: string, allow: string[] = []): Finding[] {
  const got = findings(text, label, allow);
  const want = markers(text);
  const gotPairs = got.map((f) => `${f.ruleId}@${f.line}`).sort();
  const wantPairs = want.map((m) => `${m.rule}@${m.line}`).sort();
  assert.deepEqual([...new Set(gotPairs)], [...new Set(wantPairs)], `${label}: findings ${JSON.stringify(got.map((f) => [f.ruleId, f.line, f.message]))}`);
  return got;
}

// A hardened Coffer manifest, with slots where a case puts its violation.
function coffer(p: { top?: string; image?: string; container?: string; sc?: string; registries?: string; signer?: boolean } = {}): string {
  return [
    'version: 1',
    'name: w',
    p.registries ?? 'registries: [registry.example.com]',
    ...(p.top ? [p.top] : []),
    'containers:',
    '  - name: app',
    `    image: ${p.image ?? IMAGE}`,
    ...(p.signer === false ? [] : [`    signer: {publicKey: ${PEM}}`]),
    '    resources: {cpu: "1", memory: 1Gi, pids: 100}',
    ...(p.container ? [p.container] : []),
    '    securityContext:',
    '      user: "1000"',
    ...(p.sc ? [p.sc] : []),
    '',
  ].join('\n');
}

test('the hardened fixture and the hardened template pass clean', () => {
  assert.deepEqual(findings(readFileSync(join(FIX, 'hardened.yaml'), 'utf8')), []);
  assert.deepEqual(findings(coffer()), []);
});

test('Coffer manifest: each violation is flagged by its rule at its line', () => {
  const cases: [string, string][] = [
    ['unpinned', coffer({ image: 'registry.example.com/team/app:1.0 #!CW001' })],
    ['latest', coffer({ image: 'registry.example.com/team/app:latest #!CW001 #!CW002' })],
    ['no tag', coffer({ image: 'registry.example.com/team/app #!CW001 #!CW002' })],
    ['unsigned', coffer({ signer: false, container: '    command: [/app] #!CW003' }).replace('  - name: app', '  - name: app #!CW003').replace('    command: [/app] #!CW003', '    command: [/app]')],
    ['foreign registry', coffer({ image: `ghcr.io/x/app@${DIGEST} #!CW004` })],
    ['no allow-list', coffer({ registries: 'description: none #!CW005' }).replace('description: none #!CW005', 'description: none').replace('containers:', 'containers:')],
    ['http registry', coffer({ registries: 'registries: ["http://registry.example.com"]', image: `${IMAGE} #!CW006` })],
    ['privileged', coffer({ sc: '      privileged: true #!CW010' })],
    ['host network', coffer({ top: 'host: {network: true} #!CW011' }).replace('host: {network: true} #!CW011', 'host:\n  network: true #!CW011')],
    ['host pid', coffer({ top: 'host:\n  pid: true #!CW012' })],
    ['host ipc', coffer({ top: 'host:\n  ipc: true #!CW013' })],
    ['added cap', coffer({ sc: '      capabilities:\n        add:\n          - NET_BIND_SERVICE #!CW014' })],
    ['SYS_ADMIN', coffer({ sc: '      capabilities:\n        add:\n          - CAP_SYS_ADMIN #!CW015' })],
    ['not dropped', coffer({ sc: '      capabilities:\n        drop: [NET_RAW] #!CW016' })],
    ['seccomp unconfined', coffer({ sc: '      seccomp: unconfined #!CW017' })],
    ['apparmor unconfined', coffer({ sc: '      appArmor: unconfined #!CW018' })],
    ['selinux spc_t', coffer({ sc: '      seLinuxType: spc_t #!CW019' })],
    ['writable root', coffer({ sc: '      readOnlyRootFilesystem: false #!CW020' })],
    ['root', coffer().replace('      user: "1000"', '      user: 0 #!CW021')],
    ['no user', coffer().replace('      user: "1000"\n', '      privileged: false\n').replace('  - name: app', '  - name: app #!CW022')],
    ['nnp off', coffer({ sc: '      noNewPrivileges: false #!CW023' })],
    ['proc unmasked', coffer({ sc: '      procMount: unmasked #!CW024' })],
    ['unsafe sysctl', coffer({ top: 'sysctls:\n  kernel.msgmax: "65536" #!CW025\n  net.ipv4.tcp_syncookies: "1"' })],
    ['host path', coffer({ top: 'volumes:\n  - {name: etc, type: hostPath, path: /etc}', container: '    mounts:\n      - volume: etc #!CW030\n        path: /host/etc\n        readOnly: true' })],
    ['docker.sock', coffer({ top: 'volumes:\n  - {name: sock, type: hostPath, path: /var/run/docker.sock}', container: '    mounts:\n      - volume: sock #!CW031\n        path: /var/run/docker.sock' })],
    ['host port', coffer({ container: '    ports:\n      - container: 8080\n        host: 80 #!CW032' })],
    ['secret env', coffer({ container: '    env:\n      DB_PASSWORD: hunter2-correct-horse #!CW040\n      PASSWORD_FILE: /run/secrets/db\n      LOG_LEVEL: debug' })],
    ['secret value', coffer({ container: '    env:\n      SETTINGS: "-----BEGIN RSA PRIVATE KEY-----" #!CW040' })],
    ['broker secret via env', coffer({ container: '    secrets:\n      - resource: team/key/db\n        env: DB_KEY #!CW041' })],
    ['no memory limit', coffer().replace('    resources: {cpu: "1", memory: 1Gi, pids: 100}', '    resources: {cpu: "1", pids: 100} #!CW050')],
    ['no cpu limit', coffer().replace('    resources: {cpu: "1", memory: 1Gi, pids: 100}', '    resources: {memory: 1Gi, pids: 100} #!CW051')],
    ['no pids limit', coffer().replace('    resources: {cpu: "1", memory: 1Gi, pids: 100}', '    resources: {cpu: "1", memory: 1Gi} #!CW052')],
  ];
  const seen = new Set<string>();
  for (const [label, text] of cases) {
    if (label === 'no allow-list') {
      const t = text.replace('description: none', '');
      const fs = findings(t, label);
      assert.deepEqual(fs.map((f) => f.ruleId), ['CW005'], label);
      seen.add('CW005');
      // The CLI's allow-list satisfies it.
      assert.deepEqual(findings(t, label, ['registry.example.com']), []);
      continue;
    }
    for (const f of assertMarked(text, label)) seen.add(f.ruleId);
  }
  // Every rule except the image ones (CW042, CW043: oci and layers tests) is exercised here (CW033 is Kubernetes-only).
  const untested = RULES.map((r) => r.id).filter((id) => !seen.has(id) && id !== 'CW042' && id !== 'CW043' && id !== 'CW033');
  assert.deepEqual(untested, []);
});

test('Kubernetes: multi-document, every pod-template kind, hardened passes, violations at their lines', () => {
  const hardened = readFileSync(join(FIX, 'k8s-hardened.yaml'), 'utf8');
  const m = loadWorkload(hardened, 'k8s-hardened.yaml');
  assert.equal(m.format, 'kubernetes');
  assert.deepEqual(
    m.model.groups.map((g) => g.kind),
    ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod'],
  );
  assert.deepEqual(findings(hardened, 'k8s', ['registry.example.com']), []);
  assertMarked(readFileSync(join(FIX, 'k8s-insecure.yaml'), 'utf8'), 'k8s-insecure.yaml', ['registry.example.com']);
});

test('Compose: hardened passes, violations at their lines', () => {
  assert.deepEqual(findings(readFileSync(join(FIX, 'compose-hardened.yaml'), 'utf8'), 'compose', ['registry.example.com']), []);
  assertMarked(readFileSync(join(FIX, 'compose-insecure.yaml'), 'utf8'), 'compose-insecure.yaml', ['registry.example.com']);
});

test('equivalent Kubernetes and Compose inputs produce the same rule ids', () => {
  const k = findings(readFileSync(join(FIX, 'k8s-equivalent.yaml'), 'utf8'), 'k8s', ['registry.example.com']);
  const c = findings(readFileSync(join(FIX, 'compose-equivalent.yaml'), 'utf8'), 'compose', ['registry.example.com']);
  const ids = (fs: Finding[]) => [...new Set(fs.map((f) => f.ruleId))].sort();
  assert.ok(ids(k).length >= 12, `the equivalence fixture should exercise many rules: ${ids(k).join(' ')}`);
  assert.deepEqual(ids(k), ids(c));
  // Per container too.
  const per = (fs: Finding[]) => fs.map((f) => `${f.container ?? '-'}:${f.ruleId}`).filter((s) => !s.startsWith('-')).sort();
  assert.deepEqual(per(k), per(c));
});

test('Kubernetes defaults are judged as the kubelet applies them (seccomp unconfined, token mounted)', () => {
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: registry.example.com/a@${DIGEST}\n`;
  const ids = findings(pod, 'pod', ['registry.example.com']).map((f) => f.ruleId);
  for (const id of ['CW003', 'CW016', 'CW017', 'CW020', 'CW022', 'CW023', 'CW033', 'CW050', 'CW051']) assert.ok(ids.includes(id), `${id} in ${ids.join(' ')}`);
  assert.ok(!ids.includes('CW052'), 'no pids rule for Kubernetes');
  // Compose: docker applies its default seccomp profile, so CW017 does not fire.
  const compose = `services:\n  c:\n    image: registry.example.com/a@${DIGEST}\n`;
  const cids = findings(compose, 'compose', ['registry.example.com']).map((f) => f.ruleId);
  assert.ok(!cids.includes('CW017'));
  assert.ok(cids.includes('CW023') && cids.includes('CW052'));
});

test('bad input: errors name the file, line and field', () => {
  const bad: [string, RegExp][] = [
    ['version: 1\nname: w\ncontainers:\n  - name: app\n    image: registry.example.com/a@' + DIGEST + '\n    privilegd: true\n', /case\.yaml:6:5: containers\.0\.privilegd: unknown field/],
    ['version: 1\nname: w\ncontainers:\n  - name: app\n    image: "UPPER/case"\n', /case\.yaml:5:12: containers\.0\.image: image reference "UPPER\/case"/],
    ['version: 2\nname: w\ncontainers: []\n', /case\.yaml:1:10: version: must be 1/],
    ['version: 1\nname: w\ncontainers:\n  - name: a\n    image: x\n    signer: {publicKey: "-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----"}\n', /case\.yaml:6:25: containers\.0\.signer\.publicKey: the signer key is not a PEM public key/],
    ['version: 1\nname: w\ncontainers:\n  - name: a\n    image: x\n  - name: a\n    image: y\n', /case\.yaml:6:11: containers\.1\.name: container name "a" is used twice/],
    ['version: 1\nname: w\ncontainers:\n  - name: a\n    image: x\n    mounts: [{volume: nope, path: /d}]\n', /case\.yaml:6:23: containers\.0\.mounts\.0\.volume: no volume named "nope"/],
    ['version: 1\nname: w\nname: v\n', /case\.yaml:3:1: Map keys must be unique/],
    ['apiVersion: v1\nkind: Pod\nspec:\n  hostPID: "yes"\n  containers: [{name: c, image: x}]\n', /case\.yaml:4:12: spec\.hostPID: must be true or false/],
    ['services:\n  web:\n    build: .\n', /case\.yaml:3:5: services\.web: a service needs an image/],
    ['just: text\n', /WORKLOAD_UNKNOWN_FORMAT|not a Coffer workload manifest/],
    ['apiVersion: v1\nkind: Service\nmetadata: {name: s}\n', /no object with a pod template.*Service/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => findings(text), (e: unknown) => {
      assert.equal((e as { name?: string }).name, 'CofferError', String(e));
      assert.equal((e as { kind?: string }).kind, 'input');
      assert.match((e as Error).message, re);
      return true;
    });
  }
});

test('review: runtime socket parents, interpolated bind sources, systempaths=unconfined and ephemeral containers are judged', () => {
  const svc = (extra: string) =>
    [
      'services:',
      '  api:',
      `    image: ${IMAGE}`,
      '    labels: ["coffer.dev/signer=key"]',
      '    user: "10001"',
      '    read_only: true',
      '    cap_drop: [ALL]',
      '    mem_limit: 128m',
      '    cpus: 0.25',
      '    pids_limit: 64',
      extra,
      '',
    ].join('\n');
  const nnp = '    security_opt: ["no-new-privileges:true"]';
  assertMarked(svc(`${nnp}\n    volumes:\n      - /var/run:/var/run #!CW031\n      - /run/:/host-run:ro #!CW031\n      - data:/data`), 'socket parents', ['registry.example.com']);
  assertMarked(svc(`${nnp}\n    volumes:\n      - \${HOME}/.ssh:/root/.ssh:ro #!CW030\n      - $PWD:/src #!CW030\n      - cache_1:/cache`), 'interpolated binds', ['registry.example.com']);
  assertMarked(svc('    security_opt:\n      - no-new-privileges:true\n      - systempaths=unconfined #!CW024'), 'systempaths', ['registry.example.com']);
  assertMarked(svc(`${nnp}\n    ports:\n      - 3000 #!CW032\n      - target: 80 #!CW032\n        protocol: tcp`), 'ephemeral host ports', ['registry.example.com']);
  assertMarked(svc(`${nnp}\n    expose: ["3000"]`), 'expose publishes nothing', ['registry.example.com']);
  assertMarked(svc(`${nnp}\n    pid: host #!CW012\n    cap_add: [sys_admin, "CAP_NET_ADMIN", net_bind_service] #!CW015 #!CW014`), 'compose caps and pid', ['registry.example.com']);
  // Coffer manifest: a hostPath of /var/run is the socket.
  assertMarked(coffer({ top: 'volumes:\n  - {name: run, type: hostPath, path: /var/run/}', container: '    mounts:\n      - volume: run #!CW031\n        path: /host-run' }), 'coffer /var/run');

  const pod = [
    'apiVersion: v1',
    'kind: Pod',
    'metadata: {name: p, annotations: {coffer.dev/signer: key}}',
    'spec:',
    '  automountServiceAccountToken: false',
    '  securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}',
    '  containers:',
    '    - name: c',
    `      image: ${IMAGE}`,
    '      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}',
    '      resources: {limits: {cpu: 500m, memory: 256Mi}}',
    '  ephemeralContainers:',
    '    - name: debug #!CW050 #!CW051',
    `      image: ${IMAGE}`,
    '      securityContext:',
    '        privileged: true #!CW010',
    '        allowPrivilegeEscalation: false',
    '        readOnlyRootFilesystem: true',
    '        capabilities: {drop: [ALL]}',
    '',
  ].join('\n');
  assertMarked(pod, 'ephemeral', ['registry.example.com']);
});
