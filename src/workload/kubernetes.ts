import { inputError } from '../errors.js';
import type { ContainerModel, GroupModel, L, MountModel, WorkloadModel } from './model.js';
import type { Path, YamlDoc } from './yaml.js';

/**
 * Kubernetes objects that carry a pod template, mapped into the common model. Only the fields the
 * rules judge are read; a field of the wrong type is an error at its line (a rule must never pass
 * because a value it could not read was skipped). Objects without a pod template (Services,
 * ConfigMaps...) are listed in `skipped`.
 */

const TEMPLATE_PATH: Readonly<Record<string, Path>> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

export const SIGNER_ANNOTATION = 'coffer.dev/signer';

type Obj = Record<string, unknown>;

class Reader {
  constructor(readonly doc: YamlDoc) {}
  fail(path: Path, what: string): never {
    const p = this.doc.pos(path);
    throw inputError('WORKLOAD_INVALID', `${this.doc.source}:${p.line}:${p.column}: ${path.join('.')}: ${what}`);
  }
  get(path: Path): unknown {
    let v: unknown = this.doc.value;
    for (const seg of path) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Obj)[seg as string];
    }
    return v;
  }
  obj(path: Path): Obj | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'must be a mapping');
    return v as Obj;
  }
  arr(path: Path): unknown[] {
    const v = this.get(path);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, 'must be a list');
    return v;
  }
  str(path: Path): L<string> | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(path, 'must be a string');
    return { value: v, at: this.doc.pos(path) };
  }
  bool(path: Path): L<boolean> | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false');
    return { value: v, at: this.doc.pos(path) };
  }
  int(path: Path): L<number> | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, 'must be an integer');
    return { value: v, at: this.doc.pos(path) };
  }
  /** A quantity (string or number) as a string. */
  qty(path: Path): string | undefined {
    const v = this.get(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' && typeof v !== 'number') this.fail(path, 'must be a quantity');
    return String(v);
  }
}

function profile(r: Reader, path: Path): L<string> | undefined {
  const t = r.str([...path, 'type']);
  if (!t) return undefined;
  const map: Record<string, string> = { RuntimeDefault: 'runtime-default', Unconfined: 'unconfined', Localhost: 'localhost' };
  const v = map[t.value];
  if (v === undefined) r.fail([...path, 'type'], 'must be RuntimeDefault, Unconfined or Localhost');
  return { value: v === 'localhost' ? `localhost:${r.str([...path, 'localhostProfile'])?.value ?? ''}` : v, at: t.at };
}

