import { inputError } from '../errors.js';
import type { ContainerModel, EnvVar, GroupModel, L, MountModel, WorkloadModel } from './model.js';
import type { Path, Pos, YamlDoc } from './yaml.js';

/**
 * A Docker Compose file (the Compose Specification) mapped into the common model: one group per
 * service, since Compose sets namespaces per service. Short and long syntaxes of ports, volumes,
 * environment and sysctls are read; `security_opt` follows docker's spellings (`seccomp=`,
 * `seccomp:`, `apparmor=`, `label=type:`, `no-new-privileges[:true]`).
 */

export const SIGNER_LABEL = 'coffer.dev/signer';
type Obj = Record<string, unknown>;

function typeError(doc: YamlDoc, path: Path, what: string): never {
  const p = doc.pos(path);
  throw inputError('WORKLOAD_INVALID', `${doc.source}:${p.line}:${p.column}: ${path.join('.')}: ${what}`);
}

function get(v: unknown, path: Path): unknown {
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Obj)[seg as string];
  }
  return v;
}

/** A map or a list of `KEY=value` strings, as Compose allows for environment, labels, sysctls. */
function keyValues(doc: YamlDoc, path: Path): { key: string; value: string | undefined; at: Pos }[] {
  const v = get(doc.value, path);
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) {
    return v.map((item, i) => {
      if (typeof item !== 'string') typeError(doc, [...path, i], 'must be a KEY=value string');
      const eq = item.indexOf('=');
      return { key: eq < 0 ? item : item.slice(0, eq), value: eq < 0 ? undefined : item.slice(eq + 1), at: doc.pos([...path, i]) };
    });
  }
  if (typeof v !== 'object') typeError(doc, path, 'must be a mapping or a list');
  return Object.entries(v as Obj).map(([k, val]) => ({ key: k, value: val === null || val === undefined ? undefined : String(val), at: doc.pos([...path, k], true) }));
}

function bool(doc: YamlDoc, path: Path): L<boolean> | undefined {
  const v = get(doc.value, path);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') typeError(doc, path, 'must be true or false');
  return { value: v, at: doc.pos(path) };
}

function str(doc: YamlDoc, path: Path): L<string> | undefined {
  const v = get(doc.value, path);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') typeError(doc, path, 'must be a string');
  return { value: String(v), at: doc.pos(path) };
}

function list(doc: YamlDoc, path: Path): unknown[] {
  const v = get(doc.value, path);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) typeError(doc, path, 'must be a list');
  return v;
}

