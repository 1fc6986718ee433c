import { posix, win32 } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { CofferError, inputError } from '../errors.js';
import type { Check } from '../check.js';
import { fromHex } from '../bytes/hex.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import { parseCrl } from '../pki/crl.js';
import type { TrustAnchor } from '../pki/chain.js';
import { decodeSnpEvidence, verifySnpReport, type SnpProduct } from '../evidence/snp/index.js';
import { TPM_GENERATED_VALUE, loadAttestationKey, mergePcrBanks, parsePcrFile, verifyTpmQuote, type PcrBanks } from '../evidence/tpm/index.js';
import { parseEventLog } from '../evidence/eventlog/index.js';
import type { Claims, TeeKind } from '../evidence/claims-model.js';
import { emptyClaims, mergeClaims } from './claims.js';
import { claimsFromSnp } from './from-snp.js';
import { claimsFromTpm, pcrsFromEventLog } from './from-tpm.js';

/**
 * An evidence description: a small YAML or JSON file naming the evidence files of one machine and
 * the parameters to verify them with, paths relative to the description. Used by
 * `coffer policy check --evidence` and by `coffer policy test` cases (which add `expect`).
 * Verification itself stays pure: file contents come through a reader the caller supplies.
 */

const paths = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));
const isoTime = z.iso.datetime({ offset: true }).or(z.iso.date());
const hexString = z.string().regex(/^(?:[0-9a-fA-F]{2})+$/, 'must be hex');

const snpItem = z.strictObject({
  kind: z.enum(['snp', 'sev-snp']),
  report: z.string().min(1),
  vcek: paths.optional(),
  chain: paths.optional(),
  crl: paths.optional(),
  product: z.enum(['Milan', 'Genoa', 'Turin']).optional(),
});

const tpmItem = z.strictObject({
  kind: z.literal('tpm'),
  quote: z.string().min(1),
  signature: z.string().min(1),
  ak: paths,
  akRoot: paths.optional(),
  akChain: paths.optional(),
  /** The nonce the quote must carry (hex). */
  nonce: hexString.optional(),
  /** Archived evidence only: do not check the quote's nonce. */
  skipNonceCheck: z.boolean().optional(),
  pcrs: paths.optional(),
  eventlog: z.string().min(1).optional(),
});

const item = z.discriminatedUnion('kind', [snpItem, tpmItem]);

const expectSchema = z.strictObject({
  verdict: z.enum(['pass', 'fail']),
  /** For a fail: the rule (or rules) that must be among the failed ones. */
  rule: paths.optional(),
});

const common = {
  description: z.string().optional(),
  /** Verification time for certificates and appraisal time (overridden by --at). */
  at: isoTime.optional(),
  /** When the evidence was collected (for a maximum evidence age). */
  collectedAt: isoTime.optional(),
  /** The verifier's nonce for the appraisal (defaults to the TPM item's nonce). */
  nonce: hexString.optional(),
  expect: expectSchema.optional(),
};

const descriptionSchema = z.strictObject({ ...common, evidence: z.array(item).min(1) });

export type EvidenceItem = z.output<typeof item>;
export interface EvidenceDescription {
  description?: string;
  at?: string;
  collectedAt?: string;
  nonce?: string;
  expect?: { verdict: 'pass' | 'fail'; rule?: string[] };
  evidence: EvidenceItem[];
}

const COMMON_KEYS = new Set(Object.keys(common));

/**
 * Parses a description (YAML or JSON). Either `evidence: [items]`, or one item's fields (with
 * `kind`) at the top level next to the common ones.
 */
