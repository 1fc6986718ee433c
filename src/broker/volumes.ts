import { isStaticPcr } from './identity.js';
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { parsePolicy, tpmAkId, type Policy } from '../appraisal/index.js';
import { CofferError } from '../errors.js';
import { seal, type Sealed } from './envelope.js';
import type { KekProvider } from './kek.js';
import { covers } from './paths.js';
import { problem } from './problem.js';
import type { AdminContext } from './refvalues.js';
import type { AuditInput, TokenRecord, VolumeMeta, VolumeRecord } from './store/types.js';

/**
 * Volume (disk) keys provisioned per VM. `POST /admin/v0/volumes` takes a VM identity (launch
 * measurement, TDX MRTD, TPM PCR values with the VM's attestation key, or a signed reference
 * image, optionally host data or MRCONFIGID) and makes a volume: 32 random bytes from the broker's CSPRNG, sealed like a secret
 * (fresh data key, AES-256-GCM, path as associated data, wrapped by the KEK), and a release policy
 * generated from the identity. The key leaves the broker only as a JWE to an attested VM that
 * matches the identity, at `volumes/<id>/key` (the KBS <repository>/<type>/<tag> shape); nobody
 * else ever sees it, not even the provisioner. The guest uses it as a LUKS2 key file
 * (`cryptsetup luksFormat --key-file=-`): LUKS derives its own master key from it.
 *
 * Re-provisioning makes a new key (version + 1) and the old one is gone for good: data encrypted
 * under it becomes unreadable, so it takes an explicit `reprovision: true`. Revocation erases the
 * key material; a revoked volume id is never released nor reused.
 */

export const VOLUME_REPOSITORY = 'volumes';
export const VOLUME_KEY_BYTES = 32;
const VOLUME_ID = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

const hexN = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `must be ${bytes} bytes of hex`).transform((s) => s.toLowerCase());
const hexAny = z.string().regex(/^([0-9a-fA-F]{2}){20,64}$/, 'must be 20 to 64 bytes of hex').transform((s) => s.toLowerCase());
const pcrBank = z.record(z.string().regex(/^(0|[1-9]|1\d|2[0-3])$/, 'must be a PCR index 0-23'), hexAny);

export const identitySchema = z
  .strictObject({
    snp: z.strictObject({ measurements: z.array(hexN(48)).min(1).max(64).optional(), hostData: z.array(hexN(32)).min(1).max(64).optional() }).optional(),
    tdx: z
      .strictObject({
        mrtd: z.array(hexN(48)).min(1).max(64).optional(),
        mrConfigId: z.array(hexN(48)).min(1).max(64).optional(),
        rtmrs: z.strictObject({ '0': hexN(48).optional(), '1': hexN(48).optional(), '2': hexN(48).optional(), '3': hexN(48).optional() }).optional(),
      })
      .optional(),
    tpm: z
      .strictObject({
        pcrs: z.strictObject({ sha1: pcrBank.optional(), sha256: pcrBank.optional(), sha384: pcrBank.optional(), sha512: pcrBank.optional() }),
        /** The VM's attestation key: SHA-256 of its SPKI DER (`coffer agent tpm-ak`) or its TPM name. */
        ak: tpmAkId.optional(),
        /** Stated on purpose: any VM whose quote shows these PCRs (every VM of the image) gets the key. */
        shared: z.boolean().optional(),
      })
      .optional(),
    /** Image id of signed reference values (PUT /admin/v0/reference-values): its launch measurements. */
    reference: z.string().regex(/^[A-Za-z0-9._:/-]{1,128}$/, 'must be an image id').optional(),
  })
  .refine((i) => Object.values(i).some((v) => v !== undefined), 'give at least one of snp, tdx, tpm, reference');

export type VolumeIdentity = z.output<typeof identitySchema>;

export const provisionSchema = z.strictObject({
  id: z.string().regex(VOLUME_ID, 'must be 1 to 64 letters, digits, . _ - (not starting with . or -)').optional(),
  label: z.string().max(100).optional(),
  identity: identitySchema,
  /** Replace the key of an existing volume: data under the old key becomes unreadable. */
  reprovision: z.boolean().optional(),
});
export type ProvisionRequest = z.output<typeof provisionSchema>;

