import { timingSafeEqual } from 'node:crypto';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { toHex } from '../../bytes/hex.js';
import { verifyError } from '../../errors.js';
import type { SnpReport } from './report.js';
import { formatTcb, tcbComponents, type SnpTcbSet, type TcbComponent, type TcbVersion } from './tcb.js';

/**
 * What a verified report is expected to say. Every field is optional except the safe defaults:
 * a debuggable guest and a guest with a migration agent are refused unless explicitly allowed.
 */
export interface SnpExpectations {
  /** Accepted launch measurements (any one). */
  measurements?: readonly Buffer[];
  /** Expected REPORT_DATA; shorter values are zero-padded to 64 bytes (a 32- or 48-byte hash, say). */
  reportData?: Buffer;
  hostData?: Buffer;
  /**
   * Minimum per component of the REPORTED, COMMITTED and CURRENT TCB. (REPORTED is what the VCEK
   * certifies; once it meets the minimum the firmware is trusted, and so are the others it reports.)
   */
  minimumTcb?: Partial<Record<TcbComponent, number>>;
  /** Minimum per component of the LAUNCH_TCB: the firmware the guest was launched on. */
  minimumLaunchTcb?: Partial<Record<TcbComponent, number>>;
  /** Accept firmware that is running but not committed (CURRENT version ≠ COMMITTED). Default false. */
  allowProvisionalFirmware?: boolean;
  /** Accept PLATFORM_INFO bits Coffer does not know. Default false. */
  allowUnknownPlatformInfo?: boolean;
  /** Require this kind of endorsement key. */
  signingKey?: 'vcek' | 'vlek';
  /** Accepted VLEK cloud-provider ids (the VLEK's cspId extension), e.g. "CN=cc-us-east-2.amazonaws.com". */
  cspIds?: readonly string[];
  /** Allow the DEBUG policy bit (default false). */
  allowDebug?: boolean;
  /** Allow the MIGRATE_MA policy bit (default false). */
  allowMigrationAgent?: boolean;
  /** When false, neither the guest policy may allow SMT nor the platform have it enabled. */
  allowSmt?: boolean;
  /** Exact VMPL the report must come from (0 is the most privileged). */
  vmpl?: number;
  /** Accepted ID key digests (SHA-384 of the ID key) and author key digests. */
  idKeyDigests?: readonly Buffer[];
  authorKeyDigests?: readonly Buffer[];
  minimumGuestSvn?: number;
  familyId?: Buffer;
  imageId?: Buffer;
  /** Minimum firmware version of the running SEV-SNP firmware, e.g. {major: 1, minor: 55}. */
  minimumFirmware?: { major: number; minor: number };
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function padTo(b: Buffer, n: number): Buffer {
  return b.length >= n ? b : Buffer.concat([b, Buffer.alloc(n - b.length)]);
}

function bytesCheck(checks: Check[], name: string, code: string, what: string, found: Buffer, accepted: readonly Buffer[]): void {
  const ok = accepted.some((a) => equal(a, found));
  const expected = accepted.map(toHex).join(' | ');
  checks.push(ok ? pass(name, `${what} matches`, { expected, found: toHex(found) }) : fail(name, code, `${what} is not an accepted value`, { expected, found: toHex(found) }));
}

/**
 * Evaluates every expectation and returns one check per rule (all rules are evaluated, so a
 * denial lists everything that is wrong). Pure: no I/O, no clock.
 */
export function validateSnpReport(report: SnpReport, tcb: SnpTcbSet, exp: SnpExpectations, signer?: { kind: 'vcek' | 'vlek'; cspId: string | undefined }): Check[] {
  const checks: Check[] = [];
  if (exp.measurements && exp.measurements.length > 0) {
    bytesCheck(checks, 'snp.measurement', 'SNP_MEASUREMENT_MISMATCH', 'launch MEASUREMENT', report.measurement, exp.measurements);
  } else {
    checks.push(notChecked('snp.measurement', 'no expected launch measurement was given: any image is accepted'));
  }
  if (!exp.reportData) {
    checks.push(notChecked('snp.report-data', 'no expected REPORT_DATA was given: freshness and key binding are not established'));
  } else {
    if (exp.reportData.length > 64) {
      checks.push(fail('snp.report-data', 'SNP_REPORT_DATA_MISMATCH', `expected report data is ${exp.reportData.length} bytes, longer than the 64-byte field`));
    } else {
      bytesCheck(checks, 'snp.report-data', 'SNP_REPORT_DATA_MISMATCH', 'REPORT_DATA', report.reportData, [padTo(exp.reportData, 64)]);
    }
  }
  if (exp.hostData) bytesCheck(checks, 'snp.host-data', 'SNP_HOST_DATA_MISMATCH', 'HOST_DATA', report.hostData, [padTo(exp.hostData, 32)]);
  if (exp.familyId) bytesCheck(checks, 'snp.family-id', 'SNP_FAMILY_ID_MISMATCH', 'FAMILY_ID', report.familyId, [padTo(exp.familyId, 16)]);
  if (exp.imageId) bytesCheck(checks, 'snp.image-id', 'SNP_IMAGE_ID_MISMATCH', 'IMAGE_ID', report.imageId, [padTo(exp.imageId, 16)]);
  if (exp.idKeyDigests && exp.idKeyDigests.length > 0) {
    bytesCheck(checks, 'snp.id-key', 'SNP_ID_KEY_MISMATCH', 'ID_KEY_DIGEST', report.idKeyDigest, exp.idKeyDigests);
  }
  if (exp.authorKeyDigests && exp.authorKeyDigests.length > 0) {
    if (!report.keyInfo.authorKeyEn) {
      checks.push(fail('snp.author-key', 'SNP_AUTHOR_KEY_MISMATCH', 'an author key is required but the guest was launched without one (AUTHOR_KEY_EN = 0)'));
    } else {
      bytesCheck(checks, 'snp.author-key', 'SNP_AUTHOR_KEY_MISMATCH', 'AUTHOR_KEY_DIGEST', report.authorKeyDigest, exp.authorKeyDigests);
    }
  }

  const { policy } = report;
  checks.push(
    policy.debug && !exp.allowDebug
      ? fail('snp.policy.debug', 'SNP_DEBUG_ALLOWED', 'guest policy allows debugging: the host can decrypt the guest (DEBUG = 1)', { expected: 'DEBUG = 0', found: 'DEBUG = 1' })
      : pass('snp.policy.debug', policy.debug ? 'guest policy allows debugging (explicitly accepted)' : 'guest policy forbids debugging', { found: `DEBUG = ${policy.debug ? 1 : 0}` }),
  );
  checks.push(
    policy.migrateMa && !exp.allowMigrationAgent
      ? fail('snp.policy.migration-agent', 'SNP_MIGRATION_AGENT_ALLOWED', 'guest policy allows a migration agent (MIGRATE_MA = 1)', { expected: 'MIGRATE_MA = 0', found: 'MIGRATE_MA = 1' })
      : pass('snp.policy.migration-agent', policy.migrateMa ? 'migration agent allowed (explicitly accepted)' : 'guest policy forbids a migration agent', { found: `MIGRATE_MA = ${policy.migrateMa ? 1 : 0}` }),
  );
  if (exp.allowSmt === false) {
    const smt = policy.smt || report.platformInfo.smtEnabled;
    checks.push(
      smt
        ? fail('snp.smt', 'SNP_SMT_ENABLED', `SMT is not allowed, but ${policy.smt ? 'the guest policy allows it' : 'the platform has it enabled'}`, { expected: 'SMT off', found: `policy SMT=${policy.smt ? 1 : 0}, platform SMT_EN=${report.platformInfo.smtEnabled ? 1 : 0}` })
        : pass('snp.smt', 'SMT disallowed by policy and disabled on the platform'),
    );
  }
  if (exp.vmpl !== undefined) {
    checks.push(
      report.vmpl === exp.vmpl
        ? pass('snp.vmpl', `report requested at VMPL ${report.vmpl}`, { expected: String(exp.vmpl), found: String(report.vmpl) })
        : fail('snp.vmpl', 'SNP_VMPL_MISMATCH', `report requested at VMPL ${report.vmpl}, expected ${exp.vmpl}`, { expected: String(exp.vmpl), found: String(report.vmpl) }),
    );
  }
  if (exp.minimumGuestSvn !== undefined) {
    checks.push(
      report.guestSvn >= exp.minimumGuestSvn
        ? pass('snp.guest-svn', `GUEST_SVN ${report.guestSvn} ≥ ${exp.minimumGuestSvn}`)
        : fail('snp.guest-svn', 'SNP_GUEST_SVN_TOO_LOW', `GUEST_SVN ${report.guestSvn} is below the minimum ${exp.minimumGuestSvn}`, { expected: `≥ ${exp.minimumGuestSvn}`, found: String(report.guestSvn) }),
    );
  }
  if (exp.minimumTcb) {
    checks.push(minimumTcbCheck('snp.tcb.minimum', exp.minimumTcb, [['REPORTED_TCB', tcb.reported], ['COMMITTED_TCB', tcb.committed], ['CURRENT_TCB', tcb.current]]));
  } else {
    checks.push(notChecked('snp.tcb.minimum', 'no minimum TCB was given: firmware with known vulnerabilities is accepted'));
  }
  if (exp.minimumLaunchTcb) {
    checks.push(minimumTcbCheck('snp.tcb.launch-minimum', exp.minimumLaunchTcb, [['LAUNCH_TCB', tcb.launch]]));
  }
  {
    const cur = report.currentVersion;
    const com = report.committedVersion;
    const same = cur.major === com.major && cur.minor === com.minor && cur.build === com.build;
    const found = `current ${cur.major}.${cur.minor}.${cur.build}, committed ${com.major}.${com.minor}.${com.build}`;
    checks.push(
      same || exp.allowProvisionalFirmware
        ? pass('snp.firmware.committed', same ? 'the running SEV-SNP firmware is committed' : 'provisional (uncommitted) firmware explicitly accepted', { found })
        : fail('snp.firmware.committed', 'SNP_PROVISIONAL_FIRMWARE', 'the running SEV-SNP firmware is provisional: it can be rolled back to the committed version', { expected: 'current = committed', found }),
    );
  }
  const unknown = report.platformInfo.unknownBits;
  if (unknown !== 0n) {
    const found = `0x${unknown.toString(16)}`;
    checks.push(
      exp.allowUnknownPlatformInfo
        ? pass('snp.platform-info', `unknown PLATFORM_INFO bits ${found} explicitly accepted`, { found })
        : fail('snp.platform-info', 'SNP_PLATFORM_INFO_UNKNOWN', `PLATFORM_INFO sets bits Coffer does not know (${found}); they may describe the platform's security state`, { expected: '0x0', found }),
    );
  }
  if (exp.signingKey) {
    const kind = signer?.kind ?? (report.keyInfo.signingKey === 'none' ? undefined : report.keyInfo.signingKey);
    checks.push(
      kind === exp.signingKey
        ? pass('snp.signing-key.required', `signed by a ${kind.toUpperCase()} as required`)
        : fail('snp.signing-key.required', 'SNP_WRONG_KEY_TYPE', `a ${exp.signingKey.toUpperCase()} signature is required, the report is signed by ${kind ? `a ${kind.toUpperCase()}` : 'no key'}`, { expected: exp.signingKey, found: kind ?? 'none' }),
    );
  }
  if (exp.cspIds && exp.cspIds.length > 0) {
    const csp = signer?.kind === 'vlek' ? signer.cspId : undefined;
    const ok = csp !== undefined && exp.cspIds.includes(csp);
    checks.push(
      ok
        ? pass('snp.csp', `VLEK loaded for ${csp}`, { found: csp })
        : fail('snp.csp', 'SNP_CSP_MISMATCH', csp === undefined ? 'a VLEK from an accepted cloud provider is required, but the report is not VLEK-signed (or its VLEK names no provider)' : `the VLEK was loaded for ${csp}, which is not accepted`, { expected: exp.cspIds.join(' | '), found: csp ?? '-' }),
    );
  }
  if (exp.minimumFirmware) {
    const { major, minor } = report.currentVersion;
    const min = exp.minimumFirmware;
    const ok = major > min.major || (major === min.major && minor >= min.minor);
    const found = `${major}.${minor} build ${report.currentVersion.build}`;
    checks.push(ok ? pass('snp.firmware', `firmware ${found} ≥ ${min.major}.${min.minor}`, { found }) : fail('snp.firmware', 'SNP_FIRMWARE_TOO_OLD', `firmware ${found} is older than ${min.major}.${min.minor}`, { expected: `≥ ${min.major}.${min.minor}`, found }));
  }
  return checks;
}

function minimumTcbCheck(name: string, minimum: Partial<Record<TcbComponent, number>>, values: [string, TcbVersion][]): Check {
  const expected = Object.entries(minimum).map(([k, v]) => `${k}≥${v}`).join(' ');
  const found = values.map(([label, t]) => `${label} ${formatTcb(t)}`).join('; ');
  const first = values[0]?.[1];
  const missing = first ? (Object.keys(minimum) as TcbComponent[]).filter((k) => first[k] === undefined) : [];
  if (missing.length > 0) return fail(name, 'SNP_TCB_TOO_LOW', `this product has no ${missing.join(', ')} TCB component`, { expected, found });
  const low: string[] = [];
  for (const [label, t] of values) {
    for (const [k, v] of tcbComponents(t)) {
      const min = minimum[k];
      if (min !== undefined && v < min) low.push(`${label} ${k} (${v} < ${min})`);
    }
  }
  return low.length === 0
    ? pass(name, `${values.map(([l]) => l).join(', ')} meet the minimum for every component`, { expected, found })
    : fail(name, 'SNP_TCB_TOO_LOW', `TCB below the minimum: ${low.join(', ')}`, { expected, found });
}

/** Throws a CofferError naming the first failed check (all checks are in `details.checks`). */
export function assertChecks(checks: Check[]): void {
  const failed = checks.find((c) => !c.ok);
  if (failed) throw verifyError(failed.code ?? 'VALIDATION_FAILED', failed.description, { checks });
}
