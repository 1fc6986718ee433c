import { readFileSync } from 'node:fs';
import { CofferError } from '../errors.js';
import { parseCertificates } from './certificate.js';
import type { TrustAnchor } from './chain.js';

/**
 * Vendor roots shipped in `src/pki/roots/`, each pinned by the SHA-256 of its DER. A file
 * whose hash differs from its pin is never trusted: loading it fails loudly (a tampered
 * checkout must not quietly change what Coffer trusts). Nothing else is a root unless a
 * caller passes its own anchors explicitly, as tests do with a generated test CA.
 */
export interface PinnedRoot {
  id: string;
  vendor: 'AMD' | 'Intel' | 'AWS';
  file: string;
  sha256: string;
  /** The product line this root certifies (for AMD: the ARK of one EPYC generation). */
  product: string;
}

export const PINNED_ROOTS: readonly PinnedRoot[] = [
  { id: 'amd-ark-milan', vendor: 'AMD', product: 'Milan', file: 'amd-ark-milan.pem', sha256: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd' },
  { id: 'amd-ark-genoa', vendor: 'AMD', product: 'Genoa', file: 'amd-ark-genoa.pem', sha256: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1' },
  { id: 'amd-ark-turin', vendor: 'AMD', product: 'Turin', file: 'amd-ark-turin.pem', sha256: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a' },
  { id: 'intel-sgx-root-ca', vendor: 'Intel', product: 'SGX/TDX', file: 'intel-sgx-root-ca.pem', sha256: '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3' },
  { id: 'aws-nitro-root-g1', vendor: 'AWS', product: 'Nitro Enclaves', file: 'aws-nitro-root-g1.pem', sha256: '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b' },
];

export interface ProductAnchor extends TrustAnchor {
  product: string;
}

const loaded = new Map<string, ProductAnchor>();

export function loadPinnedRoot(id: string): ProductAnchor {
  const hit = loaded.get(id);
  if (hit) return hit;
  const pin = PINNED_ROOTS.find((r) => r.id === id);
  if (!pin) throw new CofferError('PKI_UNKNOWN_ROOT', `no pinned root named ${id}`, { kind: 'input' });
  const url = new URL(`./roots/${pin.file}`, import.meta.url);
  let data: Buffer;
  try {
    data = readFileSync(url);
  } catch {
    throw new CofferError('PKI_ROOT_MISSING', `pinned root file ${url.pathname} is missing from this installation`);
  }
  const certs = parseCertificates(data, pin.file);
  const cert = certs[0];
  if (certs.length !== 1 || !cert || cert.sha256 !== pin.sha256) {
    throw new CofferError('PKI_ROOT_PIN_MISMATCH', `pinned root ${pin.file} does not match its SHA-256 pin ${pin.sha256}; refusing to trust it`);
  }
  const anchor: ProductAnchor = { cert, label: `${cert.subjectCn} (pinned)`, product: pin.product };
  loaded.set(id, anchor);
  return anchor;
}

/** The pinned AMD ARKs of every supported EPYC generation. */
export function amdRoots(): ProductAnchor[] {
  return PINNED_ROOTS.filter((r) => r.vendor === 'AMD').map((r) => loadPinnedRoot(r.id));
}
