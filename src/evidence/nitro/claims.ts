import { toHex } from '../../bytes/hex.js';
import type { NitroDocument } from './document.js';
import { isDebugEnclave } from './validate.js';

/** A Nitro document as plain values (binary as lowercase hex). */
export interface NitroClaims {
  flavour: 'enclave' | 'nitrotpm';
  moduleId: string;
  /** The instance the module runs on (the module id's "i-…" prefix). */
  instanceId: string | null;
  digest: string;
  timestamp: string;
  timestampMs: number;
  pcrs: Record<string, string>;
  debug: boolean;
  publicKey: string | null;
  userData: string | null;
  nonce: string | null;
  certificate: { subject: string; notBefore: string; notAfter: string } | null;
}

export function nitroClaims(doc: NitroDocument, leaf?: { subjectCn: string; notBefore: Date; notAfter: Date }): NitroClaims {
  const pcrs: Record<string, string> = {};
  for (const [i, v] of [...doc.pcrs].sort(([a], [b]) => a - b)) pcrs[String(i)] = toHex(v);
  return {
    flavour: doc.flavour,
    moduleId: doc.moduleId,
    instanceId: /^(i-[0-9a-f]+)-/.exec(doc.moduleId)?.[1] ?? null,
    digest: doc.digest,
    timestamp: new Date(doc.timestamp).toISOString(),
    timestampMs: doc.timestamp,
    pcrs,
    debug: isDebugEnclave(doc),
    publicKey: doc.publicKey ? toHex(doc.publicKey) : null,
    userData: doc.userData ? toHex(doc.userData) : null,
    nonce: doc.nonce ? toHex(doc.nonce) : null,
    certificate: leaf ? { subject: leaf.subjectCn, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString() } : null,
  };
}
