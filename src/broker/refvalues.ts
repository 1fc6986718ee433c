import { createHash, type KeyObject } from 'node:crypto';
import { ReferenceStore, parseTrustedKeys, verifyReferenceValues, type ReferenceDocument, type ReferenceValues } from '../appraisal/index.js';
import { CofferError } from '../errors.js';
import { parseAkPart } from '../evidence/tpm/index.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import type { TrustAnchor } from '../pki/chain.js';
import { problem } from './problem.js';
import type { AuditInput, ReferenceValuesRecord, Store, TrustPurpose, TrustedKeyRecord, TokenRecord } from './store/types.js';
import { TRUST_PURPOSES } from './store/types.js';

/**
 * Trusted keys and signed reference values, managed through the admin API and kept in the store
 * (so every replica appraises with the same ones):
 *
 * - trusted keys by purpose: `reference-signer` (Ed25519 or ECDSA P-384 public keys whose
 *   signature on a reference-value document makes it usable), `tpm-ak` (pinned TPM attestation
 *   keys) and `tpm-ak-root` (CA certificates TPM AK certificates must chain to);
 * - reference-value documents (the JWS `coffer image` produces), verified against the
 *   reference-signer keys when stored and again whenever the set of keys or documents changes:
 *   removing a signer withdraws every document only it signed.
 *
 * Policies refer to a document by its image id (`measurements.reference`, `pcrs.reference`, ...).
 * Changes are made by unscoped tokens only: they change what every release policy means.
 */

export const REFERENCE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Largest reference-value JWS accepted (a document lists a few dozen digests). */
export const MAX_REFERENCE_JWS = 64 * 1024;
const MAX_KEY_TEXT = 16 * 1024;

type Note = (extra: Partial<AuditInput>) => void;
type Allow = () => AuditInput;

/** The part of the Broker the admin helpers use (broker.ts implements it). */
export interface AdminContext {
  readonly store: Store;
  now(): number;
  adminAudited<T>(who: { token: TokenRecord }, action: string, resource: string | undefined, meta: { remote?: string }, fn: (note: Note, allow: Allow) => T | Promise<T>): Promise<T>;
}

type Who = { token: TokenRecord };
type Meta = { remote?: string };

export type TrustedKeyMeta = TrustedKeyRecord & { description: string };

export interface ReferenceValuesMeta {
  name: string;
  imageId: string;
  imageVersion: string;
  sha256: string;
  signer: string;
  updatedAt: number;
  updatedBy: string;
  /** Whether the document still verifies with a trusted reference-signer key (is used by appraisals). */
  active: boolean;
}

function withoutJws(r: ReferenceValuesRecord): Omit<ReferenceValuesRecord, 'jws'> {
  const out: Partial<ReferenceValuesRecord> = { ...r };
  delete out.jws;
  return out as Omit<ReferenceValuesRecord, 'jws'>;
}

const sha256hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

function checkName(name: string, what: string): string {
  if (!REFERENCE_NAME.test(name)) throw problem('bad-request', 'BROKER_BAD_NAME', `${what} "${name.slice(0, 200)}" must be letters, digits, . _ - (at most 128, not starting with . or -)`);
  return name;
}

export function checkPurpose(p: string): TrustPurpose {
  if (!(TRUST_PURPOSES as readonly string[]).includes(p)) throw problem('bad-request', 'TRUST_BAD_PURPOSE', `trust purpose "${p.slice(0, 64)}" is not one of ${TRUST_PURPOSES.join(', ')}`);
  return p as TrustPurpose;
}

function unscoped(who: Who, what: string): void {
  if (who.token.scope !== undefined) throw problem('out-of-scope', 'ADMIN_SCOPE', `${what} applies to every release: a token scoped to ${who.token.scope} may not change it`);
}

/** What a trusted key of each purpose is, parsed (throws bad-request). */
interface ParsedTrust {
  key?: KeyObject;
  cert?: Certificate;
  sha256: string;
  description: string;
}

