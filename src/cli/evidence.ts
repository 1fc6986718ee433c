import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import type { Check } from '../check.js';
import { fromHex } from '../bytes/hex.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import type { TrustAnchor } from '../pki/chain.js';
import type { Claims } from '../evidence/claims-model.js';
import { detectEvidenceKind, EVIDENCE_KINDS, type EvidenceKind } from '../evidence/detect.js';
import { decodeSnpEvidence, snpClaims, validateSnpReport, verifySnpReport } from '../evidence/snp/index.js';
import { loadCollateral, mergeCollateral, tdxClaims, validateEnclaveReport, validateTdReport, verifyDcapQuote, type CollateralBundle } from '../evidence/dcap/index.js';
import { sgxClaims } from '../evidence/dcap/claims.js';
import { loadAttestationKey, verifyTpmQuote } from '../evidence/tpm/index.js';
import { azureTpmtSignature, parseAzureEvidence, parseAzureVtpmQuote, verifyAzureEvidence, type AzureInput } from '../evidence/azure/index.js';
import { parseGceAttestation, verifyGceAttestation } from '../evidence/gcp/index.js';
import { decodeNitroInput, nitroClaims, parseNitroDocument, parseNitroTpmBundle, validateNitroDocument, verifyNitroDocument, verifyNitroTpm } from '../evidence/nitro/index.js';
import { mergeClaims } from '../appraisal/claims.js';
import { claimsFromSnp } from '../appraisal/from-snp.js';
import { claimsFromTpm } from '../appraisal/from-tpm.js';
import { claimsFromDcap } from '../appraisal/from-dcap.js';
import { claimsFromAzure } from '../appraisal/from-azure.js';
import { claimsFromNitro, claimsFromNitroTpm } from '../appraisal/from-nitro.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './output.js';
import { readInput, parseTime, collect } from './files.js';

interface EvidenceFlags {
  kind?: string;
  at?: string;
  json?: boolean;
  cert?: string[];
  tpmQuote?: string;
  tdQuote?: string;
  collateral?: string[];
  nonce?: string;
  expectUserData?: string;
  root?: string[];
  chain?: string[];
  ak?: string[];
  allowDebug?: boolean;
  maxAge?: string;
  historical?: boolean;
}

interface Outcome {
  label: string;
  claims: Claims;
  /** Kind-specific decoded values (SNP report fields, Nitro document, HCL runtime data, ...). */
  details: unknown;
  checks: Check[];
}

function certs(files: readonly string[] | undefined): Certificate[] {
  return (files ?? []).flatMap((f) => parseCertificates(readInput(f, 'certificate file'), f));
}

function anchors(files: readonly string[] | undefined): TrustAnchor[] {
  return certs(files).map((c) => ({ cert: c, label: `${c.subjectCn || c.subject} (given with --root)` }));
}

/** JSON from a file the user gave: a syntax error is bad input (exit 2), not a stack trace. */
function jsonOf(data: Buffer, what: string, code: string): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch {
    throw inputError(code, `${what} is not valid JSON`);
  }
}

function nitroFreshness(f: EvidenceFlags): { maxAgeMs?: number; historical?: boolean } {
  const out: { maxAgeMs?: number; historical?: boolean } = {};
  if (f.maxAge !== undefined) {
    if (!/^\d{1,9}$/.test(f.maxAge)) throw inputError('USAGE', `--max-age takes a number of seconds, got "${f.maxAge}"`);
    out.maxAgeMs = Number(f.maxAge) * 1000;
  }
  if (f.historical) {
    if (f.maxAge !== undefined) throw inputError('USAGE', '--historical and --max-age contradict each other');
    out.historical = true;
  }
  return out;
}

function nonceOf(f: EvidenceFlags): Buffer | undefined {
  return f.nonce === undefined ? undefined : fromHex(f.nonce, '--nonce');
}