export function volumePath(id: string): string {
  return `${VOLUME_REPOSITORY}/${id}/key`;
}

/**
 * The release policy of a volume: the identity's launch measurements (or PCRs, or reference
 * image) must match, the evidence must be of a kind the identity names, bound to the nonce, no
 * debug, no migration. Host data / MRCONFIGID narrow it further, never replace a measurement:
 * the host chooses them at launch.
 */
export function identityPolicy(id: string, version: number, idn: VolumeIdentity): { text: string; policy: Policy } {
  const kinds = new Set<string>();
  const measurements: Record<string, unknown> = {};
  const digests: string[] = [];
  const p: Record<string, unknown> = { id: `volume-${id}`, version, description: `generated for volume ${id} from its VM identity` };
  if (idn.snp) {
    kinds.add('sev-snp');
    if (idn.snp.measurements) measurements.snp = idn.snp.measurements;
    digests.push(...(idn.snp.hostData ?? []));
  }
  if (idn.tdx) {
    kinds.add('tdx');
    if (idn.tdx.mrtd) measurements.tdx = idn.tdx.mrtd;
    digests.push(...(idn.tdx.mrConfigId ?? []));
    if (idn.tdx.rtmrs && Object.keys(idn.tdx.rtmrs).length > 0) p.rtmrs = idn.tdx.rtmrs;
  }
  if (idn.tpm) {
    kinds.add('tpm');
    const banks = Object.fromEntries(Object.entries(idn.tpm.pcrs).filter(([, v]) => v && Object.keys(v).length > 0));
    if (Object.keys(banks).length === 0) throw problem('bad-request', 'VOLUME_NO_IDENTITY', 'identity.tpm.pcrs names no PCR value');
    if (!Object.values(banks).some((v) => Object.keys(v ?? {}).some(isStaticPcr))) {
      throw problem('bad-request', 'VOLUME_NO_IDENTITY', 'identity.tpm.pcrs names only resettable PCRs (16-23): software in the VM (16, 23) or DRTM (17-22) can set them, so they only narrow an identity; name a boot PCR 0-15 as well');
    }
    p.pcrs = banks;
  }
  if (idn.reference) measurements.reference = idn.reference;
  // Per TEE: host data, MRCONFIGID (host-chosen) and RTMRs (extended by the TD's own software)
  // only narrow a launch measurement of the same TEE; without one they would be its whole identity.
  const launch = measurements.reference !== undefined;
  if (idn.snp?.hostData && !idn.snp.measurements && !launch) {
    throw problem('bad-request', 'VOLUME_NO_IDENTITY', 'identity.snp.hostData needs snp.measurements (or reference): host data is chosen by the host and identifies nothing alone');
  }
  if ((idn.tdx?.mrConfigId || p.rtmrs !== undefined) && !idn.tdx?.mrtd && !launch) {
    throw problem('bad-request', 'VOLUME_NO_IDENTITY', 'identity.tdx.mrConfigId and rtmrs need tdx.mrtd (or reference): the host picks MRCONFIGID and an unpinned TD firmware can extend any RTMR value');
  }
  const anchored = measurements.snp !== undefined || measurements.tdx !== undefined || launch || p.pcrs !== undefined;
  if (!anchored) {
    throw problem('bad-request', 'VOLUME_NO_IDENTITY', 'the identity names no measurement (snp.measurements, tdx.mrtd, tpm.pcrs or reference): host data and MRCONFIGID are chosen by the host and identify nothing alone');
  }
  // Every VM booted from one image shows the same PCR values, so PCRs alone would hand the key to
  // all of them (any trusted AK passes): per VM means per attestation key.
  if (idn.tpm) {
    if (idn.tpm.ak !== undefined && idn.tpm.shared === true) {
      throw problem('bad-request', 'VOLUME_TPM_AK_SHARED', 'identity.tpm names an attestation key (ak) and says shared: true: a key bound to one AK is not shared; give one of them');
    }
    if (idn.tpm.ak === undefined && idn.tpm.shared !== true) {
      throw problem('bad-request', 'VOLUME_TPM_AK_REQUIRED', "identity.tpm.ak is required: every VM booted from the same image has the same PCR values, so without the VM's attestation key (its SHA-256 fingerprint, printed by coffer agent tpm-ak) any of them would get this key; say shared: true if that is intended");
    }
    if (idn.tpm.ak !== undefined) p.tpm = { ak: [idn.tpm.ak] };
  }
  if (kinds.size > 0) p.evidence = { accepted: [...kinds] };
  if (Object.keys(measurements).length > 0) p.measurements = measurements;
  if (digests.length > 0) p.workload = { digest: digests };
  p.freshness = { nonce: 'required' };
  p.debug = 'forbidden';
  p.migration = 'forbidden';
  const text = `${JSON.stringify(p, null, 2)}\n`;
  try {
    return { text, policy: parsePolicy(text, `volume ${id} policy`) };
  } catch (e) {
    if (e instanceof CofferError) throw problem('bad-request', e.code, e.message);
    throw e;
  }
}

