import { readFile } from 'node:fs/promises';
import { CofferError, verifyError } from '../errors.js';
import { akFingerprint } from '../evidence/tpm/ak.js';
import { parseTpmtPublic } from '../evidence/tpm/structures.js';
import type { EvidenceSource } from './evidence.js';
import { runTool } from './luks.js';
import { sanitize, silentLog, type AgentLog } from './log.js';
import { openTpm, parseSealedBlob, parseTpmTarget, type Tpm } from './tpm/index.js';

/**
 * The vTPM in the agent: TPM quotes as KBS evidence (`tee: "tpm"`, the shape the broker's TPM
 * verifier reads), and sealing of the volume key to PCR values, kept in the volume's own LUKS2
 * header as a token, so that a reboot with unchanged PCRs can unlock without the broker.
 */

/** All 24 SHA-256 PCRs: the broker's policy decides which matter. */
export const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

async function withTpm<T>(target: string, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  const tpm = await openTpm(parseTpmTarget(target));
  try {
    return await fn(tpm);
  } finally {
    await tpm.close();
  }
}

export interface TpmSourceOptions {
  /** /dev/tpmrm0, or swtpm:host=H,port=P. */
  target: string;
  pcrs?: readonly number[];
  /** TCG event log to send along (default: none; e.g. /sys/kernel/security/tpm0/binary_bios_measurements). */
  eventLogPath?: string;
  log?: AgentLog;
}

/** Evidence from the TPM: a quote whose qualifying data is the 64 bytes of report data, made with the fixed-template AK. */
export function tpmSource(o: TpmSourceOptions): EvidenceSource {
  const log = o.log ?? silentLog;
  return {
    tee: 'tpm',
    name: 'tpm',
    async collect(reportData: Buffer): Promise<unknown> {
      const q = await withTpm(o.target, (tpm) => tpm.quote(reportData, { sha256: o.pcrs ?? ALL_PCRS }));
      const bank = q.pcrs.get('sha256') ?? new Map<number, Buffer>();
      const eventlog = o.eventLogPath ? await readFile(o.eventLogPath).catch((e: NodeJS.ErrnoException) => {
        throw verifyError('TPM_NO_EVENTLOG', `cannot read the event log ${o.eventLogPath}: ${e.code ?? e.message}`);
      }) : undefined;
      log.info('evidence', `TPM quote over ${bank.size} SHA-256 PCRs (AK name ${q.akName.toString('hex').slice(0, 16)}...)${eventlog ? `, event log ${eventlog.length} bytes` : ''}`);
      return {
        tpm_quote: { message: q.attest.toString('base64'), signature: q.signature.toString('base64') },
        ak_public: q.akPublic.toString('base64'),
        pcr_banks: { sha256: Object.fromEntries([...bank].map(([i, v]) => [String(i), v.toString('hex')])) },
        ...(eventlog ? { eventlog: eventlog.toString('base64') } : {}),
      };
    },
  };
}

/**
 * The AK's public key (PEM): what an operator pins at the broker (trusted key purpose tpm-ak);
 * its fingerprint (SHA-256 of the SPKI DER) and TPM name: what a per-VM volume identity names
 * (identity.tpm.ak).
 */
export async function tpmAkInfo(target: string): Promise<{ pem: string; sha256: string; name: string }> {
  const q = await withTpm(target, (tpm) => tpm.quote(Buffer.alloc(32, 1), { sha256: [0] }));
  const pub = parseTpmtPublic(q.akPublic);
  return { pem: pub.key.export({ type: 'spki', format: 'pem' }).toString(), sha256: akFingerprint(pub.key), name: pub.name.toString('hex') };
}

/** The AK's public key (PEM). */
export async function tpmAkPem(target: string): Promise<string> {
  return (await tpmAkInfo(target)).pem;
}

// -------------------------------------------------------------------------------------------
// Sealing

/** The LUKS2 token type holding the sealed key. */
export const SEAL_TOKEN_TYPE = 'coffer-tpm2';

export interface SealSettings {
  target: string;
  pcrs: readonly number[];
  cryptsetup?: string;
}

interface LuksToken {
  id: string;
  type: string;
  blob?: string;
}

