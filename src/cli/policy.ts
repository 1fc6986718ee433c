import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import {
  AR4SI_CATEGORIES,
  ReferenceStore,
  evaluate,
  generateEarSigningKey,
  issueEar,
  loadEarSigningKey,
  parsePolicy,
  parseTrustedKeys,
  unchecked,
  type AppraisalResult,
  type EvidenceDescription,
  type Policy,
  type RuleOutcome,
  type TrustVector,
} from '../appraisal/index.js';
import { action, common, VERSION, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { readInput, isDirectory, collect } from './files.js';
import { readEvidenceDescription, gatherDescribedEvidence } from './evidence-input.js';

interface ReferenceFlags {
  reference?: string[];
  referenceKey?: string[];
}

interface CheckFlags extends ReferenceFlags {
  policy: string;
  evidence: string;
  at?: string;
  nonce?: string;
  signKey?: string;
  newKey?: boolean;
  out?: string;
  submod?: string;
  json?: boolean;
}

interface TestFlags extends ReferenceFlags {
  policy: string;
  cases: string;
  at?: string;
  json?: boolean;
}

export function loadPolicyFile(path: string): Policy {
  return parsePolicy(readInput(path, 'policy file').toString('utf8'), path);
}

/** Reference-value documents, each verified with the trusted signer keys. */
export async function loadReferences(f: ReferenceFlags): Promise<ReferenceStore> {
  const docs = (f.reference ?? []).map((p) => ({ jws: readInput(p, 'reference-value file').toString('utf8'), source: p }));
  if (docs.length === 0) return new ReferenceStore();
  const keys = (f.referenceKey ?? []).flatMap((p) => parseTrustedKeys(readInput(p, 'reference signer key'), p));
  if (keys.length === 0) throw inputError('REFERENCE_NO_TRUSTED_KEY', '--reference needs --reference-key: reference values are used only when their signature is checked against a key you trust');
  return ReferenceStore.load(docs, keys);
}

/** Appraises one description file: verify its evidence, evaluate the policy. */
export function appraiseDescription(path: string, desc: EvidenceDescription, policy: Policy, refs: ReferenceStore, atFlag: string | undefined, nonceFlag?: string): AppraisalResult {
  const gathered = gatherDescribedEvidence(path, desc, atFlag);
  const at = gathered.at;
  const nonce = nonceFlag ?? gathered.nonce;
  return evaluate(gathered.claims, policy, refs, { at, ...(nonce !== undefined ? { nonce } : {}) });
}

const MARK: Readonly<Record<RuleOutcome['status'], string>> = { pass: 'pass', fail: 'FAIL', 'not-applicable': 'n/a ' };

function vectorText(v: TrustVector): string {
  const parts = AR4SI_CATEGORIES.filter((c) => v[c] !== undefined).map((c) => `${c}=${v[c]}`);
  return parts.length > 0 ? parts.join(' ') : '(no claim)';
}

export function formatResult(r: AppraisalResult): string {
  const head = r.verdict === 'pass' ? `PASS  policy ${r.policy.id}@${r.policy.version}: EAR status ${r.status}` : `DENIED  policy ${r.policy.id}@${r.policy.version}: EAR status ${r.status}\n  ${r.denial ?? ''}`;
  const width = Math.max(12, ...r.rules.map((x) => x.id.length));
  const rules = r.rules.map((x) => {
    const detail = x.status === 'fail' || x.expected === undefined ? (x.status === 'fail' ? ` (expected ${x.expected ?? '-'}, found ${x.found ?? '-'})` : '') : '';
    return `  ${MARK[x.status]} ${x.id.padEnd(width)} ${x.description}${detail}`;
  });
  const evidence = r.verification.map((v) => `  evidence: ${v.label}: ${v.verified ? 'verified' : `NOT VERIFIED (${v.error?.code ?? 'FAILED'})`}`);
  const nc = unchecked(r).map((u) => `  NOT CHECKED: ${u.check} (${u.evidence})`);
  return [head, ...evidence, ...rules, `  trustworthiness: ${vectorText(r.trustworthiness)}`, ...nc].join('\n');
}

async function signingKey(f: CheckFlags, io: CliContext['io']) {
  if (!f.signKey) {
    if (f.out) throw inputError('USAGE', '--out needs --sign-key: the result is written as a signed EAR token');
    if (f.newKey) throw inputError('USAGE', '--new-key needs --sign-key FILE to save the key to');
    return undefined;
  }
  if (existsSync(f.signKey)) {
    if (f.newKey) throw inputError('USAGE', `--new-key: ${f.signKey} already exists; it is never overwritten`);
    return loadEarSigningKey(readInput(f.signKey, 'EAR signing key'), f.signKey);
  }
  if (!f.newKey) throw inputError('FILE_UNREADABLE', `EAR signing key ${f.signKey} does not exist (add --new-key to generate one there)`);
  const { privateKey, pem } = generateEarSigningKey();
  try {
    writeFileSync(f.signKey, pem, { mode: 0o600, flag: 'wx' });
  } catch {
    throw inputError('FILE_UNWRITABLE', `cannot write the new signing key to ${f.signKey}`);
  }
  if (!f.json) io.err(`coffer: generated a new ES384 signing key in ${f.signKey} (mode 0600); publish its JWKS with \`coffer result jwks --key ${f.signKey}\``);
  return privateKey;
}

interface CaseOutcome {
  name: string;
  expected: string;
  got: string;
  ok: boolean;
  failed: string[];
  denial?: string;
  error?: { code: string; message: string };
}

const DESCRIPTION_FILES = ['case.yaml', 'case.yml', 'case.json', 'evidence.yaml', 'evidence.yml', 'evidence.json'];

/** The case files of a folder: sub-folders holding case.yaml (or evidence.yaml, .yml, .json), and .yaml/.yml/.json files. */
export function listCases(dir: string): { name: string; path: string }[] {
  if (!isDirectory(dir)) throw inputError('FILE_UNREADABLE', `--cases ${dir} is not a directory`);
  const out: { name: string; path: string }[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (isDirectory(p)) {
      const file = DESCRIPTION_FILES.map((f) => join(p, f)).find((f) => existsSync(f));
      if (file) out.push({ name, path: file });
    } else if (/\.(ya?ml|json)$/i.test(name)) {
      out.push({ name: name.replace(/\.(ya?ml|json)$/i, ''), path: p });
    }
  }
  if (out.length === 0) throw inputError('POLICY_NO_CASES', `${dir} holds no cases (folders with case.yaml, or .yaml/.json files)`);
  return out;
}

function runCase(c: { name: string; path: string }, policy: Policy, refs: ReferenceStore, at: string | undefined): CaseOutcome {
  let desc: EvidenceDescription;
  try {
    desc = readEvidenceDescription(c.path);
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    return { name: c.name, expected: '?', got: `error ${e.code}`, ok: false, failed: [], error: { code: e.code, message: e.message } };
  }
  const exp = desc.expect;
  const expected = exp ? `${exp.verdict}${exp.rule ? ` (${exp.rule.join(', ')})` : ''}` : '(no expect)';
  try {
    const r = appraiseDescription(c.path, desc, policy, refs, at);
    const failed = r.rules.filter((x) => x.status === 'fail').map((x) => x.id);
    const got = `${r.verdict}${failed.length > 0 ? ` (${failed.join(', ')})` : ''}`;
    const ok = exp !== undefined && exp.verdict === r.verdict && (exp.rule ?? []).every((id) => failed.includes(id));
    return { name: c.name, expected, got, ok, failed, ...(r.denial ? { denial: r.denial } : {}) };
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
    return { name: c.name, expected, got: `error ${e.code}`, ok: false, failed: [], error: { code: e.code, message: e.message } };
  }
}

function table(rows: CaseOutcome[]): string {
  const head = ['CASE', 'EXPECTED', 'GOT', 'RESULT'];
  const cells = rows.map((r) => [r.name, r.expected, r.got, r.ok ? 'ok' : 'DIFFERS']);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(w[i] as number))).join('  ');
  const errors = rows.filter((r) => r.error).map((r) => `  ${r.name}: ${r.error?.code}: ${r.error?.message}`);
  return [line(head), ...cells.map(line), ...(errors.length > 0 ? ['errors:', ...errors] : [])].join('\n');
}

