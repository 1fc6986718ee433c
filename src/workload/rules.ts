import { posix } from 'node:path';
import { inputError } from '../errors.js';
import { parseImageReference, registryKey } from './reference.js';
import type { ContainerModel, GroupModel, InputFormat, L, WorkloadModel } from './model.js';
import type { Pos } from './yaml.js';

/**
 * SP 800-190 countermeasure checks over the common model. Rule ids are stable (CWnnn, never
 * reused); each rule cites the countermeasure section of NIST SP 800-190 (September 2017,
 * section 4) it implements. What a runtime does when a field is absent depends on the input
 * format (Docker applies its default seccomp profile, the kubelet does not unless told to), so
 * the rules interpret `undefined` per format rather than assuming the best.
 */

export type Severity = 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];

export interface Rule {
  id: string;
  name: string;
  severity: Severity;
  /** SP 800-190 section (countermeasures). */
  section: string;
  title: string;
  help: string;
}

export interface Finding {
  ruleId: string;
  severity: Severity;
  section: string;
  message: string;
  file: string;
  line: number;
  column: number;
  group?: string;
  container?: string;
}

const R = (id: string, name: string, severity: Severity, section: string, title: string, help: string): Rule => ({ id, name, severity, section, title, help });

export const RULES: readonly Rule[] = [
  R('CW001', 'image-not-pinned', 'high', '4.2.2', 'Image not pinned by digest', 'Reference the image by digest (name@sha256:...) so that what runs is exactly what was reviewed; tags move.'),
  R('CW002', 'mutable-tag', 'medium', '4.2.2', 'Image uses the latest tag or no tag', 'Name a discrete version and pin it by digest; "latest" is whatever was pushed last.'),
  R('CW003', 'signature-not-required', 'high', '4.1.5', 'No image signer required', 'Name the expected signer (public key or keyless issuer and subject) so that unsigned or foreign images are refused.'),
  R('CW004', 'registry-not-allowed', 'high', '4.1.5', 'Image from a registry outside the allow-list', 'Pull only from the registries you trust and list them.'),
  R('CW005', 'no-registry-allow-list', 'low', '4.1.5', 'No registry allow-list', 'List the registries images may come from (registries: in the manifest, --allow-registry for other formats).'),
  R('CW006', 'insecure-registry', 'high', '4.2.1', 'Registry reached without TLS', 'Reach registries only over TLS with a trusted certificate.'),
  R('CW010', 'privileged', 'critical', '4.4.3', 'Privileged container', 'A privileged container has every capability and every device of the host: remove privileged.'),
  R('CW011', 'host-network', 'high', '4.4.3', 'Host network namespace shared', 'Give the workload its own network namespace (no hostNetwork / network_mode: host).'),
  R('CW012', 'host-pid', 'high', '4.4.3', 'Host PID namespace shared', 'Do not share the host PID namespace: it exposes every process of the VM.'),
  R('CW013', 'host-ipc', 'high', '4.4.3', 'Host IPC namespace shared', 'Do not share the host IPC namespace.'),
  R('CW014', 'added-capability', 'medium', '4.4.3', 'Capability added', 'Add only capabilities the workload provably needs.'),
  R('CW015', 'dangerous-capability', 'critical', '4.4.3', 'Capability that amounts to host control added', 'SYS_ADMIN, SYS_MODULE, SYS_PTRACE, SYS_RAWIO, DAC_READ_SEARCH, BPF, NET_ADMIN and ALL break container isolation: remove them.'),
  R('CW016', 'capabilities-not-dropped', 'medium', '4.4.3', 'Capabilities not dropped', 'Drop ALL capabilities and add back only what is needed.'),
  R('CW017', 'no-seccomp', 'high', '4.4.3', 'No seccomp profile', 'Run with the runtime default seccomp profile (RuntimeDefault) or a stricter one.'),
  R('CW018', 'apparmor-unconfined', 'medium', '4.4.3', 'AppArmor disabled', 'Keep the runtime default AppArmor profile or a stricter one.'),
  R('CW019', 'selinux-unconfined', 'medium', '4.4.3', 'SELinux confinement disabled', 'Do not run with spc_t, unconfined_t or label=disable.'),
  R('CW020', 'writable-root-filesystem', 'medium', '4.4.3', 'Writable root filesystem', 'Make the root filesystem read-only; write only to declared volumes.'),
  R('CW021', 'runs-as-root', 'high', '4.1.2', 'Runs as root', 'Run as a non-root uid.'),
  R('CW022', 'user-not-set', 'medium', '4.1.2', 'User not set: the image decides and may pick root', 'Set a numeric non-root user (or runAsNonRoot: true).'),
  R('CW023', 'privilege-escalation', 'medium', '4.4.3', 'Privilege escalation allowed (no_new_privs off)', 'Set no-new-privileges (allowPrivilegeEscalation: false) so setuid binaries cannot raise privileges.'),
  R('CW024', 'proc-unmasked', 'high', '4.4.3', '/proc unmasked', 'Keep the default masked /proc (procMount: Default).'),
  R('CW025', 'unsafe-sysctl', 'medium', '4.4.3', 'Kernel parameter outside the namespaced safe set', 'Set only the sysctls Kubernetes classes as safe; others change the shared kernel.'),
  R('CW030', 'host-path-mount', 'high', '4.5.5', 'Host path mounted', 'Do not mount host directories: use encrypted or tmpfs volumes.'),
  R('CW031', 'runtime-socket-mount', 'critical', '4.5.5', 'Container runtime socket mounted', 'A container with the docker/containerd/CRI-O socket controls the host: never mount it.'),
  R('CW032', 'host-port', 'low', '4.4.2', 'Port published on the host', 'Publish ports only where needed and bound to the interface that needs them.'),
  R('CW033', 'service-account-token', 'medium', '4.3.1', 'Orchestrator API token mounted', 'Set automountServiceAccountToken: false unless the workload calls the API.'),
  R('CW040', 'secret-in-env', 'high', '4.1.4', 'Secret in a plain environment value', 'Fetch secrets at run time (broker secrets, secretKeyRef, Compose secrets) instead of writing them in the file.'),
  R('CW041', 'secret-via-env', 'low', '4.1.4', 'Broker secret delivered as an environment variable', 'Prefer a tmpfs file: environment variables leak into /proc, crash dumps and child processes.'),
  R('CW042', 'secret-in-image-config', 'high', '4.1.4', 'Secret in the image configuration', 'Remove secrets from the image (ENV, labels); images are copied to registries and caches.'),
  R('CW043', 'secret-in-image-layer', 'high', '4.1.4', 'Secret file in an image layer', 'Remove credential files and private keys from the image (a later layer deleting them does not remove them from the earlier one).'),
  R('CW050', 'no-memory-limit', 'medium', '4.4.3', 'No memory limit', 'Set a memory limit so that one container cannot starve the others.'),
  R('CW051', 'no-cpu-limit', 'low', '4.4.3', 'No CPU limit', 'Set a CPU limit.'),
  R('CW052', 'no-pids-limit', 'low', '4.4.3', 'No process-count limit', 'Set a pids limit to stop fork bombs.'),
];

