import { Script, createContext, type Context as VmContext } from 'node:vm';
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import type { Claims } from '../evidence/claims-model.js';

/**
 * CEL expressions in policies: rules for what the fixed rules do not cover, evaluated over one
 * documented object, `claims` (celClaims below; docs/policy.md, "CEL expressions"). Each
 * expression is bounded three ways: its length, its shape (AST nodes, depth, nesting of
 * comprehension macros, literal sizes) when it is compiled, and its evaluation time.
 */

/** Longest expression accepted (characters). */
export const MAX_EXPRESSION_LENGTH = 2000;
/** Most expressions one policy may hold. */
export const MAX_EXPRESSIONS = 64;
/** Wall-clock bound on one evaluation; an expression that exceeds it fails its rule. */
export const EXPRESSION_TIMEOUT_MS = 1000;
/** Comprehension macros (all, exists, exists_one, map, filter) nested deeper than this are refused. */
export const MAX_COMPREHENSION_NESTING = 2;

const LIMITS = { maxAstNodes: 400, maxDepth: 32, maxListElements: 64, maxMapEntries: 32, maxCallArguments: 8 };
const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'existsOne', 'map', 'filter', 'transformList', 'transformMap', 'transformMapEntry']);

/** A CEL value as `claims` holds it: hex and text as strings, integers as CEL int (bigint). */
export type CelValue = string | bigint | number | boolean | null | CelValue[] | { [key: string]: CelValue };

/**
 * The object CEL expressions see as `claims`: the claims model as JSON (every byte string is
 * lowercase hex, integers are CEL `int`), with `verification` reduced to `evidence: [{kind,
 * label, verified}]` (individual checks are not a stable interface) and boot applications
 * without per-application authorities (their association with an application is not
 * authenticated; `boot.authorities` lists the authorities used). Absent claims are absent keys:
 * test them with `has(...)`. The field list is CLAIMS_SCHEMA.
 */
export function celClaims(c: Claims): { [key: string]: CelValue } {
  const json = {
    evidence: c.verification.map((v) => ({ kind: v.kind, label: v.label, verified: v.verified })),
    platforms: c.platforms,
    launch: c.launch,
    runtime: c.runtime,
    ...(c.boot ? { boot: { ...c.boot, bootApplications: c.boot.bootApplications.map((a) => ({ path: a.path, authenticode: a.authenticode })) } } : {}),
    workload: c.workload,
    freshness: c.freshness,
    debug: c.debug,
    signingKeys: c.signingKeys,
  };
  return JSON.parse(JSON.stringify(json), (_k, v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : v)) as { [key: string]: CelValue };
}

/** The shape of `claims`: a field map, `{ map: X }` for keys chosen by the evidence, `{ list: X }`, or a leaf type. */
type Shape = string | { fields: Record<string, Shape> } | { map: Shape } | { list: Shape };
const f = (fields: Record<string, Shape>): Shape => ({ fields });
const certs = f({ certificates: { list: f({ subject: 'string', sha256: 'string', issuer: 'string' }) }, hashes: { list: 'string' } });
const tcb = f({ components: { map: 'int' }, raw: 'string' });