function collateralOf(f: EvidenceFlags): CollateralBundle | undefined {
  if (!f.collateral || f.collateral.length === 0) return undefined;
  return mergeCollateral(...f.collateral.map((p) => loadCollateral(p)));
}

function verifySnp(data: Buffer, f: EvidenceFlags, at: Date): Outcome {
  const ev = decodeSnpEvidence(data);
  const v = verifySnpReport(ev.report, { at, certificates: [...ev.certificates, ...certs(f.cert)] });
  const validation = validateSnpReport(v.report, v.tcb, { allowDebug: f.allowDebug ?? false, allowMigrationAgent: false }, { kind: v.signingKey, cspId: v.endorsement.cspId });
  return {
    label: `SEV-SNP report v${v.report.version}, ${v.product}, signed by ${v.signingKey.toUpperCase()}${v.endorsement.cspId ? ` (${v.endorsement.cspId})` : ''}, chain to ${v.chain[v.chain.length - 1]?.subjectCn ?? 'ARK'} (pinned)`,
    claims: claimsFromSnp(v, validation),
    details: { ...snpClaims(v.report, v.product), cspId: v.endorsement.cspId ?? null },
    checks: [...v.checks, ...validation],
  };
}

function verifyDcap(data: Buffer, tee: 'tdx' | 'sgx', f: EvidenceFlags, at: Date): Outcome {
  const collateral = collateralOf(f);
  const v = verifyDcapQuote(data, { at, tee, ...(collateral ? { collateral } : {}) });
  const allowDebug = f.allowDebug ?? false;
  const validation = v.quote.td ? validateTdReport(v.quote.td, v, { allowDebug }) : v.quote.sgx ? validateEnclaveReport(v.quote.sgx, v, { allowDebug }) : [];
  return {
    label: `${tee.toUpperCase()} quote v${v.quote.header.version}, PCK chain to ${v.chain[v.chain.length - 1]?.subjectCn ?? 'Intel SGX Root CA'} (pinned), TCB ${v.tcb?.status ?? (v.collateralGiven ? 'NOT CHECKED (no TCB info for this platform in the collateral)' : 'NOT CHECKED (no collateral given)')}, QE ISVSVN ${v.quote.signatureData.qeReport.isvSvn}`,
    claims: claimsFromDcap(v, validation),
    details: tee === 'tdx' ? tdxClaims(v.quote, v) : sgxClaims(v.quote, v),
    checks: [...v.checks, ...validation],
  };
}