type Who = { token: TokenRecord };
type Meta = { remote?: string };
export type VolumeView = VolumeMeta & { path: string; identityObject: unknown };

function view(m: VolumeMeta): VolumeView {
  const out: VolumeMeta & { wrappedKey?: unknown; iv?: unknown; ciphertext?: unknown; tag?: unknown } = { ...m };
  delete out.wrappedKey;
  delete out.iv;
  delete out.ciphertext;
  delete out.tag;
  let identityObject: unknown;
  try {
    identityObject = JSON.parse(m.identity);
  } catch {
    identityObject = null;
  }
  return { ...(out as VolumeMeta), path: volumePath(m.id), identityObject };
}

const sha256hex = (b: string) => createHash('sha256').update(b).digest('hex');

function checkId(id: string): string {
  if (!VOLUME_ID.test(id)) throw problem('bad-request', 'VOLUME_BAD_ID', `volume id "${id.slice(0, 100)}" must be 1 to 64 letters, digits, . _ - (not starting with . or -)`);
  return id;
}

export class Volumes {
  constructor(private readonly b: AdminContext & { readonly kek: KekProvider }) {}

  /** Creates a volume, or with `reprovision` replaces the key of an active one. Never returns the key. */
  async provision(who: Who, req: ProvisionRequest, meta: Meta = {}): Promise<{ created: boolean; volume: VolumeView }> {
    const id = req.id ?? `vol-${randomBytes(8).toString('hex')}`;
    const path = volumePath(id);
    return this.b.adminAudited(who, req.reprovision ? 'admin.volume.reprovision' : 'admin.volume.provision', `${VOLUME_REPOSITORY}/${id}`, meta, async (note, allow) => {
      checkId(id);
      const scope = who.token.scope;
      if (scope !== undefined && !covers(scope, `${VOLUME_REPOSITORY}/${id}`)) throw problem('out-of-scope', 'ADMIN_SCOPE', `token scope ${scope} does not cover ${VOLUME_REPOSITORY}/${id}`);
      const existing = await this.b.store.getVolume(id);
      if (existing?.state === 'revoked') throw problem('resource-revoked', 'VOLUME_REVOKED', `volume ${id} was revoked at ${new Date(existing.revokedAt ?? 0).toISOString()}; a revoked volume id is never reused: provision a new id`);
      if (existing && !req.reprovision) {
        throw problem('conflict', 'VOLUME_EXISTS', `volume ${id} exists (key version ${existing.keyVersion}). Re-provisioning replaces its key and makes everything encrypted under the old key unreadable: pass reprovision: true (coffer broker volume provision --reprovision) if that is intended`);
      }
      if (!existing && req.reprovision) throw problem('not-found', 'VOLUME_NOT_FOUND', `no volume ${id} to re-provision`);
      const version = existing ? existing.keyVersion + 1 : 1;
      const { text, policy } = identityPolicy(id, version, req.identity);
      const key = randomBytes(VOLUME_KEY_BYTES);
      let sealed: Sealed;
      try {
        sealed = await seal(this.b.kek, path, key);
      } finally {
        key.fill(0);
      }
      const now = this.b.now();
      const by = `token:${who.token.id}`;
      const identity = JSON.stringify(req.identity);
      note({ rule: `${policy.id}@${policy.version}`, detail: `${existing ? 're-provisioned: key version {version}, the previous key is destroyed' : 'provisioned: key version 1'}, ${VOLUME_KEY_BYTES}-byte key, policy sha256 ${sha256hex(text)}` });
      if (existing) {
        const m = await this.b.store.rekeyVolume(id, { identity, policyText: text, policySha256: sha256hex(text), ...sealed, ...(req.label !== undefined ? { label: req.label } : {}), updatedAt: now, updatedBy: by }, allow());
        if (!m) throw problem('conflict', 'VOLUME_CHANGED', `volume ${id} changed (revoked or re-provisioned) during this request: look at it and try again`);
        return { created: false, volume: view(m) };
      }
      const rec: VolumeRecord = { id, ...(req.label !== undefined ? { label: req.label } : {}), identity, policyText: text, policySha256: sha256hex(text), ...sealed, keyVersion: 1, state: 'active', createdAt: now, createdBy: by, updatedAt: now, updatedBy: by };
      const a = allow();
      if (!(await this.b.store.createVolume(rec, { ...a, detail: a.detail?.replace('{version}', '1') }))) throw problem('conflict', 'VOLUME_EXISTS', `volume ${id} was created by another request at the same time`);
      return { created: true, volume: view(rec) };
    });
  }