function service(doc: YamlDoc, name: string, namedVolumes: Set<string>): GroupModel {
  const base: Path = ['services', name];
  const at = doc.pos(base, true);
  const image = str(doc, [...base, 'image']) ?? typeError(doc, base, 'a service needs an image (build: is not checked: an image built on the fly has no digest to pin)');
  const env: EnvVar[] = keyValues(doc, [...base, 'environment']).map((e) => ({ name: e.key, at: e.at, ...(e.value !== undefined ? { value: e.value } : {}), fromSecret: false }));
  const hostPorts: L<number>[] = list(doc, [...base, 'ports']).flatMap((p, i): L<number>[] => {
    const pp = [...base, 'ports', i];
    // A bare container port (number or string) is still published, on an ephemeral host port.
    if (typeof p === 'number') return [{ value: 0, at: doc.pos(pp) }];
    if (typeof p === 'string') {
      // [ip:]host:container[/proto]; a bare container port is published on a random host port.
      const parts = p.replace(/\/(tcp|udp|sctp)$/, '').split(':');
      if (parts.length < 2) return [{ value: 0, at: doc.pos(pp) }];
      const host = Number((parts[parts.length - 2] ?? '').split('-')[0]);
      return [{ value: Number.isInteger(host) ? host : 0, at: doc.pos(pp) }];
    }
    if (typeof p === 'object' && p !== null) {
      const pub = (p as Obj).published;
      return pub === undefined ? [{ value: 0, at: doc.pos(pp) }] : [{ value: Number(String(pub).split('-')[0]), at: doc.pos([...pp, 'published']) }];
    }
    return typeError(doc, pp, 'must be a port mapping');
  });
  const mounts: MountModel[] = list(doc, [...base, 'volumes']).map((v, i) => {
    const vp = [...base, 'volumes', i];
    if (typeof v === 'string') {
      const [src = '', target = src, mode = ''] = v.split(':');
      // A volume name is [a-zA-Z0-9][a-zA-Z0-9_.-]*; anything else is a host path once Compose has
      // interpolated it (`${HOME}/.ssh`, `$PWD/data`), so it is judged as one.
      const isNamed = namedVolumes.has(src) || /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(src);
      const onlyTarget = v.split(':').length === 1;
      return { target: onlyTarget ? src : target, readOnly: mode.split(',').includes('ro'), encrypted: false, tmpfs: false, ...(!onlyTarget && !isNamed ? { hostPath: src } : {}), at: doc.pos(vp) };
    }
    if (typeof v === 'object' && v !== null) {
      const o = v as Obj;
      const type = String(o.type ?? 'volume');
      return {
        target: String(o.target ?? ''),
        readOnly: o.read_only === true,
        encrypted: false,
        tmpfs: type === 'tmpfs',
        ...(type === 'bind' ? { hostPath: String(o.source ?? '') } : {}),
        at: doc.pos(vp),
      };
    }
    return typeError(doc, vp, 'must be a volume string or mapping');
  });
  for (const [i, t] of list(doc, [...base, 'tmpfs']).entries()) mounts.push({ target: String(t), readOnly: false, encrypted: false, tmpfs: true, at: doc.pos([...base, 'tmpfs', i]) });

  const opts = list(doc, [...base, 'security_opt']).map((o, i) => {
    if (typeof o !== 'string') typeError(doc, [...base, 'security_opt', i], 'must be a string');
    return { value: o, at: doc.pos([...base, 'security_opt', i]) };
  });
  const opt = (re: RegExp): L<string> | undefined => {
    for (const o of opts) {
      const m = re.exec(o.value);
      if (m) return { value: m[1] ?? '', at: o.at };
    }
    return undefined;
  };
  const nnp = opt(/^no-new-privileges(?:[:=](true|false))?$/);
  const seccompOpt = opt(/^seccomp[:=](.+)$/);
  const apparmorOpt = opt(/^apparmor[:=](.+)$/);
  const labelDisable = opt(/^label[:=](disable)$/);
  const labelType = opt(/^label[:=]type:(.+)$/);
  // Docker's spelling of procMount: Unmasked (no masked or read-only /proc and /sys paths).
  const systemPaths = opt(/^systempaths[:=](unconfined)$/);
  const drops = list(doc, [...base, 'cap_drop']);
  const user = str(doc, [...base, 'user']);
  const limits: ContainerModel['limits'] = {};
  const cpus = str(doc, [...base, 'deploy', 'resources', 'limits', 'cpus']) ?? str(doc, [...base, 'cpus']);
  const memory = str(doc, [...base, 'deploy', 'resources', 'limits', 'memory']) ?? str(doc, [...base, 'mem_limit']);
  const pids = str(doc, [...base, 'deploy', 'resources', 'limits', 'pids']) ?? str(doc, [...base, 'pids_limit']);
  if (cpus) limits.cpu = cpus.value;
  if (memory) limits.memory = memory.value;
  if (pids && Number(pids.value) > 0) limits.pids = Number(pids.value);
  const limitsPath = [...base, 'deploy', 'resources'];
  const signer = keyValues(doc, [...base, 'labels']).find((l) => l.key === SIGNER_LABEL);
  const privileged = bool(doc, [...base, 'privileged']);
  const ro = bool(doc, [...base, 'read_only']);
  const userValue = user ? (user.value.split(':')[0] as string) : undefined;

  const container: ContainerModel = {
    name,
    at,
    image,
    ...(signer?.value ? { signer: { value: signer.value, at: signer.at } } : {}),
    env,
    secretEnv: [],
    hostPorts,
    mounts,
    limits,
    limitsAt: get(doc.value, limitsPath) !== undefined ? doc.pos(limitsPath, true) : at,
    ...(privileged ? { privileged } : {}),
    ...(user && userValue !== undefined ? { user: { value: userValue === '0' ? '0' : userValue, at: user.at } } : {}),
    ...(ro ? { readOnlyRootFilesystem: ro } : {}),
    ...(nnp ? { noNewPrivileges: { value: nnp.value !== 'false', at: nnp.at } } : {}),
    capAdd: list(doc, [...base, 'cap_add']).map((c, i) => ({ value: String(c), at: doc.pos([...base, 'cap_add', i]) })),
    ...(drops.length > 0 ? { capDropAll: { value: drops.some((d) => String(d).toUpperCase() === 'ALL'), at: doc.pos([...base, 'cap_drop']) } } : {}),
    ...(seccompOpt ? { seccomp: { value: seccompOpt.value === 'unconfined' ? 'unconfined' : `localhost:${seccompOpt.value}`, at: seccompOpt.at } } : {}),
    ...(apparmorOpt ? { appArmor: { value: apparmorOpt.value === 'unconfined' ? 'unconfined' : `localhost:${apparmorOpt.value}`, at: apparmorOpt.at } } : {}),
    ...(labelDisable ? { seLinuxType: { value: 'disable', at: labelDisable.at } } : labelType ? { seLinuxType: labelType } : {}),
    ...(systemPaths ? { procMount: { value: 'unmasked', at: systemPaths.at } } : {}),
  };
  const ns = (key: string): L<boolean> | undefined => {
    const v = str(doc, [...base, key]);
    return v ? { value: v.value === 'host', at: v.at } : undefined;
  };
  const hostNetwork = ns('network_mode');
  const hostPID = ns('pid');
  const hostIPC = ns('ipc');
  return {
    kind: 'service',
    name,
    at,
    ...(hostNetwork ? { hostNetwork } : {}),
    ...(hostPID ? { hostPID } : {}),
    ...(hostIPC ? { hostIPC } : {}),
    sysctls: keyValues(doc, [...base, 'sysctls']).map((s) => ({ value: s.key, at: s.at })),
    containers: [container],
  };
}

export function modelFromCompose(doc: YamlDoc): WorkloadModel {
  const services = get(doc.value, ['services']);
  if (services === null || typeof services !== 'object' || Array.isArray(services)) typeError(doc, ['services'], 'a Compose file needs a services mapping');
  const names = Object.keys(services as Obj);
  if (names.length === 0) typeError(doc, ['services'], 'no services');
  const vols = get(doc.value, ['volumes']);
  const namedVolumes = new Set(vols && typeof vols === 'object' ? Object.keys(vols) : []);
  return { source: doc.source, format: 'compose', groups: names.map((n) => service(doc, n, namedVolumes)) };
}

export function looksLikeCompose(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'services' in value && !('apiVersion' in value);
}