/** Every field of `claims` an expression may name (docs/policy.md lists the same). */
export const CLAIMS_SCHEMA: Shape = f({
  evidence: { list: f({ kind: 'string', label: 'string', verified: 'bool' }) },
  platforms: { list: f({ tee: 'string', vendor: 'string', product: 'string', tcb: { map: tcb }, tcbStatus: 'string', firmware: 'string', chipId: 'string' }) },
  launch: f({
    snp: 'string',
    tdx: f({ mrtd: 'string', mrConfigId: 'string', mrOwner: 'string', mrOwnerConfig: 'string' }),
    sgx: f({ mrEnclave: 'string', mrSigner: 'string', isvProdId: 'int', isvSvn: 'int' }),
  }),
  runtime: f({ pcrs: { map: { map: 'string' } }, rtmrs: { map: 'string' } }),
  boot: f({
    source: 'string',
    secureBoot: 'bool',
    pk: certs,
    kek: certs,
    db: certs,
    dbx: certs,
    bootApplications: { list: f({ path: 'string', authenticode: { map: 'string' } }) },
    authorities: { list: f({ variable: 'string', subject: 'string', sha256: 'string' }) },
    kernelCommandLine: 'string',
    verity: f({ rootHash: 'string', usrHash: 'string', source: 'string' }),
    flags: { list: 'string' },
    notVerified: { list: 'string' },
  }),
  workload: f({
    hostData: 'string',
    mrConfigId: 'string',
    extendedDigest: 'string',
    snpIdBlock: f({ familyId: 'string', imageId: 'string', guestSvn: 'int', idKeyDigest: 'string', authorKeyDigest: 'string' }),
  }),
  freshness: f({ nonce: 'string', nonceVerified: 'bool', reportData: 'string', collectedAt: 'string' }),
  debug: f({ debug: 'bool', migration: 'bool' }),
  signingKeys: { list: f({ evidence: 'string', kind: 'string', subject: 'string', issuer: 'string', sha256: 'string', keySha256: 'string', tpmName: 'string', root: 'string', cspId: 'string' }) },
});

/** A compile error: what is wrong and where (a character offset into the expression). */
export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExpressionError';
  }
}

export interface CompiledExpression {
  source: string;
  /** The `claims.a.b` paths the expression names directly (for explaining what it found). */
  paths: string[][];
  run(claims: { [key: string]: CelValue }): unknown;
}

let env: Environment | undefined;
function environment(): Environment {
  env ??= new Environment({ limits: LIMITS, homogeneousAggregateLiterals: false }).registerVariable('claims', 'map');
  return env;
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).trim();
}

function isNode(x: unknown): x is ASTNode {
  return typeof x === 'object' && x !== null && 'op' in x && 'args' in x;
}

function children(args: unknown): ASTNode[] {
  if (isNode(args)) return [args];
  if (Array.isArray(args)) return args.flatMap(children);
  return [];
}

/** The path of a `claims.a.b` / `claims['a']` chain, or undefined when the node is not one. */
function pathOf(n: ASTNode): string[] | undefined {
  if (n.op === 'id') return n.args === 'claims' ? [] : undefined;
  if (n.op === '.' || n.op === '.?') {
    const base = pathOf(n.args[0]);
    return base && [...base, n.args[1]];
  }
  if (n.op === '[]' || n.op === '[?]') {
    const key = n.args[1];
    const base = pathOf(n.args[0]);
    if (!base) return undefined;
    if (key.op === 'value' && typeof key.args === 'string') return [...base, key.args];
    return undefined;
  }
  return undefined;
}

/** Checks a path against CLAIMS_SCHEMA; returns an error message or undefined. Lists end the check. */
function checkPath(path: readonly string[]): string | undefined {
  let shape: Shape = CLAIMS_SCHEMA;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] as string;
    const here = ['claims', ...path.slice(0, i)].join('.');
    if (typeof shape === 'string') return `${here} is a ${shape} and has no field "${seg}"`;
    if ('list' in shape) return undefined;
    if ('map' in shape) {
      shape = shape.map;
      continue;
    }
    const next: Shape | undefined = shape.fields[seg];
    if (next === undefined) return `${here} has no field "${seg}" (fields: ${Object.keys(shape.fields).join(', ')})`;
    shape = next;
  }
  return undefined;
}

/**
 * Compiles one expression: syntax, size and depth limits, a result that can be a boolean, the
 * nesting of comprehensions, and every `claims.…` field it names against CLAIMS_SCHEMA (a
 * misspelt field is an error here, not a rule that silently never matches). Throws
 * ExpressionError.
 */