const BY_ID = new Map(RULES.map((r) => [r.id, r]));
export function ruleById(id: string): Rule {
  const r = BY_ID.get(id);
  if (!r) throw new Error(`unknown rule ${id}`);
  return r;
}

const DANGEROUS_CAPS = new Set(['ALL', 'SYS_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'SYS_RAWIO', 'DAC_READ_SEARCH', 'BPF', 'NET_ADMIN', 'SYS_BOOT', 'MAC_ADMIN', 'MAC_OVERRIDE', 'PERFMON']);
// Kubernetes' safe sysctl set (namespaced, cannot affect other pods or the node).
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const RUNTIME_SOCKETS = /(^|\/)(docker\.sock|containerd\.sock|crio\.sock|podman\.sock|cri-dockerd\.sock)$|^\/var\/run\/docker$|^\/run\/containerd$/;
// Directories that hold a runtime socket: mounting one mounts the socket (`/var/run:/var/run`).
const SOCKET_PARENTS = new Set(['/', '/var', '/run', '/var/run', '/run/containerd', '/var/run/containerd', '/run/crio', '/var/run/crio', '/run/podman', '/var/run/podman', '/run/docker', '/var/run/docker', '/run/k3s', '/run/k3s/containerd']);

function isRuntimeSocket(hostPath: string): boolean {
  const p = posix.normalize(hostPath).replace(/(.)\/+$/, '$1');
  return RUNTIME_SOCKETS.test(p) || SOCKET_PARENTS.has(p);
}
const SECRET_NAME = /(PASSW(OR)?D|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH|PWD)/i;
const SECRET_VALUE = [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, /\bAKIA[0-9A-Z]{16}\b/, /\bgh[pousr]_[A-Za-z0-9]{36,}\b/, /\bxox[abprs]-[A-Za-z0-9-]{10,}/, /\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, /:\/\/[^/\s:@]+:[^/\s@]+@/];
// Values that name a secret rather than hold one.
const NOT_A_SECRET = /^(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\/[^\s]*|file:.*|true|false|yes|no|none|null|disabled?|enabled?|\d{1,5})?$/i;

/** Whether a literal value with this name looks like a secret written in clear. */
export function looksLikeSecret(name: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (SECRET_VALUE.some((re) => re.test(value))) return true;
  return SECRET_NAME.test(name) && !NOT_A_SECRET.test(value.trim());
}

export interface CheckOptions {
  /** Registries allowed in addition to the ones the file lists. */
  allowRegistries?: readonly string[];
}

class Collector {
  readonly findings: Finding[] = [];
  constructor(readonly file: string) {}
  add(id: string, at: Pos, message: string, where: { group?: GroupModel; container?: ContainerModel } = {}): void {
    const r = ruleById(id);
    this.findings.push({
      ruleId: id,
      severity: r.severity,
      section: r.section,
      message,
      file: this.file,
      line: at.line,
      column: at.column,
      ...(where.group ? { group: where.group.name } : {}),
      ...(where.container ? { container: where.container.name } : {}),
    });
  }
}

function normCap(c: string): string {
  return c.toUpperCase().replace(/^CAP_/, '');
}

function registryList(m: WorkloadModel, opts: CheckOptions): { hosts: Map<string, boolean>; declared: boolean } {
  const hosts = new Map<string, boolean>();
  for (const r of [...(m.registries ?? []).map((x) => x.value), ...(opts.allowRegistries ?? [])]) {
    const insecure = r.startsWith('http://');
    hosts.set(registryKey(r.replace(/^https?:\/\//, '')), insecure);
  }
  return { hosts, declared: m.registries !== undefined || (opts.allowRegistries?.length ?? 0) > 0 };
}

function checkContainer(out: Collector, m: WorkloadModel, g: GroupModel, c: ContainerModel, regs: ReturnType<typeof registryList>): void {
  const where = { group: g, container: c };
  const fmt: InputFormat = m.format;
  const who = `container ${c.name}`;
  let ref: ReturnType<typeof parseImageReference>;
  try {
    ref = parseImageReference(c.image.value);
  } catch (e) {
    throw inputError('WORKLOAD_BAD_IMAGE_REF', `${m.source}:${c.image.at.line}:${c.image.at.column}: ${(e as Error).message}`);
  }
  if (!ref.digest) out.add('CW001', c.image.at, `${who}: image ${c.image.value} is not pinned by digest`, where);
  if (!ref.digest && (ref.tag === undefined || ref.tag === 'latest')) out.add('CW002', c.image.at, `${who}: image ${c.image.value} uses ${ref.tag === undefined ? 'no tag (latest)' : 'the latest tag'}`, where);
  if (!c.signer) out.add('CW003', c.at, `${who}: no signer is required for image ${c.image.value}`, where);
  const reg = registryKey(ref.registry);
  if (regs.declared && !regs.hosts.has(reg)) out.add('CW004', c.image.at, `${who}: registry ${ref.registry} is not in the allow-list (${[...regs.hosts.keys()].join(', ')})`, where);
  if (regs.hosts.get(reg) === true) out.add('CW006', c.image.at, `${who}: registry ${ref.registry} is declared as plain http`, where);

  if (c.privileged?.value) out.add('CW010', c.privileged.at, `${who} is privileged`, where);
  for (const cap of c.capAdd) {
    const n = normCap(cap.value);
    if (DANGEROUS_CAPS.has(n)) out.add('CW015', cap.at, `${who} adds ${n}`, where);
    else out.add('CW014', cap.at, `${who} adds ${n}`, where);
  }
  if (!c.capDropAll?.value) out.add('CW016', c.capDropAll?.at ?? c.at, `${who} does not drop ALL capabilities`, where);

  // Docker (Compose) applies its default seccomp and AppArmor profiles when none is named; the
  // kubelet runs pods Unconfined for seccomp unless the cluster enables SeccompDefault.
  const seccomp = c.seccomp?.value ?? (fmt === 'kubernetes' ? 'unconfined' : 'runtime-default');
  if (seccomp === 'unconfined') out.add('CW017', c.seccomp?.at ?? c.at, `${who} runs ${c.seccomp ? 'with seccomp unconfined' : 'without a seccomp profile (the kubelet default is Unconfined)'}`, where);
  if (c.appArmor?.value === 'unconfined') out.add('CW018', c.appArmor.at, `${who} runs with AppArmor unconfined`, where);
  const se = c.seLinuxType?.value;
  if (se !== undefined && (se === 'disable' || /^(spc_t|unconfined_t|container_runtime_t)$/.test(se))) out.add('CW019', c.seLinuxType?.at ?? c.at, `${who} runs with SELinux ${se === 'disable' ? 'labelling disabled' : `type ${se}`}`, where);
  if (!c.readOnlyRootFilesystem?.value) out.add('CW020', c.readOnlyRootFilesystem?.at ?? c.at, `${who} has a writable root filesystem`, where);

  const user = c.user?.value;
  if (user === '0' || user === 'root') out.add('CW021', c.user?.at ?? c.at, `${who} runs as root`, where);
  else if (user === undefined && !c.runAsNonRoot?.value) out.add('CW022', c.at, `${who} sets no user: the image's default user applies and may be root`, where);
  if (c.runAsNonRoot?.value === false && user === undefined) out.add('CW021', c.runAsNonRoot.at, `${who} allows root (runAsNonRoot: false)`, where);

  if (!c.noNewPrivileges?.value) out.add('CW023', c.noNewPrivileges?.at ?? c.at, `${who} allows privilege escalation (no_new_privs is off)`, where);
  if (c.procMount?.value === 'unmasked') out.add('CW024', c.procMount.at, `${who} has an unmasked /proc`, where);

  for (const mt of c.mounts) {
    if (mt.hostPath === undefined) continue;
    if (isRuntimeSocket(mt.hostPath)) out.add('CW031', mt.at, `${who} mounts the container runtime socket ${mt.hostPath}`, where);
    else out.add('CW030', mt.at, `${who} mounts host path ${mt.hostPath}${mt.readOnly ? ' (read-only)' : ' read-write'} at ${mt.target}`, where);
  }
  for (const p of c.hostPorts) out.add('CW032', p.at, `${who} publishes ${p.value === 0 ? 'a port' : `port ${p.value}`} on the host`, where);

  for (const e of c.env) if (!e.fromSecret && looksLikeSecret(e.name, e.value)) out.add('CW040', e.at, `${who}: environment variable ${e.name} holds what looks like a secret in clear`, where);
  for (const s of c.secretEnv) out.add('CW041', s.at, `${who}: broker secret delivered in environment variable ${s.value}`, where);

  if (c.limits.memory === undefined) out.add('CW050', c.limitsAt, `${who} has no memory limit`, where);
  if (c.limits.cpu === undefined) out.add('CW051', c.limitsAt, `${who} has no CPU limit`, where);
  // Kubernetes has no per-container pids limit (it is a kubelet setting): not judged there.
  if (fmt !== 'kubernetes' && c.limits.pids === undefined) out.add('CW052', c.limitsAt, `${who} has no pids limit`, where);
}

function flag(out: Collector, id: string, v: L<boolean> | undefined, message: string, g: GroupModel): void {
  if (v?.value) out.add(id, v.at, message, { group: g });
}

/** Runs every rule over a model. Findings are ordered by line, then column, then rule id. */
export function checkModel(m: WorkloadModel, opts: CheckOptions = {}): Finding[] {
  const out = new Collector(m.source);
  const regs = registryList(m, opts);
  if (!regs.declared) out.add('CW005', m.groups[0]?.at ?? { line: 1, column: 1 }, 'no registry allow-list: images may come from anywhere');
  for (const g of m.groups) {
    const what = `${g.kind} ${g.name}`;
    flag(out, 'CW011', g.hostNetwork, `${what} shares the host network namespace`, g);
    flag(out, 'CW012', g.hostPID, `${what} shares the host PID namespace`, g);
    flag(out, 'CW013', g.hostIPC, `${what} shares the host IPC namespace`, g);
    flag(out, 'CW033', g.automountServiceAccountToken, `${what} mounts a service account token (automountServiceAccountToken is not false)`, g);
    for (const s of g.sysctls) if (!SAFE_SYSCTLS.has(s.value)) out.add('CW025', s.at, `${what} sets sysctl ${s.value}, outside the safe set`, { group: g });
    for (const c of g.containers) checkContainer(out, m, g, c, regs);
  }
  return out.findings.sort((a, b) => a.line - b.line || a.column - b.column || a.ruleId.localeCompare(b.ruleId));
}

/** Checks an OCI image configuration (Env, Labels) for secrets baked into the image. */
export function checkImageConfig(config: unknown, file: string): Finding[] {
  const out = new Collector(file);
  const cfg = (config as { config?: { Env?: unknown; Labels?: unknown } } | null)?.config;
  const env = Array.isArray(cfg?.Env) ? (cfg.Env as unknown[]) : [];
  for (const e of env) {
    if (typeof e !== 'string') continue;
    const eq = e.indexOf('=');
    const name = eq < 0 ? e : e.slice(0, eq);
    if (looksLikeSecret(name, eq < 0 ? undefined : e.slice(eq + 1))) out.add('CW042', { line: 1, column: 1 }, `image configuration sets ${name} to what looks like a secret`);
  }
  const labels = cfg?.Labels && typeof cfg.Labels === 'object' ? Object.entries(cfg.Labels as Record<string, unknown>) : [];
  for (const [k, v] of labels) if (typeof v === 'string' && looksLikeSecret(k, v)) out.add('CW042', { line: 1, column: 1 }, `image label ${k} holds what looks like a secret`);
  return out.findings;
}

/** Secret files found in image layers (verifyImage with scanLayers) as findings. */
export function checkLayerSecrets(secrets: readonly { layer: number; path: string; why: string }[], file: string): Finding[] {
  const out = new Collector(file);
  for (const s of secrets) out.add('CW043', { line: 1, column: 1 }, `layer ${s.layer} holds ${s.path} (${s.why})`);
  return out.findings;
}

export function severityAtLeast(s: Severity, threshold: Severity): boolean {
  return SEVERITIES.indexOf(s) >= SEVERITIES.indexOf(threshold);
}