async function sealTokens(device: string, cryptsetup: string): Promise<LuksToken[]> {
  const r = await runTool(cryptsetup, ['luksDump', '--dump-json-metadata', device]);
  if (r.code !== 0) throw verifyError('VOLUME_DUMP_FAILED', `cryptsetup luksDump ${device} failed (exit ${r.code ?? r.signal}): ${sanitize(r.stderr.trim(), 300)}`);
  let meta: { tokens?: Record<string, { type?: unknown; 'coffer-blob'?: unknown }> };
  try {
    meta = JSON.parse(r.stdout) as typeof meta;
  } catch {
    throw verifyError('VOLUME_DUMP_FAILED', `cryptsetup luksDump ${device} did not print JSON`);
  }
  return Object.entries(meta.tokens ?? {})
    .filter(([, t]) => t.type === SEAL_TOKEN_TYPE)
    .map(([id, t]) => ({ id, type: SEAL_TOKEN_TYPE, ...(typeof t['coffer-blob'] === 'string' ? { blob: t['coffer-blob'] } : {}) }));
}

/**
 * The key unsealed by the TPM from the volume's coffer-tpm2 token, or undefined (no token, or
 * the TPM refuses: PCRs changed) with the reason logged. The caller then asks the broker.
 */
export async function unsealFromVolume(device: string, s: SealSettings, log: AgentLog): Promise<Buffer | undefined> {
  const tokens = await sealTokens(device, s.cryptsetup ?? 'cryptsetup');
  const t = tokens.find((x) => x.blob !== undefined);
  if (!t?.blob) {
    log.info('tpm', `${device} has no ${SEAL_TOKEN_TYPE} token: the broker is asked`);
    return undefined;
  }
  try {
    const blob = Buffer.from(t.blob as string, 'base64');
    // The header is not authenticated: a token sealed (by whoever can reach the TPM) to PCRs other
    // than the configured ones would open without those PCRs being what they should be.
    const sealedTo = parseSealedBlob(blob).selection.find((x) => x.hashName === 'sha256')?.pcrs ?? [];
    const missing = s.pcrs.filter((p) => !sealedTo.includes(p));
    if (missing.length > 0) throw verifyError('TPM_SEAL_PCRS_MISMATCH', `the token is sealed to sha256:${sealedTo.join(',') || '(none)'}, which leaves out the configured PCR(s) ${missing.join(',')}`);
    const key = await withTpm(s.target, (tpm) => tpm.unseal(blob));
    log.info('tpm', `volume key unsealed by the TPM (token ${t.id}): PCRs unchanged since it was sealed`);
    return key;
  } catch (e) {
    log.warn('tpm', `the TPM did not unseal the key (${e instanceof CofferError ? `${e.code}: ${e.message}` : (e as Error).message}): the broker is asked`);
    return undefined;
  }
}

/** Seals `key` to the current values of the PCRs and stores it as the volume's only coffer-tpm2 token. */
export async function sealToVolume(device: string, key: Buffer, s: SealSettings, log: AgentLog): Promise<void> {
  const cryptsetup = s.cryptsetup ?? 'cryptsetup';
  const blob = await withTpm(s.target, (tpm) => tpm.seal(key, { sha256: s.pcrs }));
  const old = await sealTokens(device, cryptsetup);
  const token = Buffer.from(JSON.stringify({ type: SEAL_TOKEN_TYPE, keyslots: [], 'coffer-blob': blob.toString('base64'), 'coffer-pcrs': s.pcrs.map((p) => `sha256:${p}`) }));
  const r = await runTool(cryptsetup, ['token', 'import', '--json-file=-', device], token);
  if (r.code !== 0) throw verifyError('VOLUME_TOKEN_FAILED', `cryptsetup token import ${device} failed (exit ${r.code ?? r.signal}): ${sanitize(r.stderr.trim(), 300)}`);
  for (const t of old) {
    const d = await runTool(cryptsetup, ['token', 'remove', '--token-id', t.id, device]);
    if (d.code !== 0) log.warn('tpm', `could not remove the old ${SEAL_TOKEN_TYPE} token ${t.id}: ${sanitize(d.stderr.trim(), 200)}`);
  }
  log.info('tpm', `volume key sealed to the TPM under PCRs sha256:${s.pcrs.join(',')} and stored in the LUKS2 header`);
}