/** `coffer policy check|test`. */
export function registerPolicy(program: Command, ctx: CliContext): void {
  const policy = program.command('policy').description('appraise verified evidence against a policy');

  common(
    policy
      .command('check')
      .description('verify the evidence a description names, then evaluate a policy over its claims; optionally sign the result as an EAR token')
      .requiredOption('--policy <file>', 'policy (YAML or JSON)')
      .requiredOption('--evidence <file>', 'evidence description (YAML or JSON) naming the evidence files, paths relative to it')
      .option('--reference <file>', 'signed reference values (JWS; repeatable)', collect)
      .option('--reference-key <file>', 'trusted reference-value signer key: PEM, JWK or JWKS (repeatable)', collect)
      .option('--at <iso8601>', 'verification and appraisal time (default: the description\'s `at`, else now)')
      .option('--nonce <hex>', "the verifier's nonce (default: the description's)")
      .option('--sign-key <file>', 'ES384 key (PEM or JWK) to sign the result as an EAR JWT')
      .option('--new-key', 'generate the --sign-key file (mode 0600) when it does not exist')
      .option('--out <file>', 'write the signed EAR token here')
      .option('--submod <name>', 'EAR submodule label (default "cvm")'),
  ).action(
    action(ctx, async (f: CheckFlags) => {
      if (f.nonce !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(f.nonce)) throw inputError('BAD_HEX', '--nonce must be hex');
      const pol = loadPolicyFile(f.policy);
      const refs = await loadReferences(f);
      const key = await signingKey(f, ctx.io);
      const desc = readEvidenceDescription(f.evidence);
      const result = appraiseDescription(f.evidence, desc, pol, refs, f.at, f.nonce?.toLowerCase());
      let token: string | undefined;
      if (key) {
        token = await issueEar(result, key, { verifierId: { developer: 'coffer', build: `coffer ${VERSION}` }, ...(f.submod ? { submod: f.submod } : {}) });
        if (f.out) {
          try {
            writeFileSync(f.out, `${token}\n`);
          } catch {
            throw inputError('FILE_UNWRITABLE', `cannot write the EAR token to ${f.out}`);
          }
        }
      }
      const code = result.verdict === 'pass' ? EXIT_OK : EXIT_FAILED;
      if (f.json) {
        ctx.io.out(toJson({ ok: result.verdict === 'pass', ...result, ...(token && !f.out ? { token } : {}), ...(result.denial ? { error: { code: 'POLICY_DENIED', message: result.denial } } : {}) }));
        return code;
      }
      ctx.io.out(formatResult(result) + (token && !f.out ? `\n${token}` : token ? `\n  EAR token written to ${f.out}` : ''));
      return code;
    }),
  );

  common(
    policy
      .command('test')
      .description('run a policy over a folder of cases (evidence descriptions with expected verdicts); exit 1 if any verdict differs')
      .requiredOption('--policy <file>', 'policy (YAML or JSON)')
      .requiredOption('--cases <dir>', 'folder of cases: sub-folders with case.yaml, or .yaml/.json files, each with `expect: {verdict, rule}`')
      .option('--reference <file>', 'signed reference values (JWS; repeatable)', collect)
      .option('--reference-key <file>', 'trusted reference-value signer key (repeatable)', collect)
      .option('--at <iso8601>', "appraisal time for every case (default: each case's `at`)"),
  ).action(
    action(ctx, async (f: TestFlags) => {
      const pol = loadPolicyFile(f.policy);
      const refs = await loadReferences(f);
      const cases = listCases(f.cases);
      const rows = cases.map((c) => runCase(c, pol, refs, f.at));
      const differ = rows.filter((r) => !r.ok).length;
      if (f.json) ctx.io.out(toJson({ ok: differ === 0, policy: { id: pol.id, version: pol.version }, cases: rows }));
      else ctx.io.out(`${table(rows)}\n${rows.length} case(s): ${rows.length - differ} as expected, ${differ} differ`);
      return differ === 0 ? EXIT_OK : EXIT_FAILED;
    }),
  );
}
