import { z } from 'zod';
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Document, type Node as YamlNode } from 'yaml';
import { inputError } from '../errors.js';
import { TEE_KINDS } from '../evidence/claims-model.js';
import { AR4SI_CATEGORIES } from './ar4si.js';
import { ExpressionError, MAX_EXPRESSIONS, MAX_EXPRESSION_LENGTH, compileExpression } from './expressions.js';

/**
 * An appraisal policy: expectations over the common claims model, written once for every kind of
 * evidence. YAML or JSON (JSON is YAML), validated by a strict schema: an unknown or misspelt
 * field is an error that names its line and column, never silently ignored. Format: docs/policy.md.
 */

const hex = (bytes?: number) =>
  z
    .string()
    .regex(/^[0-9a-fA-F]+$/, 'must be a hex string (quote it in YAML if it is all digits)')
    .refine((s) => s.length % 2 === 0, 'must have an even number of hex digits')
    .refine((s) => bytes === undefined || s.length === bytes * 2, `must be ${bytes ?? 0} bytes (${(bytes ?? 0) * 2} hex digits)`)
    .transform((s) => s.toLowerCase());

const imageRef = z.string().min(1, 'must name an image id');
const tcbMinimum = z.record(z.string().regex(/^[a-z][a-zA-Z0-9_-]*$/, 'must be a TCB component name'), z.number().int().min(0).max(0xffff));
const pcrBank = z.record(z.string().regex(/^(0|[1-9]\d?)$/, 'must be a PCR index 0-31').refine((s) => Number(s) <= 31, 'must be a PCR index 0-31'), hex());
const evidenceKind = z.enum(['eventlog', ...TEE_KINDS] as [string, ...string[]]);

const duration = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+\s*(s|m|h|d)$/, 'must be a duration such as 300s, 5m, 1h or 2d'),
]);

/**
 * A TPM attestation key: SHA-256 of its SubjectPublicKeyInfo DER (64 hex digits), or its TPM name
 * (nameAlg || digest: 000b + SHA-256, 000c + SHA-384, 000d + SHA-512).
 */
export const tpmAkId = z
  .string()
  .transform((s) => s.toLowerCase())
  .refine((s) => /^([0-9a-f]{64}|000b[0-9a-f]{64}|000c[0-9a-f]{96}|000d[0-9a-f]{128})$/.test(s), 'must be the SHA-256 of the AK public key (SubjectPublicKeyInfo DER, 64 hex digits) or its TPM name (000b + 64 hex digits)');

const certMatch = z
  .strictObject({ subject: z.string().min(1).optional(), sha256: hex(32).optional() })
  .refine((c) => c.subject !== undefined || c.sha256 !== undefined, 'give the certificate subject (CN or DN) or its sha256');

