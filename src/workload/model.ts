import type { Pos } from './yaml.js';
import type { ParsedManifest } from './manifest.js';

/**
 * The one model the SP 800-190 rules read, whatever the user wrote: a Coffer manifest, Kubernetes
 * pod templates or a Compose file. Every value keeps the position of the text it came from, so a
 * finding points at the line of the original file. `undefined` means "not said", which each rule
 * interprets as the runtime's default for that format (Kubernetes and Docker default to weaker
 * settings than a Coffer manifest does).
 */
export interface L<T> {
  value: T;
  at: Pos;
}

export type InputFormat = 'coffer' | 'kubernetes' | 'compose';

export interface EnvVar {
  name: string;
  at: Pos;
  /** A literal value written in the file (absent for values taken from a secret store). */
  value?: string;
  fromSecret: boolean;
}

export interface MountModel {
  /** Host path bind-mounted, when it is one. */
  hostPath?: string;
  target: string;
  readOnly: boolean;
  /** An encrypted volume (Coffer manifests only): data at rest under a broker-released key. */
  encrypted: boolean;
  /** A memory-backed volume. */
  tmpfs: boolean;
  at: Pos;
}

export interface ContainerModel {
  name: string;
  at: Pos;
  image: L<string>;
  signer?: L<string>;
  env: EnvVar[];
  /** Broker secrets delivered as environment variables. */
  secretEnv: L<string>[];
  hostPorts: L<number>[];
  mounts: MountModel[];
  limits: { cpu?: string; memory?: string; pids?: number };
  /** Where to point a finding about missing limits. */
  limitsAt: Pos;
  privileged?: L<boolean>;
  /** Effective user: a uid, `root`, or a name (names other than root cannot be judged). */
  user?: L<string>;
  runAsNonRoot?: L<boolean>;
  readOnlyRootFilesystem?: L<boolean>;
  noNewPrivileges?: L<boolean>;
  capAdd: L<string>[];
  /** Whether ALL capabilities are dropped (and where that was said). */
  capDropAll?: L<boolean>;
  /** `runtime-default`, `unconfined`, or `localhost:<profile>`. */
  seccomp?: L<string>;
  appArmor?: L<string>;
  seLinuxType?: L<string>;
  procMount?: L<string>;
}

export interface GroupModel {
  /** Pod, Deployment name, Compose project or Coffer workload name. */
  kind: string;
  name: string;
  at: Pos;
  hostNetwork?: L<boolean>;
  hostPID?: L<boolean>;
  hostIPC?: L<boolean>;
  /** Kubernetes only: `undefined` when the field is absent (the token is mounted by default). */
  automountServiceAccountToken?: L<boolean>;
  sysctls: L<string>[];
  containers: ContainerModel[];
}

export interface WorkloadModel {
  source: string;
  format: InputFormat;
  /** Registries images may come from, when the file says (`http://` marks a plaintext one). */
  registries?: L<string>[];
  groups: GroupModel[];
}

const PLACEHOLDER = { line: 1, column: 1 };

/** A Coffer manifest in the common model. */
export function modelFromManifest(p: ParsedManifest): WorkloadModel {
  const { manifest: m, doc } = p;
  const at = (path: (string | number)[], key = false) => doc.pos(path, key);
  const l = <T>(value: T, path: (string | number)[]): L<T> => ({ value, at: at(path) });
  const containers = m.containers.map((c, i): ContainerModel => {
    const base = ['containers', i];
    const sc = c.securityContext;
    const scp = [...base, 'securityContext'];
    const seccomp = typeof sc.seccomp === 'string' ? sc.seccomp : `localhost:${sc.seccomp.localhost}`;
    const appArmor = typeof sc.appArmor === 'string' ? sc.appArmor : `localhost:${sc.appArmor.localhost}`;
    return {
      name: c.name,
      at: at(base),
      image: l(c.image, [...base, 'image']),
      ...(c.signer ? { signer: l('publicKey' in c.signer ? 'public key' : `keyless ${c.signer.keyless.issuer} ${c.signer.keyless.subject}`, [...base, 'signer']) } : {}),
      env: Object.entries(c.env).map(([k, v]) => ({ name: k, value: v, fromSecret: false, at: at([...base, 'env', k], true) })),
      secretEnv: c.secrets.flatMap((s, j) => (s.env !== undefined ? [l(s.env, [...base, 'secrets', j, 'env'])] : [])),
      hostPorts: c.ports.flatMap((pt, j) => (pt.host !== undefined ? [l(pt.host, [...base, 'ports', j, 'host'])] : [])),
      mounts: c.mounts.map((mt, j) => {
        const v = m.volumes.find((x) => x.name === mt.volume);
        return {
          target: mt.path,
          readOnly: mt.readOnly,
          encrypted: v?.type === 'encrypted',
          tmpfs: v?.type === 'tmpfs',
          ...(v?.type === 'hostPath' ? { hostPath: v.path } : {}),
          at: at([...base, 'mounts', j]),
        };
      }),
      limits: { ...(c.resources?.cpu ? { cpu: c.resources.cpu } : {}), ...(c.resources?.memory ? { memory: c.resources.memory } : {}), ...(c.resources?.pids ? { pids: c.resources.pids } : {}) },
      limitsAt: c.resources ? at([...base, 'resources'], true) : at(base),
      privileged: l(sc.privileged, [...scp, 'privileged']),
      ...(sc.user !== undefined ? { user: l(sc.user.split(':')[0] as string, [...scp, 'user']) } : {}),
      readOnlyRootFilesystem: l(sc.readOnlyRootFilesystem, [...scp, 'readOnlyRootFilesystem']),
      noNewPrivileges: l(sc.noNewPrivileges, [...scp, 'noNewPrivileges']),
      capAdd: sc.capabilities.add.map((cap, j) => l(cap, [...scp, 'capabilities', 'add', j])),
      capDropAll: l(sc.capabilities.drop.some((d) => d.toUpperCase() === 'ALL'), [...scp, 'capabilities', 'drop']),
      seccomp: l(seccomp, [...scp, 'seccomp']),
      appArmor: l(appArmor, [...scp, 'appArmor']),
      ...(sc.seLinuxType !== undefined ? { seLinuxType: l(sc.seLinuxType, [...scp, 'seLinuxType']) } : {}),
      procMount: l(sc.procMount, [...scp, 'procMount']),
    };
  });
  return {
    source: doc.source,
    format: 'coffer',
    ...(m.registries ? { registries: m.registries.map((r, i) => l(r, ['registries', i])) } : {}),
    groups: [
      {
        kind: 'Workload',
        name: m.name,
        at: PLACEHOLDER,
        hostNetwork: l(m.host.network, ['host', 'network']),
        hostPID: l(m.host.pid, ['host', 'pid']),
        hostIPC: l(m.host.ipc, ['host', 'ipc']),
        sysctls: Object.keys(m.sysctls).map((k) => ({ value: k, at: at(['sysctls', k], true) })),
        containers,
      },
    ],
  };
}
