import { RULES, type Finding, type Severity } from './rules.js';

/**
 * Findings as SARIF 2.1.0 (OASIS), the format code-scanning services ingest: one run, the rule
 * catalogue in tool.driver.rules, one result per finding with its physical location.
 */

const LEVEL: Readonly<Record<Severity, 'note' | 'warning' | 'error'>> = { low: 'note', medium: 'warning', high: 'error', critical: 'error' };
// GitHub's security-severity scale (0-10) so that severities sort the same way there.
const SCORE: Readonly<Record<Severity, string>> = { low: '3.0', medium: '5.5', high: '8.0', critical: '9.5' };

export const SARIF_SCHEMA = 'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json';

export function toSarif(findings: readonly Finding[], tool: { version: string }): Record<string, unknown> {
  const index = new Map(RULES.map((r, i) => [r.id, i]));
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'coffer',
            version: tool.version,
            informationUri: 'https://doi.org/10.6028/NIST.SP.800-190',
            rules: RULES.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.title },
              fullDescription: { text: `${r.title} (NIST SP 800-190 section ${r.section}).` },
              help: { text: r.help },
              defaultConfiguration: { level: LEVEL[r.severity] },
              properties: { tags: ['security', 'container', `sp800-190/${r.section}`], 'security-severity': SCORE[r.severity], severity: r.severity },
            })),
          },
        },
        results: findings.map((f) => ({
          ruleId: f.ruleId,
          ruleIndex: index.get(f.ruleId),
          level: LEVEL[f.severity],
          message: { text: f.message },
          locations: [{ physicalLocation: { artifactLocation: { uri: f.file }, region: { startLine: f.line, startColumn: f.column } } }],
        })),
      },
    ],
  };
}