export function parseTrustedKey(purpose: TrustPurpose, text: string): ParsedTrust {
  if (text.length === 0 || text.length > MAX_KEY_TEXT) throw problem('bad-request', 'TRUST_BAD_KEY', `the key text must be 1 to ${MAX_KEY_TEXT} characters`);
  try {
    if (purpose === 'reference-signer') {
      const keys = parseTrustedKeys(text, 'the reference signer key');
      if (keys.length !== 1) throw problem('bad-request', 'TRUST_BAD_KEY', `give one key per name (${keys.length} found)`);
      const key = keys[0] as KeyObject;
      const ok = key.asymmetricKeyType === 'ed25519' || (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1');
      if (!ok) throw problem('bad-request', 'TRUST_BAD_KEY', `reference values are signed with Ed25519 or ECDSA P-384 keys, not ${key.asymmetricKeyType ?? 'unknown'} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
      return { key, sha256: sha256hex(key.export({ type: 'spki', format: 'der' })), description: key.asymmetricKeyType === 'ed25519' ? 'Ed25519 public key' : 'ECDSA P-384 public key' };
    }
    if (purpose === 'tpm-ak') {
      const data = text.includes('-----BEGIN') ? Buffer.from(text, 'utf8') : Buffer.from(text.replace(/\s+/g, ''), 'base64');
      const part = parseAkPart(data, 'the TPM attestation key');
      if (part.kind === 'certificate') throw problem('bad-request', 'TRUST_BAD_KEY', 'a tpm-ak is a public key (PEM, or base64 TPM2B_PUBLIC/TPMT_PUBLIC); give certificate issuers as tpm-ak-root');
      // A pinned key that can sign arbitrary bytes could sign a forged TPMS_ATTEST: the quote's own
      // ak_public, which the attester chooses, cannot be what says it is restricted.
      const a = part.kind === 'tpm-public' ? part.public.attributes : undefined;
      if (a && !(a.restricted && a.sign && a.fixedTPM)) throw problem('bad-request', 'TRUST_BAD_KEY', 'this TPM public area is not a restricted signing key bound to its TPM (restricted, sign, fixedTPM): it is not an attestation key');
      const key = part.kind === 'tpm-public' ? part.public.key : part.key;
      const d = key.asymmetricKeyDetails;
      return { key, sha256: sha256hex(key.export({ type: 'spki', format: 'der' })), description: `TPM AK (${part.form}, ${key.asymmetricKeyType === 'rsa' ? `RSA-${d?.modulusLength ?? '?'}` : `ECC ${d?.namedCurve ?? ''}`})` };
    }
    const list = parseCertificates(Buffer.from(text, 'utf8'), 'the TPM AK root');
    if (list.length !== 1) throw problem('bad-request', 'TRUST_BAD_KEY', `give one CA certificate per name (${list.length} found)`);
    const cert = list[0] as Certificate;
    if (!cert.isCa) throw problem('bad-request', 'TRUST_BAD_KEY', `${cert.subjectCn || cert.subject} is not a CA certificate (basicConstraints cA)`);
    return { cert, sha256: cert.sha256, description: `CA certificate ${cert.subjectCn || cert.subject}` };
  } catch (e) {
    if (e instanceof CofferError && !('problem' in e)) throw problem('bad-request', 'TRUST_BAD_KEY', e.message);
    throw e;
  }
}

/**
 * The admin operations on trusted keys and reference values, and the appraisal inputs built from
 * them (cached until the stored set changes).
 */
export class TrustAndReferences {
  private refCache: { key: string; store: ReferenceStore; active: Set<string> } | undefined;
  private tpmCache: { key: string; value: { pinnedAks: KeyObject[]; akRoots: TrustAnchor[] } } | undefined;

  constructor(private readonly b: AdminContext) {}

  // ----- trusted keys

  async putTrustedKey(who: Who, purpose: string, name: string, text: string, meta: Meta = {}): Promise<TrustedKeyMeta> {
    return this.b.adminAudited(who, 'admin.trust.put', `trust/${purpose.slice(0, 32)}/${name.slice(0, 128)}`, meta, async (note, allow) => {
      unscoped(who, 'a trusted key');
      const p = checkPurpose(purpose);
      checkName(name, 'trusted key name');
      const parsed = parseTrustedKey(p, text.trim());
      const rec: TrustedKeyRecord = { purpose: p, name, pem: text.trim(), sha256: parsed.sha256, createdAt: this.b.now(), createdBy: `token:${who.token.id}` };
      note({ detail: `${parsed.description}, sha256 ${parsed.sha256}` });
      await this.b.store.putTrustedKey(rec, allow());
      return { ...rec, description: parsed.description };
    });
  }

  async listTrustedKeys(who: Who, purpose: string | undefined, meta: Meta = {}): Promise<TrustedKeyMeta[]> {
    return this.b.adminAudited(who, 'admin.trust.list', undefined, meta, async () => {
      const p = purpose === undefined ? undefined : checkPurpose(purpose);
      return (await this.b.store.listTrustedKeys(p)).map((k) => {
        let description: string;
        try {
          description = parseTrustedKey(k.purpose, k.pem).description;
        } catch {
          description = 'unreadable';
        }
        return { ...k, description };
      });
    });
  }

  async deleteTrustedKey(who: Who, purpose: string, name: string, meta: Meta = {}): Promise<void> {
    await this.b.adminAudited(who, 'admin.trust.delete', `trust/${purpose.slice(0, 32)}/${name.slice(0, 128)}`, meta, async (_note, allow) => {
      unscoped(who, 'a trusted key');
      const p = checkPurpose(purpose);
      if (!(await this.b.store.deleteTrustedKey(p, checkName(name, 'trusted key name'), allow()))) throw problem('not-found', 'TRUST_NOT_FOUND', `no trusted ${p} key ${name}`);
    });
  }

  private async signers(given?: TrustedKeyRecord[]): Promise<{ names: string[]; keys: KeyObject[] }> {
    const recs = given ?? (await this.b.store.listTrustedKeys('reference-signer'));
    const names: string[] = [];
    const keys: KeyObject[] = [];
    for (const r of recs) {
      try {
        const k = parseTrustedKey('reference-signer', r.pem).key;
        if (k) {
          names.push(r.name);
          keys.push(k);
        }
      } catch {
        // A key that no longer parses trusts nothing.
      }
    }
    return { names, keys };
  }

  // ----- reference values

  async putReferenceValues(who: Who, name: string, jws: string, meta: Meta = {}): Promise<ReferenceValuesMeta & { values: ReferenceValues }> {
    return this.b.adminAudited(who, 'admin.refvalues.put', `reference-values/${name.slice(0, 128)}`, meta, async (note, allow) => {
      unscoped(who, 'a reference-value document');
      checkName(name, 'reference values name');
      if (jws.length === 0 || jws.length > MAX_REFERENCE_JWS) throw problem('bad-request', 'REFERENCE_TOO_LARGE', `a reference-value JWS is 1 to ${MAX_REFERENCE_JWS} characters`);
      const { names, keys } = await this.signers();
      if (keys.length === 0) throw problem('bad-request', 'REFERENCE_NO_SIGNERS', 'no reference-signer key is trusted: add one first (PUT /admin/v0/trusted-keys/reference-signer/<name>, coffer broker trust add)');
      let doc: ReferenceDocument;
      try {
        doc = await verifyReferenceValues(jws, keys, `reference values ${name}`);
      } catch (e) {
        if (e instanceof CofferError) throw problem(e.kind === 'input' ? 'bad-request' : 'signature-invalid', e.code, e.message, { rule: 'reference.signature' });
        throw e;
      }
      const signer = names[doc.signer] as string;
      const rec: ReferenceValuesRecord = { name, imageId: doc.values.image.id, imageVersion: doc.values.image.version, jws: jws.trim(), sha256: sha256hex(jws.trim()), signer, updatedAt: this.b.now(), updatedBy: `token:${who.token.id}` };
      note({ detail: `image ${rec.imageId} ${rec.imageVersion}, signed by ${signer} (${doc.alg}), sha256 ${rec.sha256}` });
      await this.b.store.putReferenceValues(rec, allow());
      return { ...withoutJws(rec), active: true, values: doc.values };
    });
  }

  async getReferenceValues(who: Who, name: string, meta: Meta = {}): Promise<ReferenceValuesMeta & { values?: ReferenceValues }> {
    return this.b.adminAudited(who, 'admin.refvalues.get', `reference-values/${name.slice(0, 128)}`, meta, async () => {
      const rec = await this.b.store.getReferenceValues(checkName(name, 'reference values name'));
      if (!rec) throw problem('not-found', 'REFERENCE_NOT_FOUND', `no reference values ${name}`);
      const { store, active } = await this.current();
      const doc = active.has(rec.sha256) ? store.documents.find((d) => d.source === rec.name) : undefined;
      return { ...withoutJws(rec), active: doc !== undefined, ...(doc ? { values: doc.values } : {}) };
    });
  }

  async listReferenceValues(who: Who, meta: Meta = {}): Promise<ReferenceValuesMeta[]> {
    return this.b.adminAudited(who, 'admin.refvalues.list', undefined, meta, async () => {
      const { active } = await this.current();
      return (await this.b.store.listReferenceValues()).map((r) => ({ ...withoutJws(r), active: active.has(r.sha256) }));
    });
  }

  async deleteReferenceValues(who: Who, name: string, meta: Meta = {}): Promise<void> {
    await this.b.adminAudited(who, 'admin.refvalues.delete', `reference-values/${name.slice(0, 128)}`, meta, async (_note, allow) => {
      unscoped(who, 'a reference-value document');
      if (!(await this.b.store.deleteReferenceValues(checkName(name, 'reference values name'), allow()))) throw problem('not-found', 'REFERENCE_NOT_FOUND', `no reference values ${name}`);
    });
  }

  // ----- appraisal inputs

  /**
   * The reference values appraisals use: every stored document that verifies with a currently
   * trusted reference-signer key (a document whose signer was removed is left out).
   */
  async current(): Promise<{ store: ReferenceStore; active: Set<string> }> {
    const [docs, signers] = await Promise.all([this.b.store.listReferenceValues(), this.b.store.listTrustedKeys('reference-signer')]);
    const key = sha256hex(JSON.stringify([docs.map((d) => [d.name, d.sha256]), signers.map((s) => [s.name, s.sha256])]));
    if (this.refCache?.key === key) return this.refCache;
    // The keys the cache key names, not a second read: a signer added and removed between two reads
    // would leave documents it alone signed active under the key of the set without it.
    const { keys } = await this.signers(signers);
    const verified: ReferenceDocument[] = [];
    const active = new Set<string>();
    if (keys.length > 0) {
      for (const d of docs) {
        try {
          verified.push(await verifyReferenceValues(d.jws, keys, d.name));
          active.add(d.sha256);
        } catch {
          // Withdrawn: its signer is no longer trusted.
        }
      }
    }
    this.refCache = { key, store: new ReferenceStore(verified), active };
    return this.refCache;
  }

  /** The pinned TPM AKs and AK roots, for the TPM verifier. */
  async tpmTrust(): Promise<{ pinnedAks: KeyObject[]; akRoots: TrustAnchor[] }> {
    const recs = (await this.b.store.listTrustedKeys()).filter((k) => k.purpose === 'tpm-ak' || k.purpose === 'tpm-ak-root');
    const key = sha256hex(JSON.stringify(recs.map((r) => [r.purpose, r.name, r.sha256])));
    if (this.tpmCache?.key === key) return this.tpmCache.value;
    const value = { pinnedAks: [] as KeyObject[], akRoots: [] as TrustAnchor[] };
    for (const r of recs) {
      try {
        const p = parseTrustedKey(r.purpose, r.pem);
        if (r.purpose === 'tpm-ak' && p.key) value.pinnedAks.push(p.key);
        if (r.purpose === 'tpm-ak-root' && p.cert) value.akRoots.push({ cert: p.cert, label: `tpm-ak-root ${r.name}` });
      } catch {
        // Unreadable: trusts nothing.
      }
    }
    this.tpmCache = { key, value };
    return value;
  }
}