  async list(who: Who, meta: Meta = {}): Promise<VolumeView[]> {
    return this.b.adminAudited(who, 'admin.volume.list', who.token.scope, meta, async () => {
      const scope = who.token.scope;
      return (await this.b.store.listVolumes()).filter((v) => scope === undefined || covers(scope, `${VOLUME_REPOSITORY}/${v.id}`)).map(view);
    });
  }

  async get(who: Who, id: string, meta: Meta = {}): Promise<VolumeView> {
    return this.b.adminAudited(who, 'admin.volume.get', `${VOLUME_REPOSITORY}/${id.slice(0, 64)}`, meta, async () => {
      const v = await this.b.store.getVolume(checkId(id));
      if (!v) throw problem('not-found', 'VOLUME_NOT_FOUND', `no volume ${id}`);
      return view(v);
    });
  }

  /** Revokes: the key material is erased in the same transaction as the audit record. */
  async revoke(who: Who, id: string, meta: Meta = {}): Promise<void> {
    await this.b.adminAudited(who, 'admin.volume.revoke', `${VOLUME_REPOSITORY}/${id.slice(0, 64)}`, meta, async (note, allow) => {
      checkId(id);
      const v = await this.b.store.getVolume(id);
      if (!v) throw problem('not-found', 'VOLUME_NOT_FOUND', `no volume ${id}`);
      if (v.state === 'revoked') throw problem('resource-revoked', 'VOLUME_REVOKED', `volume ${id} is already revoked`);
      note({ detail: `key version ${v.keyVersion} erased; never released again` });
      if (!(await this.b.store.revokeVolume(id, this.b.now(), `token:${who.token.id}`, allow()))) throw problem('conflict', 'VOLUME_CHANGED', `volume ${id} changed during this request`);
    });
  }
}

/** Whether a resource path is in the volumes repository (reserved: no secret may live there). */
export function isVolumePath(path: string): boolean {
  return path.split('/')[0] === VOLUME_REPOSITORY;
}

/**
 * The member of a volume key release's JWE protected header (integrity-protected as the AEAD's
 * associated data) that tells the VM which key version it got and whether a VM already reported
 * formatting the volume under it: a blank disk presented for an initialized volume is the host
 * resetting it, and the agent refuses rather than format (src/guest/unlock.ts).
 */
export const VOLUME_HEADER = 'coffer.volume';
export interface VolumeHeader {
  id: string;
  keyVersion: number;
  initialized: boolean;
}

/**
 * For a release of `volumes/<id>/key`: the volume's generated policy and its sealed key. Refused:
 * another path in the repository, an unknown volume, a revoked one.
 */
