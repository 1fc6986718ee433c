import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import type { Check } from '../check.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import { parseCrl, type Crl } from '../pki/crl.js';
import {
  decodeSnpEvidence,
  fromTsm,
  parseCertTable,
  certificatesFromTable,
  parseSnpReport,
  productFromCpuid,
  snpClaims,
  formatSnpReport,
  verifySnpReport,
  validateSnpReport,
  fetchVcek,
  fetchCertChain,
  fetchCrl,
  decodeTcb,
  type SnpEvidence,
  type SnpExpectations,
  type SnpProduct,
  type TcbComponent,
  type KdsOptions,
} from '../evidence/snp/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { readInput, isDirectory, parseTime, hexArg, intArg, collect } from './files.js';

const PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

/** Reads REPORT: a file in any accepted form, "-" for stdin, or a configfs-tsm report directory. */
function loadEvidence(path: string, auxblob: string | undefined): SnpEvidence {
  let ev: SnpEvidence;
  if (path !== '-' && isDirectory(path)) {
    const aux = join(path, 'auxblob');
    const provider = join(path, 'provider');
    if (existsSync(provider)) {
      const p = readInput(provider, 'provider').toString('utf8').trim();
      if (p !== 'sev_guest') throw inputError('SNP_BAD_INPUT', `${path}: configfs-tsm provider is "${p}", not sev_guest`);
    }
    ev = fromTsm(readInput(join(path, 'outblob'), 'outblob'), existsSync(aux) ? readInput(aux, 'auxblob') : undefined);
  } else {
    ev = decodeSnpEvidence(readInput(path, 'report'));
  }
  if (auxblob) ev.certificates.push(...certificatesFromTable(parseCertTable(readInput(auxblob, 'auxblob'))));
  return ev;
}

function parseProduct(s: string | undefined): SnpProduct | undefined {
  if (s === undefined) return undefined;
  const p = PRODUCTS.find((x) => x.toLowerCase() === s.toLowerCase());
  if (!p) throw inputError('BAD_PRODUCT', `--product must be one of ${PRODUCTS.join(', ')}, got "${s}"`);
  return p;
}

function parseMinTcb(s: string): Partial<Record<TcbComponent, number>> {
  const names: Record<string, TcbComponent> = { fmc: 'fmc', bl: 'bootloader', bootloader: 'bootloader', tee: 'tee', snp: 'snp', ucode: 'microcode', microcode: 'microcode' };
  const out: Partial<Record<TcbComponent, number>> = {};
  for (const part of s.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const name = k === undefined ? undefined : names[k.trim()];
    if (!name || v === undefined) throw inputError('BAD_TCB', `--min-tcb takes name=value pairs (fmc, bl, tee, snp, ucode), e.g. bl=3,tee=0,snp=8,ucode=115; got "${part}"`);
    out[name] = intArg(v.trim(), `--min-tcb ${k}`, 255);
  }
  return out;
}

