import type { KeyObject } from 'node:crypto';
import { inputError, isCofferError } from '../errors.js';
import { referenceValuesSchema, signReferenceValues, type ReferenceValues } from '../appraisal/reference.js';
import { authenticodeHash } from './pe.js';
import { predictPcr11, predictPcr4, predictPcr7, signatureData, type SecureBootState } from './pcr.js';
import { signatureDbEntries } from './esl.js';
import { verifyAuthenticode } from './authenticode.js';
import { ukiSections } from './uki.js';
import { snpLaunchMeasurement, type SnpMeasureOptions } from './snp-measure.js';
import { tdxMeasurement } from './tdx-measure.js';

/**
 * The reference values an image build publishes (docs/reference-values.md): everything Coffer
 * can predict from the build outputs, in the appraisal's own schema, signed with its function.
 */

export interface ReferenceInputs {
  image: { id: string; name?: string; version: string };
  issuedAt: Date;
  /** The (signed) UKI: its Authenticode digest, PCR 11, kernel command line, PCR 4 (and 7 with `secureBoot`). */
  uki?: Uint8Array;
  /** Phase words PCR 11 is predicted at (default: the whole boot, enter-initrd:leave-initrd:sysinit:ready). */
  pcr11Phase?: readonly string[];
  /** Authenticode digests of images the firmware starts before the UKI (shim, a boot loader): PCR 4. Default none: the firmware boots the UKI. */
  bootChain?: readonly Uint8Array[];
  /** Secure Boot variables and authorities: PCR 7. */
  secureBoot?: SecureBootState;
  /** OVMF builds: one SNP launch digest (and TDX MRTDs) each. */
  ovmf?: readonly { data: Uint8Array; snp?: SnpMeasureOptions; tdx?: boolean }[];
  verityRootHash?: string;
}

export interface ReferenceBuild {
  values: ReferenceValues;
  /** What could not be predicted, and why (for the CLI to say). */
  notes: string[];
}

const ROOTHASH = /(?:^|\s)(?:roothash|usrhash|systemd\.verity_root_hash)=([0-9a-fA-F]{64})(?:\s|$)/;

export function buildReferenceValues(inputs: ReferenceInputs): ReferenceBuild {
  const notes: string[] = [];
  const m: ReferenceValues['measurements'] = {};
  const pcrs: Record<string, string> = {};
  let appDigest: Buffer | undefined;
  if (inputs.uki) {
    appDigest = authenticodeHash(inputs.uki, 'sha256');
    m.ukiAuthenticode = [appDigest.toString('hex')];
    const s = ukiSections(inputs.uki);
    if (!s['.linux']) throw inputError('UKI_NO_KERNEL', 'the --uki image has no .linux section: it is not a UKI');
    pcrs['11'] = predictPcr11(s, { phase: inputs.pcr11Phase ?? ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'] }).toString('hex');
    const cmdline = s['.cmdline'];
    if (cmdline) {
      m.kernelCommandLine = cmdline.toString('utf8').replace(/\0+$/, '').trim();
      const root = ROOTHASH.exec(m.kernelCommandLine)?.[1];
      if (root) m.verityRootHash = root.toLowerCase();
    }
    pcrs['4'] = predictPcr4([...(inputs.bootChain ?? []), appDigest]).toString('hex');
    if (inputs.secureBoot) pcrs['7'] = predictPcr7(inputs.secureBoot).toString('hex');
    else notes.push('PCR 7 not predicted: give the Secure Boot variables (PK, KEK, db, dbx)');
  } else {
    notes.push('no UKI: no Authenticode digest, PCR 4 or PCR 11');
  }
  if (inputs.verityRootHash !== undefined) {
    if (m.verityRootHash !== undefined && m.verityRootHash !== inputs.verityRootHash.toLowerCase()) {
      throw inputError('REFERENCE_CONFLICT', `the verity root hash given (${inputs.verityRootHash}) differs from the one on the UKI command line (${m.verityRootHash})`);
    }
    m.verityRootHash = inputs.verityRootHash.toLowerCase();
  }
  const snp: string[] = [];
  const mrtd: string[] = [];
  for (const o of inputs.ovmf ?? []) {
    snp.push(snpLaunchMeasurement(o.data, o.snp ?? {}).measurement);
    if (o.tdx) {
      const t = tdxMeasurement(o.data);
      mrtd.push(t.mrtd.perPage, t.mrtd.sectionFirst);
    }
  }
  if (snp.length) m.snp = [...new Set(snp)];
  if (mrtd.length) m.tdx = { mrtd: [...new Set(mrtd)] };
  if (Object.keys(pcrs).length) m.pcrs = { sha256: pcrs };
  const values = referenceValuesSchema.parse({
    image: { id: inputs.image.id, ...(inputs.image.name !== undefined ? { name: inputs.image.name } : {}), version: inputs.image.version },
    issuedAt: inputs.issuedAt.toISOString(),
    measurements: m,
  });
  return { values, notes };
}

/** Builds and signs (JWS, ES384 or EdDSA) the reference values. */
export async function signedReferenceValues(inputs: ReferenceInputs, key: KeyObject, opts: { kid?: string } = {}): Promise<{ jws: string } & ReferenceBuild> {
  const built = buildReferenceValues(inputs);
  return { jws: await signReferenceValues(built.values, key, opts), ...built };
}

/**
 * The db entry firmware would log as the EV_EFI_VARIABLE_AUTHORITY for `image`: the first X.509
 * entry of `db` (an ESL) that a signature of the image verifies against, as EFI_SIGNATURE_DATA
 * (owner GUID || certificate). Undefined when no db certificate allows the image.
 */
export function dbAuthority(image: Uint8Array, db: Uint8Array): { data: Buffer; subject: string } | undefined {
  for (const e of signatureDbEntries(db).entries) {
    if (e.kind !== 'x509') continue;
    try {
      const r = verifyAuthenticode(image, { certificates: [e.certificate] });
      if (r.authorizedBy === 'signature') return { data: signatureData(e.owner, e.certificate.der), subject: e.certificate.subjectCn || e.certificate.subject };
    } catch (err) {
      if (!isCofferError(err)) throw err;
    }
  }
  return undefined;
}
