import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import type { Check } from '../check.js';
import {
  checkCcelAgainstTd,
  loadCollateral,
  mergeCollateral,
  parseDcapQuote,
  sgxClaims,
  tdxClaims,
  validateEnclaveReport,
  validateTdReport,
  verifyDcapQuote,
  TCB_STATUSES,
  type DcapVerified,
  type SgxExpectations,
  type TcbStatus,
  type TdxExpectations,
} from '../evidence/dcap/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { readInput, parseTime, hexArg, intArg, collect } from './files.js';

/** A quote file: raw bytes, or the same as hex text (whitespace allowed). */
function readQuote(path: string): Buffer {
  const data = readInput(path, 'quote');
  const text = data.toString('latin1').trim();
  if (text.length > 0 && text.length % 2 === 0 && /^[0-9a-fA-F\s]+$/.test(text)) return Buffer.from(text.replace(/\s+/g, ''), 'hex');
  return data;
}

function tcbStatuses(list: string[] | undefined): TcbStatus[] | undefined {
  if (!list) return undefined;
  const out: TcbStatus[] = [];
  for (const item of list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const s = TCB_STATUSES.find((x) => x.toLowerCase() === item.toLowerCase());
    if (!s) throw inputError('USAGE', `--accept-tcb takes ${TCB_STATUSES.filter((x) => x !== 'Revoked').join(', ')}; got "${item}"`);
    if (s === 'Revoked') throw inputError('USAGE', '--accept-tcb Revoked is not allowed: a revoked TCB never verifies');
    out.push(s);
  }
  return ['UpToDate', ...out.filter((s) => s !== 'UpToDate')];
}

function checkLine(c: Check): string {
  const detail = !c.ok && (c.expected !== undefined || c.found !== undefined) ? ` (expected ${c.expected ?? '-'}, found ${c.found ?? '-'})` : '';
  return `  ${c.notChecked ? '--  ' : c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(30)} ${c.description}${detail}`;
}

interface SharedFlags {
  collateral?: string[];
  at?: string;
  acceptTcb?: string[];
  allowTrailingBytes?: boolean;
  allowDebug?: boolean;
  expectReportData?: string;
  json?: boolean;
}

interface TdxFlags extends SharedFlags {
  ccel?: string;
  expectMrtd?: string[];
  expectRtmr?: string[];
  expectMrconfigid?: string;
  expectMrowner?: string;
  expectMrownerconfig?: string;
  expectMrseam?: string[];
  expectXfam?: string;
  expectTdAttributes?: string;
}

interface SgxFlags extends SharedFlags {
  expectMrenclave?: string[];
  expectMrsigner?: string[];
  expectIsvProdId?: string;
  minIsvSvn?: string;
  expectAttributes?: string;
}

function sharedOptions(cmd: Command): Command {
  return cmd
    .option('--collateral <path>', 'offline collateral: a directory (PCS TCB info and QE identity JSON, TCB signing chain PEM, CRLs) or a collateral JSON file (repeatable)', collect)
    .option('--at <iso8601>', 'time at which certificates and collateral must be valid (default: now)')
    .option('--accept-tcb <status>', 'also accept this TCB status besides UpToDate: SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded (repeatable or comma-separated)', collect)
    .option('--expect-report-data <hex>', 'expected REPORTDATA (up to 64 bytes, zero-padded)')
    .option('--allow-debug', 'accept a debuggable TD or enclave (never in production)')
    .option('--allow-trailing-bytes', 'ignore non-zero bytes after the end of the quote (they are not signed)');
}

function parseRtmr(s: string): [0 | 1 | 2 | 3, Buffer] {
  const m = /^([0-3])=(.*)$/.exec(s);
  if (!m) throw inputError('USAGE', `--expect-rtmr takes N=HEX with N from 0 to 3, got "${s}"`);
  return [Number(m[1]) as 0 | 1 | 2 | 3, hexArg(m[2] ?? '', `--expect-rtmr ${m[1]}`, 48, true)];
}

function tdxExpectations(f: TdxFlags): TdxExpectations {
  const e: TdxExpectations = { allowDebug: f.allowDebug ?? false };
  const accepted = tcbStatuses(f.acceptTcb);
  if (accepted) e.acceptedTcbStatuses = accepted;
  if (f.expectMrtd) e.mrTd = f.expectMrtd.map((m) => hexArg(m, '--expect-mrtd', 48, true));
  if (f.expectRtmr) e.rtmrs = Object.fromEntries(f.expectRtmr.map(parseRtmr));
  if (f.expectMrconfigid !== undefined) e.mrConfigId = hexArg(f.expectMrconfigid, '--expect-mrconfigid', 48, false);
  if (f.expectMrowner !== undefined) e.mrOwner = hexArg(f.expectMrowner, '--expect-mrowner', 48, false);
  if (f.expectMrownerconfig !== undefined) e.mrOwnerConfig = hexArg(f.expectMrownerconfig, '--expect-mrownerconfig', 48, false);
  if (f.expectMrseam) e.mrSeam = f.expectMrseam.map((m) => hexArg(m, '--expect-mrseam', 48, true));
  if (f.expectXfam !== undefined) e.xfam = hexArg(f.expectXfam, '--expect-xfam', 8, true);
  if (f.expectTdAttributes !== undefined) e.tdAttributes = hexArg(f.expectTdAttributes, '--expect-td-attributes', 8, true);
  if (f.expectReportData !== undefined) e.reportData = hexArg(f.expectReportData, '--expect-report-data', 64, false);
  return e;
}