function parseFirmware(s: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)$/.exec(s);
  if (!m) throw inputError('BAD_VERSION', `--min-firmware must be MAJOR.MINOR, e.g. 1.55, got "${s}"`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

interface VerifyFlags {
  vcek?: string;
  chain?: string;
  crl?: string;
  auxblob?: string;
  fetch?: boolean;
  offline?: boolean;
  cacheDir?: string;
  kdsUrl?: string;
  product?: string;
  at?: string;
  expectMeasurement?: string[];
  expectReportData?: string;
  expectHostData?: string;
  expectIdKey?: string[];
  expectAuthorKey?: string[];
  expectFamilyId?: string;
  expectImageId?: string;
  minTcb?: string;
  minLaunchTcb?: string;
  allowProvisionalFirmware?: boolean;
  allowUnknownPlatformInfo?: boolean;
  signingKey?: string;
  expectCsp?: string[];
  minGuestSvn?: string;
  minFirmware?: string;
  vmpl?: string;
  allowDebug?: boolean;
  allowMigrationAgent?: boolean;
  smt?: boolean;
  json?: boolean;
}

function expectations(f: VerifyFlags): SnpExpectations {
  const e: SnpExpectations = { allowDebug: f.allowDebug ?? false, allowMigrationAgent: f.allowMigrationAgent ?? false };
  if (f.expectMeasurement) e.measurements = f.expectMeasurement.map((m) => hexArg(m, '--expect-measurement', 48, true));
  if (f.expectReportData !== undefined) e.reportData = hexArg(f.expectReportData, '--expect-report-data', 64, false);
  if (f.expectHostData !== undefined) e.hostData = hexArg(f.expectHostData, '--expect-host-data', 32, false);
  if (f.expectIdKey) e.idKeyDigests = f.expectIdKey.map((m) => hexArg(m, '--expect-id-key', 48, true));
  if (f.expectAuthorKey) e.authorKeyDigests = f.expectAuthorKey.map((m) => hexArg(m, '--expect-author-key', 48, true));
  if (f.expectFamilyId !== undefined) e.familyId = hexArg(f.expectFamilyId, '--expect-family-id', 16, false);
  if (f.expectImageId !== undefined) e.imageId = hexArg(f.expectImageId, '--expect-image-id', 16, false);
  if (f.minTcb !== undefined) e.minimumTcb = parseMinTcb(f.minTcb);
  if (f.minLaunchTcb !== undefined) e.minimumLaunchTcb = parseMinTcb(f.minLaunchTcb);
  if (f.allowProvisionalFirmware) e.allowProvisionalFirmware = true;
  if (f.allowUnknownPlatformInfo) e.allowUnknownPlatformInfo = true;
  if (f.signingKey !== undefined) {
    if (f.signingKey !== 'vcek' && f.signingKey !== 'vlek') throw inputError('USAGE', `--signing-key must be vcek or vlek, got "${f.signingKey}"`);
    e.signingKey = f.signingKey;
  }
  if (f.expectCsp) e.cspIds = f.expectCsp;
  if (f.minGuestSvn !== undefined) e.minimumGuestSvn = intArg(f.minGuestSvn, '--min-guest-svn', 0xffffffff);
  if (f.minFirmware !== undefined) e.minimumFirmware = parseFirmware(f.minFirmware);
  if (f.vmpl !== undefined) e.vmpl = intArg(f.vmpl, '--vmpl', 3);
  if (f.smt === false) e.allowSmt = false;
  return e;
}

/** Fetches what is missing (VCEK, chain, CRL) from AMD KDS when --fetch is given. */
async function fetchMissing(report: Buffer, certs: Certificate[], crls: Crl[], f: VerifyFlags, product: SnpProduct | undefined, at: Date, io: CliContext['io']): Promise<void> {
  const parsed = parseSnpReport(report);
  const p = product ?? productFromCpuid(parsed.cpuid);
  if (!p) throw inputError('SNP_UNKNOWN_PRODUCT', 'a version 2 report does not name its product: pass --product Milan|Genoa|Turin to fetch from AMD KDS');
  const kind = parsed.keyInfo.signingKey === 'vlek' ? 'vlek' : 'vcek';
  // CRL freshness is judged at the verification time, like everything else.
  const opts: KdsOptions = { offline: f.offline ?? false, now: () => at };
  if (f.cacheDir) opts.cacheDir = f.cacheDir;
  if (f.kdsUrl) opts.baseUrl = f.kdsUrl;
  if (!f.json) opts.onEvent = (e) => e.kind !== 'cache-hit' && io.err(`coffer: ${e.kind === 'fetch' ? 'fetching' : 'retrying'} ${e.url}`);
  if (!certs.some((c) => !c.isCa)) {
    if (kind === 'vlek') throw inputError('SNP_NO_ENDORSEMENT_KEY', 'the report is signed by a VLEK, which AMD KDS does not serve: pass --vcek with the VLEK certificate from your cloud provider');
    const t = decodeTcb(parsed.reportedTcb, p);
    const tcb = { bl: t.bootloader, tee: t.tee, snp: t.snp, ucode: t.microcode, ...(t.fmc !== undefined ? { fmc: t.fmc } : {}) };
    certs.push(...parseCertificates(await fetchVcek(p, parsed.chipId, tcb, opts), 'VCEK from KDS'));
  }
  if (!certs.some((c) => c.isCa && !c.isSelfIssued)) certs.push(...parseCertificates(await fetchCertChain(p, kind, opts), 'KDS cert_chain'));
  if (crls.length === 0) crls.push(parseCrl(await fetchCrl(p, kind, opts)));
}

function checkLine(c: Check): string {
  const detail = !c.ok && (c.expected !== undefined || c.found !== undefined) ? ` (expected ${c.expected ?? '-'}, found ${c.found ?? '-'})` : '';
  return `  ${c.notChecked ? '--  ' : c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(28)} ${c.description}${detail}`;
}

export function registerSnp(program: Command, ctx: CliContext): void {
  const snp = program.command('snp').description('AMD SEV-SNP attestation reports');

  common(
    snp
      .command('verify')
      .description('verify an SEV-SNP report to the pinned AMD root, then check it against expected values')
      .argument('<report>', 'report file (raw 1184 bytes, hex, base64, configfs-tsm CBOR), a configfs-tsm report directory, or - for stdin')
      .option('--vcek <file>', 'VCEK or VLEK certificate (DER or PEM; a PEM bundle may include ASK and ARK)')
      .option('--chain <file>', 'ASK/ASVK and ARK (PEM bundle, as AMD KDS cert_chain serves it)')
      .option('--crl <file>', 'AMD CRL (DER or PEM) to check revocation')
      .option('--auxblob <file>', 'configfs-tsm auxblob (GHCB certificate table) holding the certificates')
      .option('--fetch', 'fetch a missing VCEK, chain and the CRL from AMD KDS (cached on disk)')
      .option('--offline', 'with --fetch: use only the on-disk cache, never the network')
      .option('--cache-dir <dir>', 'KDS cache directory (default $COFFER_CACHE_DIR/kds or ~/.cache/coffer/kds)')
      .option('--kds-url <url>', 'AMD KDS base URL (a mirror); what it serves is still verified against the pinned roots')
      .option('--product <name>', 'Milan, Genoa or Turin (needed to fetch for version 2 reports)')
      .option('--at <iso8601>', 'time at which certificates must be valid (default: now)')
      .option('--expect-measurement <hex>', 'accepted launch measurement (48 bytes; repeatable)', collect)
      .option('--expect-report-data <hex>', 'expected REPORT_DATA (up to 64 bytes, zero-padded)')
      .option('--expect-host-data <hex>', 'expected HOST_DATA (up to 32 bytes, zero-padded)')
      .option('--expect-id-key <hex>', 'accepted ID key digest (48 bytes; repeatable)', collect)
      .option('--expect-author-key <hex>', 'accepted author key digest (48 bytes; repeatable)', collect)
      .option('--expect-family-id <hex>', 'expected FAMILY_ID (up to 16 bytes)')
      .option('--expect-image-id <hex>', 'expected IMAGE_ID (up to 16 bytes)')
      .option('--min-tcb <list>', 'minimum REPORTED, COMMITTED and CURRENT TCB, e.g. bl=3,tee=0,snp=8,ucode=115 (fmc= on Turin)')
      .option('--min-launch-tcb <list>', 'minimum LAUNCH_TCB (the firmware the guest was launched on)')
      .option('--allow-provisional-firmware', 'accept running firmware that is not committed (can be rolled back)')
      .option('--allow-unknown-platform-info', 'accept PLATFORM_INFO bits Coffer does not know')
      .option('--signing-key <kind>', 'require a vcek or vlek signature')
      .option('--expect-csp <id>', 'accepted VLEK cloud provider id, e.g. CN=cc-us-east-2.amazonaws.com (repeatable)', collect)
      .option('--min-guest-svn <n>', 'minimum GUEST_SVN')
      .option('--min-firmware <major.minor>', 'minimum SEV-SNP firmware version, e.g. 1.55')
      .option('--vmpl <n>', 'required VMPL (0-3)')
      .option('--allow-debug', 'accept a guest whose policy allows debugging (never in production)')
      .option('--allow-migration-agent', 'accept a guest whose policy allows a migration agent')
      .option('--no-smt', 'refuse a guest whose policy allows SMT or whose platform has SMT enabled'),
  ).action(
    action(ctx, async (path: string, f: VerifyFlags) => {
      const exp = expectations(f);
      const at = parseTime(f.at);
      const product = parseProduct(f.product);
      const ev = loadEvidence(path, f.auxblob);
      const certs = [...ev.certificates];
      if (f.vcek) certs.push(...parseCertificates(readInput(f.vcek, 'VCEK file'), f.vcek));
      if (f.chain) certs.push(...parseCertificates(readInput(f.chain, 'chain file'), f.chain));
      const crls = f.crl ? [parseCrl(readInput(f.crl, 'CRL file'))] : [];
      if (f.fetch) await fetchMissing(ev.report, certs, crls, f, product, at, ctx.io);
      else if (f.offline) throw inputError('USAGE', '--offline only makes sense with --fetch');

      let verified;
      try {
        verified = verifySnpReport(ev.report, { at, certificates: certs, crls, ...(product ? { product } : {}) });
      } catch (e) {
        if (f.json && e instanceof CofferError) {
          let claims = null;
          try {
            claims = snpClaims(parseSnpReport(ev.report));
          } catch {
            claims = null;
          }
          ctx.io.out(toJson({ ok: false, claims, checks: e.details?.checks ?? [], error: { code: e.code, message: e.message } }));
          return e.kind === 'input' ? 2 : EXIT_FAILED;
        }
        throw e;
      }
      const validation = validateSnpReport(verified.report, verified.tcb, exp, { kind: verified.signingKey, cspId: verified.endorsement.cspId });
      const checks = [...verified.checks, ...validation];
      const failed = validation.find((c) => !c.ok);
      const claims = { ...snpClaims(verified.report, verified.product), cspId: verified.endorsement.cspId ?? null };
      const unchecked = checks.filter((c) => c.notChecked);
      if (f.json) {
        ctx.io.out(toJson({ ok: !failed, claims, checks, ...(failed ? { error: { code: failed.code, message: failed.description } } : {}) }));
        return failed ? EXIT_FAILED : EXIT_OK;
      }
      if (failed) {
        for (const c of validation.filter((v) => !v.ok)) ctx.io.err(`coffer: ${c.code ?? 'FAILED'}: ${c.description}${c.expected !== undefined ? ` (expected ${c.expected}, found ${c.found ?? '-'})` : ''}`);
        return EXIT_FAILED;
      }
      const anchor = verified.chain[verified.chain.length - 1];
      ctx.io.out(
        `VERIFIED  SEV-SNP report v${claims.version}, ${verified.product}, signed by ${verified.signingKey.toUpperCase()}, chain to ${anchor?.subjectCn ?? 'ARK'} (pinned)\n` +
          (unchecked.length > 0 ? `  NOT CHECKED: ${unchecked.map((c) => c.name).join(', ')} (see below; pass the matching --expect/--min/--crl options to appraise them)\n` : '') +
          `  measurement ${claims.measurement}\n  report data ${claims.reportData}\n` +
          checks.map(checkLine).join('\n'),
      );
      return EXIT_OK;
    }),
  );

  common(
    snp
      .command('show')
      .description('decode an SEV-SNP report for a person (does not verify it)')
      .argument('<report>', 'report file (raw, hex, base64, configfs-tsm CBOR), a configfs-tsm directory, or -')
      .option('--product <name>', 'Milan, Genoa or Turin, to decode TCBs of a version 2 report'),
  ).action(
    action(ctx, (path: string, f: { json?: boolean; product?: string }) => {
      const ev = loadEvidence(path, undefined);
      const report = parseSnpReport(ev.report);
      const product = parseProduct(f.product);
      if (f.json) {
        ctx.io.out(toJson({ ok: true, verified: false, form: ev.form, claims: snpClaims(report, product), certificates: ev.certificates.map((c) => ({ subject: c.subjectCn, issuer: c.issuerCn, sha256: c.sha256 })) }));
      } else {
        ctx.io.out(`SEV-SNP report (${ev.form}; decoded only, NOT verified: run \`coffer snp verify\`)\n${formatSnpReport(report, product)}`);
        if (ev.certificates.length > 0) ctx.io.out(`Certificates in auxblob: ${ev.certificates.map((c) => c.subjectCn).join(', ')}`);
      }
      return EXIT_OK;
    }),
  );
}