export function parseEvidenceDescription(text: string, source = 'evidence description'): EvidenceDescription {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw inputError('EVIDENCE_DESCRIPTION_SYNTAX', `${source}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw inputError('EVIDENCE_DESCRIPTION_INVALID', `${source}: an evidence description is a mapping`);
  const obj = doc as Record<string, unknown>;
  let shaped: unknown = obj;
  if ('kind' in obj && !('evidence' in obj)) {
    const top: Record<string, unknown> = {};
    const one: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) (COMMON_KEYS.has(k) ? top : one)[k] = v;
    shaped = { ...top, evidence: [one] };
  }
  const r = descriptionSchema.safeParse(shaped);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i ? i.path.map(String).join('.') || '(top level)' : '';
    const what = i?.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : (i?.message ?? 'invalid');
    throw inputError('EVIDENCE_DESCRIPTION_INVALID', `${source}: ${where}: ${what}`);
  }
  return r.data as EvidenceDescription;
}

/** Reads a file the description names; `path` is already resolved against the description's folder. */
export type EvidenceReader = (path: string, what: string) => Uint8Array;

export interface GatheredEvidence {
  claims: Claims;
  /** The appraisal nonce (hex), when the description gives one. */
  nonce?: string;
}

function resolveIn(baseDir: string, p: string): string {
  const path = baseDir.includes('\\') && !baseDir.includes('/') ? win32 : posix;
  return path.isAbsolute(p) ? p : path.join(baseDir, p);
}

/** A TPMS_ATTEST as tpm2_quote -m writes it, or a TPM2B_ATTEST (u16 size first). */
function quoteBytes(data: Uint8Array): Buffer {
  const b = Buffer.from(data);
  if (b.length >= 6 && b.readUInt32BE(0) !== TPM_GENERATED_VALUE && b.readUInt16BE(0) === b.length - 2 && b.readUInt32BE(2) === TPM_GENERATED_VALUE) return b.subarray(2);
  return b;
}

function failedClaims(kind: TeeKind, label: string, e: CofferError): Claims {
  const out = emptyClaims();
  const checks = (e.details?.checks as Check[] | undefined) ?? [];
  out.verification.push({ kind, label, verified: false, checks: checks.length > 0 ? checks : [{ name: `${kind}.verify`, ok: false, code: e.code, description: e.message }], error: { code: e.code, message: e.message } });
  return out;
}

function snpClaimsOf(it: z.output<typeof snpItem>, read: (p: string, what: string) => Uint8Array, at: Date): Claims {
  const ev = decodeSnpEvidence(read(it.report, 'SNP report'));
  const certs: Certificate[] = [...ev.certificates];
  for (const p of [...(it.vcek ?? []), ...(it.chain ?? [])]) certs.push(...parseCertificates(read(p, 'certificate file'), p));
  const crls = (it.crl ?? []).map((p) => parseCrl(read(p, 'CRL file')));
  try {
    const v = verifySnpReport(ev.report, { at, certificates: certs, crls, ...(it.product ? { product: it.product as SnpProduct } : {}) });
    return claimsFromSnp(v);
  } catch (e) {
    if (e instanceof CofferError && e.kind === 'verify') return failedClaims('sev-snp', 'SEV-SNP report', e);
    throw e;
  }
}

function tpmClaimsOf(it: z.output<typeof tpmItem>, read: (p: string, what: string) => Uint8Array, at: Date): Claims {
  const quote = quoteBytes(read(it.quote, 'TPM quote'));
  const signature = read(it.signature, 'TPM quote signature');
  const ak = loadAttestationKey(it.ak.map((p) => ({ data: read(p, 'AK file'), what: p })));
  const akRoots: TrustAnchor[] = (it.akRoot ?? []).flatMap((p) => parseCertificates(read(p, 'AK root'), p).map((cert) => ({ cert, label: `${cert.subjectCn || cert.subject || 'root'} (from ${p})` })));
  const akIntermediates = (it.akChain ?? []).flatMap((p) => parseCertificates(read(p, 'AK chain'), p));
  const log = it.eventlog === undefined ? undefined : parseEventLog(read(it.eventlog, 'event log'), { kind: 'tpm' });
  let pcrs: PcrBanks | undefined = it.pcrs ? mergePcrBanks(it.pcrs.map((p) => parsePcrFile(read(p, 'PCR file'), p))) : undefined;
  // Without a PCR file the values come from the log: then the quote must cover the log (claimsFromTpm checks it).
  const pcrsFromLog = pcrs === undefined && log !== undefined;
  if (pcrsFromLog) pcrs = pcrsFromEventLog(log);
  if (it.nonce === undefined && !it.skipNonceCheck) throw inputError('TPM_NONCE_REQUIRED', 'the TPM evidence names no nonce: give `nonce` (or `skipNonceCheck: true` for archived evidence)');
  try {
    const v = verifyTpmQuote(quote, signature, {
      at,
      ak,
      ...(it.nonce !== undefined ? { nonce: fromHex(it.nonce, 'nonce') } : { skipNonceCheck: true }),
      ...(pcrs ? { pcrs } : {}),
      ...(akRoots.length > 0 ? { akRoots } : {}),
      akIntermediates,
    });
    return claimsFromTpm(v, log, { pcrsFromLog });
  } catch (e) {
    if (e instanceof CofferError && e.kind === 'verify') return failedClaims('tpm', 'TPM 2.0 quote', e);
    throw e;
  }
}

/**
 * Verifies every piece of evidence a description names and returns the combined claims. A
 * verification failure becomes claims whose verification entry failed (so the policy's
 * `evidence.verified` rule denies, and the failed checks stay visible); bad input throws.
 */
export function gatherEvidence(desc: EvidenceDescription, baseDir: string, read: EvidenceReader, at: Date): GatheredEvidence {
  const r = (p: string, what: string) => read(resolveIn(baseDir, p), what);
  // A TPM item without its own nonce is checked against the description's (the verifier's) nonce.
  const parts = desc.evidence.map((it) => (it.kind === 'tpm' ? tpmClaimsOf(it.nonce === undefined && desc.nonce !== undefined ? { ...it, nonce: desc.nonce } : it, r, at) : snpClaimsOf(it, r, at)));
  const claims = parts.length === 1 ? (parts[0] as Claims) : mergeClaims(parts);
  if (desc.collectedAt !== undefined) claims.freshness.collectedAt = new Date(desc.collectedAt).toISOString();
  const tpmNonce = desc.evidence.find((e): e is z.output<typeof tpmItem> => e.kind === 'tpm' && e.nonce !== undefined)?.nonce;
  const nonce = (desc.nonce ?? tpmNonce)?.toLowerCase();
  return { claims, ...(nonce !== undefined ? { nonce } : {}) };
}