function sgxExpectations(f: SgxFlags): SgxExpectations {
  const e: SgxExpectations = { allowDebug: f.allowDebug ?? false };
  const accepted = tcbStatuses(f.acceptTcb);
  if (accepted) e.acceptedTcbStatuses = accepted;
  if (f.expectMrenclave) e.mrEnclave = f.expectMrenclave.map((m) => hexArg(m, '--expect-mrenclave', 32, true));
  if (f.expectMrsigner) e.mrSigner = f.expectMrsigner.map((m) => hexArg(m, '--expect-mrsigner', 32, true));
  if (f.expectIsvProdId !== undefined) e.isvProdId = intArg(f.expectIsvProdId, '--expect-isv-prod-id', 0xffff);
  if (f.minIsvSvn !== undefined) e.minimumIsvSvn = intArg(f.minIsvSvn, '--min-isv-svn', 0xffff);
  if (f.expectAttributes !== undefined) e.attributes = hexArg(f.expectAttributes, '--expect-attributes', 16, true);
  if (f.expectReportData !== undefined) e.reportData = hexArg(f.expectReportData, '--expect-report-data', 64, false);
  return e;
}

/**
 * The shared verify flow: verification (exit 1 on failure, with the checks so far under --json),
 * then validation, then output in the shape of `coffer snp verify`.
 */
async function runVerify(
  ctx: CliContext,
  tee: 'tdx' | 'sgx',
  path: string,
  f: SharedFlags,
  validate: (v: DcapVerified) => Check[],
  claimsOf: (raw: Buffer, v?: DcapVerified) => unknown,
  headline: (v: DcapVerified) => string,
  summary: (v: DcapVerified) => string,
): Promise<number> {
  const at = parseTime(f.at);
  const collateral = f.collateral ? mergeCollateral(...f.collateral.map((p) => loadCollateral(p))) : undefined;
  const raw = readQuote(path);
  let verified: DcapVerified;
  try {
    verified = verifyDcapQuote(raw, { at, tee, allowTrailingBytes: f.allowTrailingBytes ?? false, ...(collateral ? { collateral } : {}) });
  } catch (e) {
    if (f.json && e instanceof CofferError) {
      let claims: unknown = null;
      try {
        claims = claimsOf(raw);
      } catch {
        claims = null;
      }
      ctx.io.out(toJson({ ok: false, claims, checks: e.details?.checks ?? [], error: { code: e.code, message: e.message } }));
      return e.kind === 'input' ? 2 : EXIT_FAILED;
    }
    throw e;
  }
  const validation = validate(verified);
  const checks = [...verified.checks, ...validation];
  const failed = validation.find((c) => !c.ok);
  const claims = claimsOf(raw, verified);
  const unchecked = checks.filter((c) => c.notChecked);
  if (f.json) {
    ctx.io.out(toJson({ ok: !failed, claims, checks, ...(failed ? { error: { code: failed.code, message: failed.description } } : {}) }));
    return failed ? EXIT_FAILED : EXIT_OK;
  }
  if (failed) {
    for (const c of validation.filter((v) => !v.ok)) ctx.io.err(`coffer: ${c.code ?? 'FAILED'}: ${c.description}${c.expected !== undefined ? ` (expected ${c.expected}, found ${c.found ?? '-'})` : ''}`);
    return EXIT_FAILED;
  }
  ctx.io.out(
    `VERIFIED  ${headline(verified)}\n` +
      (unchecked.length > 0 ? `  NOT CHECKED: ${unchecked.map((c) => c.name).join(', ')} (see below; pass --collateral, --ccel or the matching --expect options to appraise them)\n` : '') +
      `${summary(verified)}\n` +
      checks.map(checkLine).join('\n'),
  );
  return EXIT_OK;
}

function tcbText(v: DcapVerified): string {
  const qe = v.quote.signatureData.qeReport;
  const qeText = `QE ISVPRODID ${qe.isvProdId} ISVSVN ${qe.isvSvn}${v.qe ? ` ${v.qe.status}` : ''}`;
  if (v.tcb) return `TCB ${v.tcb.status}, ${qeText}`;
  return `TCB NOT CHECKED (${v.collateralGiven ? 'no TCB info for this platform in the collateral' : 'no collateral given'}), ${qeText}`;
}