function verifyAzure(data: Buffer, tee: 'snp' | 'tdx', f: EvidenceFlags, at: Date): Outcome {
  const isHcl = data.subarray(0, 4).toString('latin1') === 'HCLA';
  let input: AzureInput;
  let format = 'HCL report';
  if (isHcl) {
    input = { hclReport: data, certificates: certs(f.cert) };
    if (f.tpmQuote) input.tpmQuote = parseAzureVtpmQuote(jsonOf(readInput(f.tpmQuote, 'vTPM quote'), `--tpm-quote ${f.tpmQuote}`, 'AZURE_BAD_EVIDENCE'), f.tpmQuote);
    if (f.tdQuote) input.tdQuote = readInput(f.tdQuote, 'TD quote');
  } else {
    const ev = parseAzureEvidence(data.toString('utf8'));
    format = `evidence ${ev.format}`;
    input = { hclReport: ev.hclReport, tpmQuote: ev.tpmQuote, certificates: [...ev.certificates, ...certs(f.cert)], ...(ev.tdQuote ? { tdQuote: ev.tdQuote } : {}) };
    if (f.tdQuote) input.tdQuote = readInput(f.tdQuote, 'TD quote');
  }
  const collateral = collateralOf(f);
  const nonce = nonceOf(f);
  const v = verifyAzureEvidence(input, { at, ...(nonce ? { nonce } : {}), ...(f.expectUserData !== undefined ? { expectedUserData: fromHex(f.expectUserData, '--expect-user-data') } : {}), ...(collateral ? { collateral } : {}) });
  if (v.tee !== tee) throw inputError('EVIDENCE_WRONG_KIND', `this is Azure ${v.tee.toUpperCase()} evidence, not ${tee.toUpperCase()}`);
  let validation: Check[] = [];
  if (v.snp) validation = validateSnpReport(v.snp.report, v.snp.tcb, { allowDebug: f.allowDebug ?? false, allowMigrationAgent: false }, { kind: v.snp.signingKey, cspId: v.snp.endorsement.cspId });
  if (v.tdx?.quote.td) validation = validateTdReport(v.tdx.quote.td, v.tdx, { allowDebug: f.allowDebug ?? false });
  return {
    label: `Azure CVM (${tee === 'snp' ? 'SEV-SNP' : 'TDX'}, ${format}): ${v.snp ? `SEV-SNP report to ${v.snp.chain[v.snp.chain.length - 1]?.subjectCn ?? 'ARK'} (pinned)` : `TD quote to Intel SGX Root CA (pinned), TCB ${v.tdx?.tcb?.status ?? (v.tdx?.collateralGiven ? 'NOT CHECKED' : 'NOT CHECKED (no collateral given)')}`}, runtime data bound by REPORT_DATA, ${v.tpm ? 'vTPM quote verified with HCLAkPub' : 'vTPM quote NOT CHECKED'}`,
    claims: claimsFromAzure(v, validation),
    details: {
      hcl: { version: v.hcl.version, requestType: v.hcl.requestType, tee: v.hcl.tee, runtimeDataSha256: v.hcl.runtimeDataDigest.toString('hex') },
      runtime: { keys: v.runtime.keys.map((k) => k.kid), vmConfiguration: v.runtime.vmConfiguration ?? null, userData: v.runtime.userData?.toString('hex') ?? null },
      hardware: v.snp ? snpClaims(v.snp.report, v.snp.product) : v.tdx ? tdxClaims(v.tdx.quote, v.tdx) : null,
      tpm: v.tpm ? { extraData: v.tpm.quote.extraData.toString('hex'), pcrDigest: v.tpm.quote.pcrDigest.toString('hex') } : null,
    },
    checks: [...v.checks, ...validation],
  };
}

function verifyGcp(data: Buffer, f: EvidenceFlags, at: Date): Outcome {
  const att = parseGceAttestation(data);
  const nonce = nonceOf(f);
  const v = verifyGceAttestation(att, { at, roots: anchors(f.root), intermediates: certs(f.chain), ...(nonce ? { nonce } : {}) });
  // The log goes with the SHA-256 quote (or the strongest bank quoted), where it is replayed.
  const logIndex = Math.max(0, v.quotes.findIndex((q) => q.quote.pcrSelection.some((s) => s.hashName === 'sha256')));
  const parts = v.quotes.map((q, i) => claimsFromTpm(q, i === logIndex ? v.eventLog : undefined));
  const claims = mergeClaims(parts);
  const checks = [...v.checks, ...claims.verification.flatMap((e) => e.checks.filter((c) => c.name.startsWith('eventlog.')))];
  const root = v.quotes[0]?.akChain?.at(-1);
  return {
    label: `GCE vTPM attestation: ${v.quotes.length} quote(s) (${att.quotes.map((q) => q.bank).join(', ')}) by the AK, AK certificate to ${root?.subjectCn ?? '?'} (given with --root)${v.eventLog ? `, event log of ${v.eventLog.events.length} events` : ''}`,
    claims,
    details: { instance: v.instance ?? null, quotes: att.quotes.map((q) => q.bank), unknownFields: att.unknownFields },
    checks,
  };
}