export const policySchema = z.strictObject({
  id: z.string().min(1).regex(/^[A-Za-z0-9._:/-]+$/, 'must be letters, digits and . _ : / -'),
  version: z.union([z.string().min(1), z.number().int().nonnegative()]).transform((v) => String(v)),
  description: z.string().optional(),
  evidence: z
    .strictObject({
      /** Kinds of evidence this policy appraises; any other kind is refused. */
      accepted: z.array(evidenceKind).min(1).optional(),
      /** Kinds that must be present (`eventlog`: a boot log checked against verified registers). */
      required: z.array(evidenceKind).min(1).optional(),
    })
    .optional(),
  measurements: z
    .strictObject({
      snp: z.array(hex(48)).min(1).optional(),
      tdx: z.array(hex(48)).min(1).optional(),
      /** The launch measurement must be one of the signed reference values of these images. */
      reference: z.union([imageRef, z.array(imageRef).min(1)]).optional(),
    })
    .optional(),
  tcb: z.partialRecord(z.enum(TEE_KINDS as [string, ...string[]]), z.record(z.string().min(1), tcbMinimum)).optional(),
  secureBoot: z
    .strictObject({
      required: z.boolean(),
      /** Certificates that must each be in db. */
      db: z.array(certMatch).min(1).optional(),
    })
    .optional(),
  bootApplications: z
    .strictObject({
      /** Accepted Authenticode digests (SHA-256) of every boot application (a UKI, say). */
      authenticode: z.array(hex(32)).min(1).optional(),
      reference: imageRef.optional(),
    })
    .optional(),
  pcrs: z
    .strictObject({
      sha1: pcrBank.optional(),
      sha256: pcrBank.optional(),
      sha384: pcrBank.optional(),
      sha512: pcrBank.optional(),
      reference: imageRef.optional(),
    })
    .optional(),
  /** The TPM quote must be signed by one of these attestation keys (rule `tpm.ak`). */
  tpm: z.strictObject({ ak: z.array(tpmAkId).min(1) }).optional(),
  rtmrs: z
    .strictObject({ '0': hex(48).optional(), '1': hex(48).optional(), '2': hex(48).optional(), '3': hex(48).optional(), reference: imageRef.optional() })
    .optional(),
  kernel: z
    .strictObject({
      commandLine: z.string().optional(),
      commandLineContains: z.array(z.string().min(1)).min(1).optional(),
      verityRootHash: hex().optional(),
      /** Command line and verity root hash from the signed reference values of this image. */
      reference: imageRef.optional(),
    })
    .optional(),
  // 32 bytes (SHA-256, SNP HOST_DATA) or 48 (SHA-384, TDX MRCONFIGID): a shorter value would match a launcher-chosen prefix followed by zeros.
  workload: z.strictObject({ digest: z.array(hex().refine((s) => s.length === 64 || s.length === 96, 'must be a SHA-256 (64 hex digits) or SHA-384 (96 hex digits) digest')).min(1) }).optional(),
  freshness: z
    .strictObject({
      /** The evidence must be bound to the verifier's nonce (TPM extraData, or REPORT_DATA = nonce zero-padded). */
      nonce: z.enum(['required', 'optional']).optional(),
      maxAge: duration.optional(),
    })
    .optional(),
  /** CEL expressions over `claims` (docs/policy.md): each is the rule `expression.<id>`. */
  expressions: z
    .array(
      z.strictObject({
        id: z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/, 'must be letters, digits and . _ -').max(64),
        expr: z.string().min(1).max(MAX_EXPRESSION_LENGTH, `must be at most ${MAX_EXPRESSION_LENGTH} characters`),
        description: z.string().optional(),
        /** What an expression that reaches an absent claim yields: fail (default) or not-applicable. */
        absent: z.enum(['fail', 'not-applicable']).default('fail'),
        /** The AR4SI category a pass (2) or a fail (96) speaks to. */
        category: z.enum(AR4SI_CATEGORIES as [string, ...string[]]).default('configuration'),
      }),
    )
    .min(1)
    .max(MAX_EXPRESSIONS, `at most ${MAX_EXPRESSIONS} expressions`)
    .optional(),
  debug: z.enum(['forbidden', 'allowed']).default('forbidden'),
  migration: z.enum(['forbidden', 'allowed']).default('forbidden'),
});

export type Policy = z.output<typeof policySchema>;

export interface PolicyPosition {
  line: number;
  column: number;
}

/** Resolves a path of keys/indices to a node of the YAML document; `key` selects the key of the last pair. */
function nodeAt(doc: Document, path: readonly PropertyKey[], key?: string): YamlNode | undefined {
  let node: unknown = doc.contents;
  const segs = key === undefined ? path : [...path, key];
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return node as YamlNode;
      if (last && key !== undefined) return pair.key as YamlNode;
      node = pair.value ?? pair.key;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) return node as YamlNode;
      node = item;
    } else {
      return node as YamlNode | undefined;
    }
  }
  return node as YamlNode | undefined;
}

