import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes } from '../broker/jcs.js';
import { inputError } from '../errors.js';
import { parseImageReference } from './reference.js';
import { parseSignerKey } from './signatures.js';
import { parseYamlDocuments, schemaErrors, throwFieldErrors, type YamlDoc } from './yaml.js';

/**
 * The workload manifest: what a confidential VM runs, written once, checked against SP 800-190,
 * and bound into the attestation through its digest. Strict schema: an unknown field is an error
 * at its line, never ignored, because an ignored field would be a setting the digest vouches for
 * that nothing enforces. Security settings default to the hardened value, so that omitting one
 * never weakens a container; the normalized form (defaults filled in) is what is digested, so two
 * manifests that mean the same thing have the same identity. Format: docs/workload.md.
 */

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const name = z.string().regex(NAME, 'must be a DNS label: lowercase letters, digits and -, at most 63');
const absPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ..');
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESOURCE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+){2}$/;
const QUANTITY = /^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const CAP = /^(CAP_)?[A-Z_]+$/;

const imageRef = z.string().superRefine((s, ctx) => {
  try {
    parseImageReference(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

const signer = z.union([
  z.strictObject({
    publicKey: z.string().superRefine((pem, ctx) => {
      try {
        parseSignerKey(pem);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
      }
    }),
  }),
  z.strictObject({ keyless: z.strictObject({ issuer: z.url({ protocol: /^https$/ }), subject: z.string().min(1) }) }),
]);

const secretRef = z
  .strictObject({
    /** Broker resource path: repository/type/tag. */
    resource: z.string().regex(RESOURCE, 'must be a broker resource path such as team-a/key/db'),
    /** A file on a tmpfs that only this container sees. */
    file: absPath.optional(),
    env: z.string().regex(ENV_NAME, 'must be an environment variable name').optional(),
  })
  .refine((s) => (s.file === undefined) !== (s.env === undefined), 'give exactly one of file or env');

const securityContext = z
  .strictObject({
    privileged: z.boolean().default(false),
    /** uid or uid:gid; no default: the image's user may be root. */
    user: z
      .union([z.number().int().min(0).max(0xfffffffe), z.string().regex(/^\d{1,10}(:\d{1,10})?$/, 'must be uid or uid:gid (numbers: names resolve inside the image)')])
      .transform((u) => String(u))
      .optional(),
    readOnlyRootFilesystem: z.boolean().default(true),
    noNewPrivileges: z.boolean().default(true),
    capabilities: z
      .strictObject({
        add: z.array(z.string().regex(CAP, 'must be a capability name such as NET_BIND_SERVICE')).default([]),
        drop: z.array(z.string().regex(CAP, 'must be a capability name or ALL')).default(['ALL']),
      })
      .default({ add: [], drop: ['ALL'] }),
    seccomp: z.union([z.enum(['runtime-default', 'unconfined']), z.strictObject({ localhost: absPath })]).default('runtime-default'),
    appArmor: z.union([z.enum(['runtime-default', 'unconfined']), z.strictObject({ localhost: z.string().min(1) })]).default('runtime-default'),
    seLinuxType: z.string().min(1).optional(),
    procMount: z.enum(['default', 'unmasked']).default('default'),
  })
  .default({ privileged: false, readOnlyRootFilesystem: true, noNewPrivileges: true, capabilities: { add: [], drop: ['ALL'] }, seccomp: 'runtime-default', appArmor: 'runtime-default', procMount: 'default' });

const container = z.strictObject({
  name,
  image: imageRef,
  signer: signer.optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  workingDir: absPath.optional(),
  env: z.record(z.string().regex(ENV_NAME, 'must be an environment variable name'), z.string()).default({}),
  secrets: z.array(secretRef).default([]),
  mounts: z.array(z.strictObject({ volume: name, path: absPath, readOnly: z.boolean().default(false) })).default([]),
  ports: z
    .array(
      z.strictObject({
        container: z.number().int().min(1).max(65535),
        host: z.number().int().min(1).max(65535).optional(),
        protocol: z.enum(['tcp', 'udp']).default('tcp'),
      }),
    )
    .default([]),
  resources: z
    .strictObject({
      cpu: z.union([z.number().positive(), z.string().regex(/^\d+(\.\d+)?m?$/, 'must be cores (0.5) or millicores (500m)')]).transform((v) => String(v)).optional(),
      memory: z.string().regex(QUANTITY, 'must be a quantity such as 512Mi or 2Gi').optional(),
      pids: z.number().int().positive().optional(),
    })
    .optional(),
  securityContext,
});

const volume = z.union([
  z.strictObject({ name, type: z.literal('encrypted'), size: z.string().regex(QUANTITY, 'must be a quantity such as 10Gi') }),
  z.strictObject({ name, type: z.literal('tmpfs'), size: z.string().regex(QUANTITY, 'must be a quantity such as 64Mi').optional() }),
  z.strictObject({ name, type: z.literal('hostPath'), path: absPath }),
]);

export const manifestSchema = z.strictObject({
  version: z.literal(1, 'must be 1 (the only manifest version)'),
  name,
  description: z.string().optional(),
  /** Registries images may come from; `http://host` marks one reached without TLS. */
  registries: z.array(z.string().regex(/^(https?:\/\/)?[A-Za-z0-9.[\]:-]+$/, 'must be a registry host[:port], optionally with http:// or https://')).optional(),
  host: z
    .strictObject({ network: z.boolean().default(false), pid: z.boolean().default(false), ipc: z.boolean().default(false) })
    .default({ network: false, pid: false, ipc: false }),
  sysctls: z.record(z.string().regex(/^[a-z0-9_.\-/]+$/, 'must be a sysctl name'), z.string()).default({}),
  volumes: z.array(volume).default([]),
  containers: z.array(container).min(1, 'at least one container'),
});

export type WorkloadManifest = z.output<typeof manifestSchema>;
export type ManifestContainer = WorkloadManifest['containers'][number];

export interface ParsedManifest {
  manifest: WorkloadManifest;
  /** The YAML document, for positions. */
  doc: YamlDoc;
}

/** True when a YAML document looks like a Coffer workload manifest (for format detection). */
export function looksLikeManifest(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'containers' in value && 'version' in value && !('apiVersion' in value) && !('services' in value);
}

/** Parses and validates a manifest: every problem is WORKLOAD_INVALID (exit 2) at `file:line:column`. */
export function parseManifest(text: string, source = 'manifest'): ParsedManifest {
  const docs = parseYamlDocuments(text, source, 'WORKLOAD_SYNTAX');
  if (docs.length !== 1) throw inputError('WORKLOAD_INVALID', `${source}: a workload manifest is one YAML document, found ${docs.length}`);
  const doc = docs[0] as YamlDoc;
  const r = manifestSchema.safeParse(doc.value);
  if (!r.success) throwFieldErrors('WORKLOAD_INVALID', source, schemaErrors(doc, r.error.issues));
  const m = r.data;
  const errors: { path: (string | number)[]; message: string }[] = [];
  const seen = new Set<string>();
  m.containers.forEach((c, i) => {
    if (seen.has(c.name)) errors.push({ path: ['containers', i, 'name'], message: `container name "${c.name}" is used twice` });
    seen.add(c.name);
    c.mounts.forEach((mt, j) => {
      if (!m.volumes.some((v) => v.name === mt.volume)) errors.push({ path: ['containers', i, 'mounts', j, 'volume'], message: `no volume named "${mt.volume}"` });
    });
    const targets = new Set<string>();
    c.secrets.forEach((s, j) => {
      const t = s.file ?? `env:${s.env ?? ''}`;
      if (targets.has(t)) errors.push({ path: ['containers', i, 'secrets', j], message: `two secrets go to ${t}` });
      targets.add(t);
      if (s.env !== undefined && s.env in c.env) errors.push({ path: ['containers', i, 'secrets', j, 'env'], message: `${s.env} is also set in env` });
    });
  });
  const vnames = new Set<string>();
  m.volumes.forEach((v, i) => {
    if (vnames.has(v.name)) errors.push({ path: ['volumes', i, 'name'], message: `volume name "${v.name}" is used twice` });
    vnames.add(v.name);
  });
  if (errors.length > 0) {
    throwFieldErrors(
      'WORKLOAD_INVALID',
      source,
      errors.map((e) => ({ ...doc.pos(e.path), field: e.path.join('.'), message: e.message })).sort((a, b) => a.line - b.line || a.column - b.column),
    );
  }
  return { manifest: m, doc };
}

/**
 * The canonical form: RFC 8785 (JCS) of the normalized manifest, with the description left out
 * (it documents, it does not configure). Key order, quoting, comments and defaults written or
 * omitted do not change it; any change of meaning does.
 */
export function canonicalManifest(m: WorkloadManifest): Buffer {
  const rest: Partial<WorkloadManifest> = { ...m };
  delete rest.description;
  return canonicalBytes(rest);
}

export interface WorkloadIdentity {
  /** SHA-384 of the canonical form: the workload identity (TDX MRCONFIGID, policy workload.digest). */
  sha384: string;
  /** SHA-256 of the same bytes: what fits SEV-SNP HOST_DATA (32 bytes). */
  sha256: string;
  /** The 32 bytes to launch an SNP guest with as HOST_DATA. */
  snpHostData: string;
  /** The 48 bytes to launch a TDX guest with as MRCONFIGID. */
  tdxMrConfigId: string;
  canonical: Buffer;
}

export function workloadIdentity(m: WorkloadManifest): WorkloadIdentity {
  const canonical = canonicalManifest(m);
  const sha384 = createHash('sha384').update(canonical).digest('hex');
  const sha256 = createHash('sha256').update(canonical).digest('hex');
  return { sha384, sha256, snpHostData: sha256, tdxMrConfigId: sha384, canonical };
}