function verifyNitro(data: Buffer, f: EvidenceFlags, at: Date): Outcome {
  const nonce = nonceOf(f);
  const text = data.subarray(0, 1).toString('latin1');
  if (text === '{') {
    const bundle = parseNitroTpmBundle(data.toString('utf8'));
    const v = verifyNitroTpm(bundle, { at, ...nitroFreshness(f), ...(nonce ? { nonce } : {}) });
    return {
      label: `AWS NitroTPM (${bundle.document.moduleId}): NSM document to ${v.nitro.chain[v.nitro.chain.length - 1]?.subjectCn ?? 'AWS root'} (pinned), TPM quote by its AK over the SHA-384 PCRs`,
      claims: claimsFromNitroTpm(v),
      details: nitroClaims(v.nitro.document, v.nitro.leaf),
      checks: v.checks,
    };
  }
  const doc = parseNitroDocument(decodeNitroInput(data));
  const v = verifyNitroDocument(doc, { at, ...nitroFreshness(f) });
  const validation = validateNitroDocument(doc, { allowDebug: f.allowDebug ?? false, ...(nonce ? { nonce } : {}) });
  return {
    label: `AWS Nitro ${doc.flavour === 'enclave' ? 'Enclave' : 'TPM'} attestation document (${doc.moduleId}, ${new Date(doc.timestamp).toISOString()}), chain to ${v.chain[v.chain.length - 1]?.subjectCn ?? 'AWS root'} (pinned)`,
    claims: claimsFromNitro(v, validation),
    details: nitroClaims(doc, v.leaf),
    checks: [...v.checks, ...validation],
  };
}

function verifyTpm(data: Buffer, f: EvidenceFlags, at: Date): Outcome {
  if (!f.ak || f.ak.length === 0) throw inputError('TPM_BAD_AK', 'a TPM quote needs its attestation key: give --ak FILE (TPMT_PUBLIC, PEM/DER public key, JWK or AK certificate)');
  const q = parseAzureVtpmQuote(jsonOf(data, 'the TPM quote file (JSON {signature, message, pcrs})', 'EVIDENCE_BAD_INPUT'), 'TPM quote');
  const ak = loadAttestationKey(f.ak.map((p) => ({ data: readInput(p, 'AK file'), what: p })));
  const nonce = nonceOf(f);
  const roots = anchors(f.root);
  const v = verifyTpmQuote(q.message, azureTpmtSignature(q), {
    at,
    ak,
    pcrs: new Map([['sha256', new Map(q.pcrs.map((p, i) => [i, p]))]]),
    ...(nonce ? { nonce } : { skipNonceCheck: true }),
    ...(roots.length > 0 ? { akRoots: roots, akIntermediates: certs(f.chain) } : {}),
  });
  return { label: `TPM 2.0 quote (${v.signature.alg.toUpperCase()}/${v.signature.hashName.toUpperCase()}) by the AK`, claims: claimsFromTpm(v), details: { extraData: v.quote.extraData.toString('hex'), pcrDigest: v.quote.pcrDigest.toString('hex') }, checks: v.checks };
}

function verifyKind(kind: EvidenceKind, data: Buffer, f: EvidenceFlags, at: Date): Outcome {
  switch (kind) {
    case 'snp':
      return verifySnp(data, f, at);
    case 'tdx':
    case 'sgx':
      return verifyDcap(data, kind, f, at);
    case 'azure-snp':
      return verifyAzure(data, 'snp', f, at);
    case 'azure-tdx':
      return verifyAzure(data, 'tdx', f, at);
    case 'gcp':
      return verifyGcp(data, f, at);
    case 'nitro':
      return verifyNitro(data, f, at);
    case 'tpm':
      return verifyTpm(data, f, at);
  }
}

function checkLine(c: Check): string {
  const detail = !c.ok && (c.expected !== undefined || c.found !== undefined) ? ` (expected ${c.expected ?? '-'}, found ${c.found ?? '-'})` : '';
  return `  ${c.notChecked ? '--  ' : c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(28)} ${c.description}${detail}`;
}