export async function volumeForRelease(store: AdminContext['store'], path: string): Promise<{ policy: Policy; sealed: Sealed; version: number; id: string; header: VolumeHeader }> {
  const [, id, tag] = path.split('/');
  if (tag !== 'key' || id === undefined) throw problem('resource-not-found', 'KBS_NO_RESOURCE', `no resource ${path}: a volume key is ${VOLUME_REPOSITORY}/<volume id>/key`);
  const v = await store.getVolume(id);
  if (!v) throw problem('resource-not-found', 'KBS_NO_RESOURCE', `no resource ${path}`);
  if (v.state !== 'active') throw problem('resource-revoked', 'KBS_VOLUME_REVOKED', `volume ${id} was revoked: its key is never released again`, { rule: 'volume.revoked' });
  // Read with the key in one row: the flag and the key version always belong together.
  const header = { id, keyVersion: v.keyVersion, initialized: v.initializedAt !== undefined };
  return { policy: parsePolicy(v.policyText, `volume ${id} policy`), sealed: v, version: v.keyVersion, id, header };
}

export const volumeInitializedSchema = z.strictObject({
  volume: z.string().regex(VOLUME_ID, 'must be a volume id'),
  keyVersion: z.number().int().min(1).max(2 ** 31 - 1),
});

/**
 * `POST /kbs/v0/volume-initialized` for attested session `sessionId`: the VM that was released
 * `volumes/<id>/key` at key version `keyVersion` formatted the volume with it. Only that session may
 * say so (a release record of this path, made after the volume's last re-provisioning), only for the
 * current key version; idempotent (a second report changes nothing and is allowed). The store's
 * conditional UPDATE decides races with a re-provisioning or a revocation.
 */
export async function markVolumeInitialized(
  store: AdminContext['store'],
  sessionId: string,
  body: unknown,
  now: number,
  note: (x: { resource?: string; detail?: string; rule?: string }) => void,
  allow: () => AuditInput,
): Promise<{ volume: string; keyVersion: number; initializedAt: number; already: boolean }> {
  const r = volumeInitializedSchema.safeParse(body);
  if (!r.success) throw problem('bad-request', 'KBS_BAD_REQUEST', `the volume-initialized body must be {"volume": "<volume id>", "keyVersion": <n>}: ${r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ').slice(0, 300)}`);
  const { volume: id, keyVersion } = r.data;
  const path = volumePath(id);
  note({ resource: path });
  const release = (await store.listReleases({ sessionId, limit: 1000 })).find((x) => x.resourcePath === path);
  if (!release) throw problem('not-released', 'KBS_VOLUME_NOT_RELEASED', `this session was not released ${path}: only the VM that fetched a volume's key may report it initialized`, { rule: 'volume.released' });
  const v = await store.getVolume(id);
  if (!v) throw problem('resource-not-found', 'KBS_NO_RESOURCE', `no resource ${path}`);
  if (v.state !== 'active') throw problem('resource-revoked', 'KBS_VOLUME_REVOKED', `volume ${id} was revoked`, { rule: 'volume.revoked' });
  // A release older than the last re-provisioning handed out a key that no longer exists.
  if (v.keyVersion !== keyVersion || release.at < v.updatedAt) {
    throw problem('conflict', 'KBS_VOLUME_KEY_VERSION', `volume ${id} is at key version ${v.keyVersion}, re-provisioned after this session's release; the report names key version ${keyVersion}: nothing recorded`, { rule: 'volume.key-version' });
  }
  if (v.initializedAt !== undefined) {
    note({ detail: `key version ${keyVersion} already initialized at ${new Date(v.initializedAt).toISOString()}: unchanged` });
    return { volume: id, keyVersion, initializedAt: v.initializedAt, already: true };
  }
  note({ detail: `key version ${keyVersion} initialized (first boot formatted the volume)` });
  if (await store.markVolumeInitialized(id, keyVersion, now, allow())) return { volume: id, keyVersion, initializedAt: now, already: false };
  // Lost a race: another report of the same version is fine, anything else changed the volume.
  const after = await store.getVolume(id);
  if (after?.state === 'active' && after.keyVersion === keyVersion && after.initializedAt !== undefined) {
    note({ detail: `key version ${keyVersion} already initialized at ${new Date(after.initializedAt).toISOString()}: unchanged` });
    return { volume: id, keyVersion, initializedAt: after.initializedAt, already: true };
  }
  throw problem('conflict', 'VOLUME_CHANGED', `volume ${id} changed (revoked or re-provisioned) during this request: nothing recorded`);
}