export function registerTdx(program: Command, ctx: CliContext): void {
  const tdx = program.command('tdx').description('Intel TDX quotes (DCAP v4, v5)');
  common(
    sharedOptions(
      tdx
        .command('verify')
        .description('verify a TDX quote to the pinned Intel SGX Root CA, with collateral for the TCB status, then check it against expected values')
        .argument('<quote>', 'quote file (raw bytes or hex; zero padding after the quote is allowed)'),
    )
      .option('--ccel <file>', 'the TD\'s CC event log (CCEL): replayed and compared with RTMR0-3')
      .option('--expect-mrtd <hex>', 'accepted MRTD (48 bytes; repeatable)', collect)
      .option('--expect-rtmr <n=hex>', 'expected RTMR n (0-3) value (48 bytes; repeatable)', collect)
      .option('--expect-mrconfigid <hex>', 'expected MRCONFIGID (up to 48 bytes, zero-padded)')
      .option('--expect-mrowner <hex>', 'expected MROWNER (up to 48 bytes, zero-padded)')
      .option('--expect-mrownerconfig <hex>', 'expected MROWNERCONFIG (up to 48 bytes, zero-padded)')
      .option('--expect-mrseam <hex>', 'accepted MRSEAM (TDX module measurement, 48 bytes; repeatable)', collect)
      .option('--expect-xfam <hex>', 'exact XFAM (8 bytes as in the report)')
      .option('--expect-td-attributes <hex>', 'exact TDATTRIBUTES (8 bytes as in the report)'),
  ).action(
    action(ctx, async (path: string, f: TdxFlags) => {
      const exp = tdxExpectations(f);
      const ccel = f.ccel ? readInput(f.ccel, 'CCEL file') : undefined;
      return runVerify(
        ctx,
        'tdx',
        path,
        f,
        (v) => {
          const td = v.quote.td;
          if (!td) return [];
          const out = validateTdReport(td, v, exp);
          if (!ccel) return out;
          // With a CCEL the RTMRs are appraised through the log; the bare "no expected RTMR" note goes.
          return [...out.filter((c) => c.name !== 'tdx.rtmr'), ...checkCcelAgainstTd(td, ccel)];
        },
        (raw, v) => tdxClaims(v?.quote ?? parseDcapQuote(raw, { allowTrailingBytes: true }), v) ?? null,
        (v) => `TDX quote v${v.quote.header.version} (${v.quote.bodyKind === 'td15' ? 'TDX 1.5' : 'TDX 1.0'}), PCK chain to ${v.chain[v.chain.length - 1]?.subjectCn ?? 'Intel SGX Root CA'} (pinned), ${tcbText(v)}`,
        (v) => `  mrtd        ${v.quote.td?.mrTd.toString('hex') ?? ''}\n  report data ${v.quote.td?.reportData.toString('hex') ?? ''}`,
      );
    }),
  );
}

export function registerSgx(program: Command, ctx: CliContext): void {
  const sgx = program.command('sgx').description('Intel SGX ECDSA quotes (DCAP v3)');
  common(
    sharedOptions(
      sgx
        .command('verify')
        .description('verify an SGX quote to the pinned Intel SGX Root CA, with collateral for the TCB status, then check it against expected values')
        .argument('<quote>', 'quote file (raw bytes or hex)'),
    )
      .option('--expect-mrenclave <hex>', 'accepted MRENCLAVE (32 bytes; repeatable)', collect)
      .option('--expect-mrsigner <hex>', 'accepted MRSIGNER (32 bytes; repeatable)', collect)
      .option('--expect-isv-prod-id <n>', 'expected ISVPRODID')
      .option('--min-isv-svn <n>', 'minimum ISVSVN')
      .option('--expect-attributes <hex>', 'exact ATTRIBUTES (16 bytes as in the report)'),
  ).action(
    action(ctx, async (path: string, f: SgxFlags) => {
      const exp = sgxExpectations(f);
      return runVerify(
        ctx,
        'sgx',
        path,
        f,
        (v) => (v.quote.sgx ? validateEnclaveReport(v.quote.sgx, v, exp) : []),
        (raw, v) => sgxClaims(v?.quote ?? parseDcapQuote(raw, { allowTrailingBytes: true }), v) ?? null,
        (v) => `SGX quote v${v.quote.header.version}, PCK chain to ${v.chain[v.chain.length - 1]?.subjectCn ?? 'Intel SGX Root CA'} (pinned), ${tcbText(v)}`,
        (v) => `  mrenclave   ${v.quote.sgx?.mrEnclave.toString('hex') ?? ''}\n  mrsigner    ${v.quote.sgx?.mrSigner.toString('hex') ?? ''}\n  report data ${v.quote.sgx?.reportData.toString('hex') ?? ''}`,
      );
    }),
  );
}