/** `coffer evidence verify FILE`: any supported evidence, detected, verified, as common claims. */
export function registerEvidence(program: Command, ctx: CliContext): void {
  const evidence = program.command('evidence').description('any supported evidence: SEV-SNP, TDX, SGX, TPM, Azure CVM, GCE vTPM, AWS Nitro');
  common(
    evidence
      .command('verify')
      .description('detect the kind of evidence in FILE, verify it to its vendor root and print the common claims')
      .argument('<file>', 'evidence file (or - for stdin)')
      .option('--kind <kind>', `auto or one of ${EVIDENCE_KINDS.join(', ')}`, 'auto')
      .option('--at <iso8601>', 'verification time: certificates must be valid then (default: now)')
      .option('--cert <file>', 'SNP: VCEK/VLEK, ASK/ASVK, ARK (PEM or DER; repeatable)', collect)
      .option('--tpm-quote <file>', 'Azure HCL report: the vTPM quote JSON {signature, message, pcrs}')
      .option('--td-quote <file>', 'Azure TDX HCL report: the TD quote of the same TD')
      .option('--collateral <path>', 'TDX/SGX: offline DCAP collateral (directory or JSON; repeatable)', collect)
      .option('--nonce <hex>', 'the nonce the verifier sent (vTPM/TPM extraData, Nitro nonce)')
      .option('--expect-user-data <hex>', 'Azure: the report data expected in the HCL user-data (evidence v2)')
      .option('--root <file>', 'GCE/TPM: a root for the AK certificate (Google EK/AK CA; repeatable)', collect)
      .option('--chain <file>', 'GCE/TPM: intermediates for the AK certificate (repeatable)', collect)
      .option('--ak <file>', 'TPM: the attestation key (TPMT_PUBLIC, public key, JWK or certificate; repeatable)', collect)
      .option('--allow-debug', 'accept debug-mode guests and enclaves (never in production)')
      .option('--max-age <seconds>', 'Nitro: refuse a document older than this at --at (its certificate must be valid then in any case)')
      .option('--historical', 'Nitro: verify an old document whose certificate has expired by --at (freshness NOT CHECKED)'),
  ).action(
    action(ctx, (path: string, f: EvidenceFlags) => {
      const at = parseTime(f.at);
      const data = readInput(path, 'evidence file');
      let kind: EvidenceKind;
      let form = 'given with --kind';
      if (f.kind === undefined || f.kind === 'auto') {
        const d = detectEvidenceKind(data);
        kind = d.kind;
        form = d.form;
      } else if ((EVIDENCE_KINDS as readonly string[]).includes(f.kind)) {
        kind = f.kind as EvidenceKind;
      } else {
        throw inputError('USAGE', `--kind must be auto or one of ${EVIDENCE_KINDS.join(', ')}, got "${f.kind}"`);
      }
      let out: Outcome;
      try {
        out = verifyKind(kind, data, f, at);
      } catch (e) {
        if (f.json && e instanceof CofferError) {
          ctx.io.out(toJson({ ok: false, kind, form, claims: null, checks: e.details?.checks ?? [], error: { code: e.code, message: e.message } }));
          return e.kind === 'input' ? EXIT_USAGE : EXIT_FAILED;
        }
        throw e;
      }
      const failed = out.checks.find((c) => !c.ok);
      if (f.json) {
        ctx.io.out(toJson({ ok: !failed, kind, form, label: out.label, claims: out.claims, details: out.details, checks: out.checks, ...(failed ? { error: { code: failed.code, message: failed.description } } : {}) }));
        return failed ? EXIT_FAILED : EXIT_OK;
      }
      if (failed) {
        ctx.io.err(`coffer: ${failed.code ?? 'FAILED'}: ${failed.description}${failed.expected !== undefined ? ` (expected ${failed.expected}, found ${failed.found ?? '-'})` : ''}`);
        return EXIT_FAILED;
      }
      const unchecked = out.checks.filter((c) => c.notChecked);
      ctx.io.out(
        `VERIFIED  ${kind}: ${out.label}\n` +
          (unchecked.length > 0 ? `  NOT CHECKED: ${unchecked.map((c) => c.name).join(', ')}\n` : '') +
          out.checks.map(checkLine).join('\n'),
      );
      return EXIT_OK;
    }),
  );
}
