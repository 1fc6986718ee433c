// Shared by the appraisal tests: the real vectors, the example policy and case folder, and a
// loader that verifies the evidence a description names (the same path the CLI takes).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatherEvidence, parseEvidenceDescription, parsePolicy, type Claims, type EvidenceDescription, type Policy } from '../../src/appraisal/index.js';

export const HERE = fileURLToPath(new URL('.', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const VECTORS = join(REPO, '../shared/vectors');
export const CASES = join(HERE, 'cases');
export const POLICY_FILE = join(HERE, 'policy.yaml');
export const AT = new Date('2025-06-01T00:00:00Z');

export const MEASUREMENT_MILAN = 'a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c';
export const MEASUREMENT_GENOA_E2E = '6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e';
export const MEASUREMENT_GO_SEV_GUEST = 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';
/** Google's COS "UEFI DB Key v10", the db certificate of the GCE COS 85 event log. */
export const GOOGLE_DB_SHA256 = 'a7b8c851deb2acba7c7d0e6ec091c93440f942c65d776fdcb58016f8fd1674b0';
/** root_hexdigest= of the COS 85 kernel command line (its dm-verity root). */
export const COS_VERITY_ROOT = '795872ee03859c10dfcc4d67b4b96c85094b340c2d8784783abc2fa12a6ed671';

export function examplePolicy(): Policy {
  return parsePolicy(readFileSync(POLICY_FILE, 'utf8'), POLICY_FILE);
}

export function caseFile(name: string): string {
  return join(CASES, name, 'case.yaml');
}

export function description(name: string): EvidenceDescription {
  const f = caseFile(name);
  return parseEvidenceDescription(readFileSync(f, 'utf8'), f);
}

/** Verifies the evidence of a case folder and returns its claims (and nonce). */
export function caseClaims(name: string, at = AT): { claims: Claims; nonce?: string } {
  return gatherEvidence(description(name), dirname(caseFile(name)), (p) => readFileSync(p), at);
}
