import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { evaluate, formatTrustReport, trustReport, trustReportHtml, type TrustReport } from '../appraisal/index.js';
import { action, common, VERSION, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { collect } from './files.js';
import { loadPolicyFile, loadReferences } from './policy.js';
import { gatherDescribedEvidence, readEvidenceDescription } from './evidence-input.js';

type Format = 'text' | 'json' | 'html';

interface ExplainFlags {
  evidence: string;
  policy?: string;
  reference?: string[];
  referenceKey?: string[];
  at?: string;
  format?: string;
  out?: string;
  json?: boolean;
}

function formatOf(f: ExplainFlags): Format {
  const v = f.format ?? (f.json ? 'json' : 'text');
  if (v !== 'text' && v !== 'json' && v !== 'html') throw inputError('USAGE', `--format must be text, json or html, got "${v}"`);
  if (f.json && v !== 'json') throw inputError('USAGE', `--json conflicts with --format ${v}`);
  return v;
}

/** Builds the trust report a set of explain flags asks for (verification, then the policy if one is given). */
export async function explainReport(f: Pick<ExplainFlags, 'evidence' | 'policy' | 'reference' | 'referenceKey' | 'at'>): Promise<TrustReport> {
  if (!f.policy && ((f.reference ?? []).length > 0 || (f.referenceKey ?? []).length > 0)) {
    throw inputError('USAGE', '--reference and --reference-key are used by a policy: give --policy too');
  }
  const policy = f.policy ? loadPolicyFile(f.policy) : undefined;
  const refs = policy ? await loadReferences(f) : undefined;
  const desc = readEvidenceDescription(f.evidence);
  const g = gatherDescribedEvidence(f.evidence, desc, f.at);
  if (!policy || !refs) return trustReport({ claims: g.claims, at: g.at });
  return trustReport(evaluate(g.claims, policy, refs, { at: g.at, ...(g.nonce !== undefined ? { nonce: g.nonce } : {}) }));
}

function render(r: TrustReport, format: Format): string {
  if (format === 'json') return toJson(r);
  if (format === 'html') return trustReportHtml(r, { generator: `coffer ${VERSION}` });
  return formatTrustReport(r);
}

/** `coffer explain`: the trust report of one evidence description, for a terminal, a tool or an auditor. */
export function registerExplain(program: Command, ctx: CliContext): void {
  common(
    program
      .command('explain')
      .description('verify the evidence a description names (and appraise it with a policy, if given), then report which links of the chain are VERIFIED, ASSUMED, NOT CHECKED or FAILED and the residual risk of each threat')
      .requiredOption('--evidence <file>', 'evidence description (YAML or JSON), as for `coffer policy check`')
      .option('--policy <file>', 'policy (YAML or JSON); without it the links a policy decides are NOT CHECKED')
      .option('--reference <file>', 'signed reference values (JWS; repeatable; needs --policy)', collect)
      .option('--reference-key <file>', 'trusted reference-value signer key: PEM, JWK or JWKS (repeatable)', collect)
      .option('--at <iso8601>', "verification and appraisal time (default: the description's `at`, else now)")
      .option('--format <format>', 'text (default), json or html (one self-contained page)')
      .option('--out <file>', 'write the report to this file instead of standard output'),
  ).action(
    action(ctx, async (f: ExplainFlags) => {
      const format = formatOf(f);
      const report = await explainReport(f);
      const code = report.counts.failed > 0 || report.verdict === 'fail' ? EXIT_FAILED : EXIT_OK;
      const text = render(report, format);
      if (f.out) {
        try {
          writeFileSync(f.out, text.endsWith('\n') ? text : `${text}\n`);
        } catch {
          throw inputError('FILE_UNWRITABLE', `cannot write the trust report to ${f.out}`);
        }
        const c = report.counts;
        const line = `${format} trust report written to ${f.out}: ${c.verified} VERIFIED, ${c.assumed} ASSUMED, ${c['not-checked']} NOT CHECKED, ${c.failed} FAILED`;
        ctx.io.out(format === 'json' ? toJson({ ok: code === EXIT_OK, out: f.out, counts: c }) : line);
        return code;
      }
      ctx.io.out(text);
      return code;
    }),
  );
}
