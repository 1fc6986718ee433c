import * as asn1js from 'asn1js';
import { fromBerSafe } from '../../pki/ber.js';
import { inputError } from '../../errors.js';
import type { Certificate } from '../../pki/certificate.js';
import { verifyChain, type TrustAnchor, type VerifiedChain } from '../../pki/chain.js';

/** Google's "GCE instance information" certificate extension on vTPM EK and AK certificates. */
export const GCE_INSTANCE_INFO_OID = '1.3.6.1.4.1.11129.2.1.21';

export interface GceInstanceInfo {
  zone: string;
  projectNumber: string;
  projectId: string;
  instanceId: string;
  instanceName: string;
  /** Security properties ([0] of the extension), when present: context tag → value. */
  securityProperties: Record<string, string | boolean> | undefined;
}

function bad(why: string): never {
  throw inputError('GCP_BAD_INSTANCE_INFO', `GCE instance-info extension: ${why}`);
}

function text(v: asn1js.AsnType | undefined, what: string): string {
  if (v instanceof asn1js.Utf8String || v instanceof asn1js.PrintableString || v instanceof asn1js.IA5String) return v.valueBlock.value;
  return bad(`${what} is not a string`);
}

function int(v: asn1js.AsnType | undefined, what: string): string {
  if (!(v instanceof asn1js.Integer)) bad(`${what} is not an INTEGER`);
  return v.toBigInt().toString();
}

/** The instance (zone, project, id, name) a GCE vTPM certificate was issued for, if it says. */
export function gceInstanceInfo(cert: Certificate): GceInstanceInfo | undefined {
  const ext = cert.extension(GCE_INSTANCE_INFO_OID);
  if (!ext) return undefined;
  const parsed = fromBerSafe(new Uint8Array(ext));
  if (parsed.offset !== ext.length || !(parsed.result instanceof asn1js.Sequence)) bad('is not a DER SEQUENCE');
  const [zone, projectNumber, projectId, instanceId, instanceName, props] = parsed.result.valueBlock.value;
  let securityProperties: GceInstanceInfo['securityProperties'];
  if (props !== undefined) {
    securityProperties = {};
    const inner = (props as asn1js.Constructed).valueBlock?.value?.[0];
    const items = inner instanceof asn1js.Sequence ? inner.valueBlock.value : [];
    const names: Record<number, string> = { 0: 'securityVersion', 1: 'isProduction' };
    for (const it of items) {
      const tag = it.idBlock.tagNumber;
      const v = (it as asn1js.Constructed).valueBlock?.value?.[0] ?? it;
      const name = names[tag] ?? `tag${tag}`;
      if (v instanceof asn1js.Boolean) securityProperties[name] = v.getValue();
      else if (v instanceof asn1js.Integer) securityProperties[name] = v.toBigInt().toString();
      else securityProperties[name] = Buffer.from(it.toBER()).toString('hex');
    }
  }
  return {
    zone: text(zone, 'zone'),
    projectNumber: int(projectNumber, 'project number'),
    projectId: text(projectId, 'project id'),
    instanceId: int(instanceId, 'instance id'),
    instanceName: text(instanceName, 'instance name'),
    securityProperties,
  };
}

export interface GceCertificateVerified {
  chain: VerifiedChain;
  /** Subject CN of the intermediate that issued the certificate ('' when the root did). */
  intermediate: string;
  root: string;
  instance: GceInstanceInfo | undefined;
}

/**
 * Chains a GCE vTPM EK or AK certificate to one of the caller's Google roots (Coffer pins no
 * Google root: GCE's vTPM is operated by the cloud and taken on its word) and reads its instance
 * information.
 */
export function verifyGceCertificate(cert: Certificate, opts: { at: Date; roots: readonly TrustAnchor[]; intermediates: readonly Certificate[] }): GceCertificateVerified {
  if (opts.roots.length === 0) throw inputError('GCP_ROOT_REQUIRED', 'no Google EK/AK root was given; Coffer trusts no vTPM root by default');
  const chain = verifyChain(cert, opts.intermediates, opts.roots, { at: opts.at });
  const mid = chain.path.length > 2 ? chain.path[1] : undefined;
  return { chain, intermediate: mid ? mid.subjectCn : '', root: chain.anchor.cert.subjectCn, instance: gceInstanceInfo(cert) };
}