function positionOf(doc: Document, lc: LineCounter, path: readonly PropertyKey[], key?: string): PolicyPosition {
  const node = nodeAt(doc, path, key);
  const offset = node?.range?.[0] ?? 0;
  const p = lc.linePos(offset);
  return { line: p.line, column: p.col };
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(top level)';
}

/**
 * Parses and validates a policy (YAML or JSON text). Every problem is a CofferError
 * POLICY_INVALID (exit 2) whose message starts with `file:line:column:` and names the field;
 * `details.errors` lists all of them.
 */
export function parsePolicy(text: string, source = 'policy'): Policy {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e?.linePos?.[0];
    const where = pos ? `${source}:${pos.line}:${pos.col}` : source;
    throw inputError('POLICY_SYNTAX', `${where}: ${(e?.message.split('\n')[0] ?? 'not valid YAML or JSON').replace(/ at line \d+, column \d+:?$/, '')}`, { line: pos?.line, column: pos?.col });
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw inputError('POLICY_INVALID', `${source}:1:1: a policy is a mapping with at least id and version`);
  const r = policySchema.safeParse(value);
  if (r.success) {
    checkExpressions(r.data, doc, lc, text, source);
    return r.data;
  }
  const errors = r.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ ...positionOf(doc, lc, issue.path, k), field: dotted([...issue.path, k]), message: 'unknown field' }));
    }
    const missing = issue.code === 'invalid_type' && issue.message.includes('received undefined');
    return [{ ...positionOf(doc, lc, issue.path), field: dotted(issue.path), message: missing ? 'required field is missing' : issue.message }];
  });
  errors.sort((a, b) => a.line - b.line || a.column - b.column);
  const first = errors[0] as (typeof errors)[number];
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : '';
  throw inputError('POLICY_INVALID', `${source}:${first.line}:${first.column}: ${first.field}: ${first.message}${more}`, { errors });
}

/**
 * Compiles every CEL expression of a parsed policy. A duplicate id or an expression that does not
 * compile is POLICY_INVALID at its line and column (the exact character, where the YAML scalar
 * holds the expression verbatim on one line).
 */
function checkExpressions(p: Policy, doc: Document, lc: LineCounter, text: string, source: string): void {
  const ids = new Set<string>();
  (p.expressions ?? []).forEach((x, i) => {
    const path = ['expressions', i];
    if (ids.has(x.id)) {
      const pos = positionOf(doc, lc, [...path, 'id']);
      throw inputError('POLICY_INVALID', `${source}:${pos.line}:${pos.column}: expressions.${i}.id: "${x.id}" is used twice`, { errors: [{ ...pos, field: `expressions.${i}.id`, message: 'duplicate id' }] });
    }
    ids.add(x.id);
    try {
      compileExpression(x.expr);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
      const node = nodeAt(doc, [...path, 'expr']);
      const start = node?.range?.[0] ?? 0;
      const end = node?.range?.[1] ?? start;
      const raw = text.slice(start, end);
      // Plain, or quoted without escapes, on one line: the source holds the expression verbatim.
      const lead = raw === x.expr ? 0 : raw === `"${x.expr}"` || raw === `'${x.expr}'` ? 1 : -1;
      const at = lc.linePos(lead >= 0 && !x.expr.includes('\n') ? start + lead + Math.min(e.offset, x.expr.length) : start);
      const field = `expressions.${i}.expr`;
      throw inputError('POLICY_INVALID', `${source}:${at.line}:${at.col}: ${field} (${x.id}): ${e.message}`, { errors: [{ line: at.line, column: at.col, field, message: e.message }], offset: e.offset });
    }
  });
}

/** Maximum evidence age in seconds. */
export function maxAgeSeconds(p: Policy): number | undefined {
  const v = p.freshness?.maxAge;
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*([smhd])$/.exec(v);
  const n = Number(m?.[1]);
  return n * ({ s: 1, m: 60, h: 3600, d: 86400 } as const)[(m?.[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}