function containerModel(r: Reader, spec: Path, list: 'containers' | 'initContainers' | 'ephemeralContainers', i: number, annotations: Path | undefined, podSigner: L<string> | undefined): ContainerModel {
  const base = [...spec, list, i];
  const sc = [...base, 'securityContext'];
  const psc = [...spec, 'securityContext'];
  const name = r.str([...base, 'name']) ?? r.fail([...base, 'name'], 'required field is missing');
  const image = r.str([...base, 'image']) ?? r.fail([...base, 'image'], 'required field is missing');
  const volumes = r.arr([...spec, 'volumes']);
  const mounts = r.arr([...base, 'volumeMounts']).map((_, j): MountModel => {
    const mp = [...base, 'volumeMounts', j];
    const vname = r.str([...mp, 'name'])?.value;
    const vi = volumes.findIndex((v) => (v as Obj | null)?.name === vname);
    const vp = [...spec, 'volumes', vi];
    const hostPath = vi >= 0 ? r.str([...vp, 'hostPath', 'path'])?.value : undefined;
    const medium = vi >= 0 ? r.str([...vp, 'emptyDir', 'medium'])?.value : undefined;
    return {
      target: r.str([...mp, 'mountPath'])?.value ?? '',
      readOnly: r.bool([...mp, 'readOnly'])?.value ?? false,
      encrypted: false,
      tmpfs: medium === 'Memory',
      ...(hostPath !== undefined ? { hostPath } : {}),
      at: r.doc.pos(mp),
    };
  });
  const user = r.int([...sc, 'runAsUser']) ?? r.int([...psc, 'runAsUser']);
  const ape = r.bool([...sc, 'allowPrivilegeEscalation']);
  const drops = r.arr([...sc, 'capabilities', 'drop']);
  // The older AppArmor annotation still works on most clusters; the field wins where both exist.
  const annot = annotations ? r.str([...annotations, `container.apparmor.security.beta.kubernetes.io/${name.value}`]) : undefined;
  const annotAppArmor = annot ? { value: annot.value === 'runtime/default' ? 'runtime-default' : annot.value.startsWith('localhost/') ? `localhost:${annot.value.slice(10)}` : annot.value, at: annot.at } : undefined;
  const limits: ContainerModel['limits'] = {};
  const cpu = r.qty([...base, 'resources', 'limits', 'cpu']);
  const memory = r.qty([...base, 'resources', 'limits', 'memory']);
  if (cpu !== undefined) limits.cpu = cpu;
  if (memory !== undefined) limits.memory = memory;
  const privileged = r.bool([...sc, 'privileged']);
  const runAsNonRoot = r.bool([...sc, 'runAsNonRoot']) ?? r.bool([...psc, 'runAsNonRoot']);
  const ro = r.bool([...sc, 'readOnlyRootFilesystem']);
  const seccomp = profile(r, [...sc, 'seccompProfile']) ?? profile(r, [...psc, 'seccompProfile']);
  const appArmor = profile(r, [...sc, 'appArmorProfile']) ?? profile(r, [...psc, 'appArmorProfile']) ?? annotAppArmor;
  const seLinuxType = r.str([...sc, 'seLinuxOptions', 'type']) ?? r.str([...psc, 'seLinuxOptions', 'type']);
  const procMount = r.str([...sc, 'procMount']);
  return {
    name: name.value,
    at: r.doc.pos(base),
    image,
    ...(podSigner ? { signer: podSigner } : {}),
    env: r.arr([...base, 'env']).map((_, j) => {
      const ep = [...base, 'env', j];
      const n = r.str([...ep, 'name']) ?? r.fail([...ep, 'name'], 'required field is missing');
      const value = r.str([...ep, 'value'])?.value;
      return { name: n.value, at: n.at, ...(value !== undefined ? { value } : {}), fromSecret: r.get([...ep, 'valueFrom', 'secretKeyRef']) !== undefined };
    }),
    secretEnv: [],
    hostPorts: r.arr([...base, 'ports']).flatMap((_, j) => {
      const hp = r.int([...base, 'ports', j, 'hostPort']);
      return hp && hp.value !== 0 ? [hp] : [];
    }),
    mounts,
    limits,
    limitsAt: r.get([...base, 'resources']) !== undefined ? r.doc.pos([...base, 'resources'], true) : r.doc.pos(base),
    ...(privileged ? { privileged } : {}),
    ...(user ? { user: { value: String(user.value), at: user.at } } : {}),
    ...(runAsNonRoot ? { runAsNonRoot } : {}),
    ...(ro ? { readOnlyRootFilesystem: ro } : {}),
    ...(ape ? { noNewPrivileges: { value: !ape.value, at: ape.at } } : {}),
    capAdd: r.arr([...sc, 'capabilities', 'add']).map((_, j) => r.str([...sc, 'capabilities', 'add', j]) ?? r.fail([...sc, 'capabilities', 'add', j], 'must be a capability name')),
    ...(drops.length > 0 ? { capDropAll: { value: drops.some((d) => typeof d === 'string' && d.toUpperCase() === 'ALL'), at: r.doc.pos([...sc, 'capabilities', 'drop']) } } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(appArmor ? { appArmor } : {}),
    ...(seLinuxType ? { seLinuxType } : {}),
    ...(procMount ? { procMount: { value: procMount.value === 'Unmasked' ? 'unmasked' : 'default', at: procMount.at } } : {}),
  };
}

export interface KubernetesModel extends WorkloadModel {
  skipped: { kind: string; name: string; line: number }[];
}

export function modelFromKubernetes(docs: readonly YamlDoc[], source: string): KubernetesModel {
  const groups: GroupModel[] = [];
  const skipped: KubernetesModel['skipped'] = [];
  for (const doc of docs) {
    const r = new Reader(doc);
    const kind = r.str(['kind']) ?? r.fail(['kind'], 'a Kubernetes object needs apiVersion and kind');
    if (!r.str(['apiVersion'])) r.fail(['apiVersion'], 'a Kubernetes object needs apiVersion and kind');
    const name = r.str(['metadata', 'name'])?.value ?? '(unnamed)';
    const spec = TEMPLATE_PATH[kind.value];
    if (!spec) {
      if (kind.value === 'List') r.fail(['kind'], 'a List is not read: write its items as separate documents (---)');
      skipped.push({ kind: kind.value, name, line: kind.at.line });
      continue;
    }
    if (r.obj(spec) === undefined) r.fail(spec, 'the pod template is missing');
    const meta: Path = kind.value === 'Pod' ? ['metadata'] : [...spec.slice(0, -1), 'metadata'];
    const annotations: Path = [...meta, 'annotations'];
    r.obj(annotations);
    const signer = r.str([...annotations, SIGNER_ANNOTATION]) ?? r.str(['metadata', 'annotations', SIGNER_ANNOTATION]);
    // Ephemeral containers (kubectl debug) appear in a Pod's spec as read back from the API and run
    // with their own securityContext: judged like the others.
    const containers = (['initContainers', 'containers', 'ephemeralContainers'] as const).flatMap((list) => r.arr([...spec, list]).map((_, i) => containerModel(r, spec, list, i, annotations, signer)));
    if (containers.length === 0) r.fail([...spec, 'containers'], 'the pod template has no containers');
    const sysctls = r.arr([...spec, 'securityContext', 'sysctls']).map((_, i) => r.str([...spec, 'securityContext', 'sysctls', i, 'name']) ?? r.fail([...spec, 'securityContext', 'sysctls', i, 'name'], 'required field is missing'));
    const hostNetwork = r.bool([...spec, 'hostNetwork']);
    const hostPID = r.bool([...spec, 'hostPID']);
    const hostIPC = r.bool([...spec, 'hostIPC']);
    const automount = r.bool([...spec, 'automountServiceAccountToken']);
    groups.push({
      kind: kind.value,
      name,
      at: kind.at,
      ...(hostNetwork ? { hostNetwork } : {}),
      ...(hostPID ? { hostPID } : {}),
      ...(hostIPC ? { hostIPC } : {}),
      automountServiceAccountToken: automount ?? { value: true, at: doc.pos(spec, true) },
      sysctls,
      containers,
    });
  }
  if (groups.length === 0) throw inputError('WORKLOAD_NO_PODS', `${source}: no object with a pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)${skipped.length ? `; found ${skipped.map((s) => s.kind).join(', ')}` : ''}`);
  return { source, format: 'kubernetes', groups, skipped };
}

export function looksLikeKubernetes(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'apiVersion' in value && 'kind' in value;
}
