import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { AR4SI_CATEGORIES, EAR_VERDICT_KEY, earJwks, generateEarSigningKey, loadEarSigningKey, parseJwks, verifyEar, type EarAppraisal } from '../appraisal/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { readInput } from './files.js';

/** A token argument: a file holding the token, or the token itself. */
function readToken(arg: string): string {
  if (arg === '-' || existsSync(arg)) return readInput(arg, 'EAR token').toString('utf8').trim();
  if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(arg.trim())) return arg.trim();
  throw inputError('FILE_UNREADABLE', `EAR token ${arg} does not exist (give a file holding the token, or the token itself)`);
}

function submodLine(name: string, a: EarAppraisal): string {
  const v = a['ear.trustworthiness-vector'] ?? {};
  const vec = AR4SI_CATEGORIES.filter((c) => v[c] !== undefined).map((c) => `${c}=${v[c]}`).join(' ') || '(no claim)';
  const verdict = a[EAR_VERDICT_KEY];
  return `  ${name}: ${a['ear.status']}${a['ear.appraisal-policy-id'] ? `, policy ${a['ear.appraisal-policy-id']}` : ''}${verdict ? `, verdict ${verdict.verdict}` : ''}\n    trustworthiness: ${vec}${verdict?.denial ? `\n    ${verdict.denial}` : ''}`;
}

/** `coffer result verify|jwks|keygen`. */
export function registerResult(program: Command, ctx: CliContext): void {
  const result = program.command('result').description('EAR attestation results (signed JWTs)');

  common(
    result
      .command('verify')
      .description('verify an EAR attestation result with a JWKS and show its appraisals')
      .argument('<token>', 'file holding the EAR JWT (or - for stdin, or the token itself)')
      .requiredOption('--jwks <file>', "the verifier's JWKS (or a single JWK)"),
  ).action(
    action(ctx, async (arg: string, f: { jwks: string; json?: boolean }) => {
      const jwks = parseJwks(readInput(f.jwks, 'JWKS file'), f.jwks);
      const token = readToken(arg);
      const ear = await verifyEar(token, jwks);
      if (f.json) {
        ctx.io.out(toJson({ ok: true, ear }));
        return EXIT_OK;
      }
      ctx.io.out(
        `VERIFIED  EAR (ES384), issued ${new Date(ear.iat * 1000).toISOString()} by ${ear['ear.verifier-id'].developer} (${ear['ear.verifier-id'].build})${ear.eat_nonce !== undefined ? `, nonce ${ear.eat_nonce}` : ''}\n` +
          Object.entries(ear.submods)
            .map(([n, a]) => submodLine(n, a))
            .join('\n'),
      );
      return EXIT_OK;
    }),
  );

  common(
    result
      .command('jwks')
      .description('print the JWKS that relying parties use to verify results signed with a key')
      .requiredOption('--key <file>', 'ES384 signing key (PEM or JWK), repeatable', (v: string, prev: string[] = []) => [...prev, v]),
  ).action(
    action(ctx, async (f: { key: string[] }) => {
      const keys = f.key.map((p) => loadEarSigningKey(readInput(p, 'EAR signing key'), p));
      ctx.io.out(JSON.stringify(await earJwks(keys), null, 2));
      return EXIT_OK;
    }),
  );

  common(
    result
      .command('keygen')
      .description('generate an ES384 result-signing key (PKCS#8 PEM, mode 0600) and optionally write its JWKS')
      .requiredOption('--out <file>', 'where to write the private key (never overwritten)')
      .option('--jwks <file>', 'also write the public JWKS here'),
  ).action(
    action(ctx, async (f: { out: string; jwks?: string; json?: boolean }) => {
      const { privateKey, pem } = generateEarSigningKey();
      try {
        writeFileSync(f.out, pem, { mode: 0o600, flag: 'wx' });
      } catch {
        throw inputError('FILE_UNWRITABLE', `cannot create ${f.out} (it may already exist; keys are never overwritten)`);
      }
      const jwks = await earJwks([privateKey]);
      if (f.jwks) writeFileSync(f.jwks, `${JSON.stringify(jwks, null, 2)}\n`);
      if (f.json) ctx.io.out(toJson({ ok: true, key: f.out, jwks }));
      else ctx.io.out(`wrote ES384 signing key ${f.out} (mode 0600), kid ${jwks.keys[0]?.kid ?? ''}${f.jwks ? `; JWKS in ${f.jwks}` : ''}`);
      return EXIT_OK;
    }),
  );
}