export function compileExpression(source: string): CompiledExpression {
  if (source.length > MAX_EXPRESSION_LENGTH) throw new ExpressionError(`the expression is ${source.length} characters long, more than ${MAX_EXPRESSION_LENGTH}`, 0);
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = environment().parse(source);
  } catch (e) {
    const err = e as { message?: string; node?: { pos?: number } };
    throw new ExpressionError(`CEL syntax: ${firstLine(String(err.message ?? e))}`, err.node?.pos ?? 0);
  }
  const typed = parsed.check();
  if (!typed.valid) throw new ExpressionError(`CEL type error: ${firstLine(typed.error?.message ?? 'invalid')}`, typed.error?.node?.pos ?? 0);
  if (typed.type !== 'bool' && typed.type !== 'dyn') throw new ExpressionError(`the expression yields ${typed.type}, not a bool`, 0);

  const paths: string[][] = [];
  const seen = new Set<string>();
  const walk = (n: ASTNode, nesting: number): void => {
    let depth = nesting;
    if (n.op === 'rcall' && COMPREHENSIONS.has(n.args[0])) {
      depth++;
      if (depth > MAX_COMPREHENSION_NESTING) throw new ExpressionError(`comprehension macros (all, exists, exists_one, map, filter) are nested more than ${MAX_COMPREHENSION_NESTING} deep`, n.pos);
    }
    const p = pathOf(n);
    if (p !== undefined) {
      const bad = checkPath(p);
      if (bad) throw new ExpressionError(bad, n.pos);
      const key = p.join('\u0000');
      // Record only the longest chains: claims.boot.kernelCommandLine, not claims.boot as well.
      if (p.length > 0 && !seen.has(key)) {
        seen.add(key);
        paths.push(p);
      }
      // The chain's own sub-nodes are prefixes of it; index expressions inside still need a walk.
    }
    for (const c of children(n.args)) walk(c, depth);
  };
  walk(parsed.ast, 0);
  const longest = paths.filter((p) => !paths.some((q) => q.length > p.length && p.every((s, i) => q[i] === s)));
  return { source, paths: longest, run: (claims) => parsed({ claims }) };
}

let sandbox: VmContext | undefined;
let runner: Script | undefined;

export type ExpressionOutcome =
  | { status: 'true' | 'false' }
  | { status: 'absent'; message: string }
  | { status: 'error'; message: string };

/**
 * Runs a compiled expression with a time bound. CEL has no loops, but comprehensions over the
 * claims' lists multiply; node:vm's timeout interrupts the synchronous evaluation however deep it is.
 */
export function runExpression(c: CompiledExpression, claims: { [key: string]: CelValue }, timeoutMs = EXPRESSION_TIMEOUT_MS): ExpressionOutcome {
  sandbox ??= createContext({ run: undefined });
  runner ??= new Script('run()');
  try {
    sandbox.run = () => c.run(claims);
    const v: unknown = runner.runInContext(sandbox, { timeout: timeoutMs });
    if (v === true) return { status: 'true' };
    if (v === false) return { status: 'false' };
    return { status: 'error', message: `the expression yielded ${typeof v === 'bigint' ? `${v}` : JSON.stringify(v) ?? typeof v}, not a bool` };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return { status: 'error', message: `evaluation took longer than ${timeoutMs} ms and was stopped` };
    if (err.code === 'no_such_key') return { status: 'absent', message: firstLine(String(err.message ?? e)).replace(/^No such key/, 'the claims have no key') };
    return { status: 'error', message: firstLine(String(err.message ?? e)) };
  } finally {
    sandbox.run = undefined;
  }
}

/** The value at a path of `claims`, for an explanation (undefined when absent). */
export function valueAt(claims: { [key: string]: CelValue }, path: readonly string[]): CelValue | undefined {
  let v: CelValue | undefined = claims;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as { [key: string]: CelValue })[seg];
    if (v === undefined) return undefined;
  }
  return v;
}

/** A value in CEL-ish notation, shortened for one line. */
export function showValue(v: CelValue | undefined, max = 120): string {
  if (v === undefined) return 'absent';
  const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x)) ?? String(v);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
