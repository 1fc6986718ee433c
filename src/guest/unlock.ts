import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { CofferError, verifyError } from '../errors.js';
import type { AgentConfig } from './config.js';
import type { EvidenceSource } from './evidence.js';
import { formatLuks, makeFilesystem, openLuks, probeVolume } from './luks.js';
import type { AgentLog } from './log.js';
import { BrokerError, fetchResourceWithSession, reportVolumeInitialized, type BrokerTls, type ReleaseSession, type VolumeReleaseInfo } from './rcar-client.js';
import { sealToVolume, unsealFromVolume } from './tpm-agent.js';

/**
 * The unlock: look at the volume, fetch its key from the broker (retrying what can succeed later,
 * within the boot deadline), then open it, or on first boot format a blank volume and open it.
 * Any throw here ends in the failure action (agent.ts). The key lives in one buffer, passed to
 * cryptsetup on stdin and zeroed when done, whatever happened.
 *
 * The host controls the disk and may present a blank one on any boot. For a provisioned volume
 * (`volumes/<id>/key`) the release says, authenticated, whether a VM already reported formatting
 * it under this key version: then a blank disk is a reset (the data withheld or rolled back to
 * nothing) and is refused with VOLUME_RESET, never formatted. Only a first boot formats, and then
 * reports it (POST /kbs/v0/volume-initialized); a LUKS2 volume the broker does not yet know as
 * initialized is reported once it opens (a report lost on first boot is made up for by the next).
 */

export interface UnlockDeps {
  log: AgentLog;
  evidence: EvidenceSource;
  /** Milliseconds since the epoch; the boot deadline is measured on it. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** In [0, 1): the backoff jitter. */
  random?: () => number;
}

export interface UnlockOutcome {
  action: 'opened' | 'formatted';
  device: string;
  /** /dev/mapper/<name>, or undefined in test-passphrase mode (nothing mapped). */
  mapped: string | undefined;
  /** Broker attempts made (0 when the TPM unsealed the key). */
  attempts: number;
  keySource: 'broker' | 'tpm';
  /**
   * For a provisioned volume key: what the broker said, and whether this boot's report that it is
   * initialized was recorded (undefined: nothing to report, it already was).
   */
  volume?: VolumeReleaseInfo & { reported?: boolean };
}

/** Delay before attempt `n + 1` (n ≥ 1): initial · factor^(n-1), capped, with the jitter fraction drawn at random. */
export function backoffMs(n: number, r: AgentConfig['retry'], random: number): number {
  const base = Math.min(r.maxSeconds, r.initialSeconds * r.factor ** (n - 1)) * 1000;
  return Math.round(base * (1 - r.jitter + r.jitter * random));
}

function brokerTls(cfg: AgentConfig): BrokerTls | undefined {
  if (cfg.broker.pinSha256 !== undefined) return { pinSha256: cfg.broker.pinSha256 };
  if (cfg.broker.ca !== undefined) {
    try {
      return { ca: readFileSync(cfg.broker.ca) };
    } catch (e) {
      throw verifyError('AGENT_NO_CA', `cannot read the broker CA ${cfg.broker.ca}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return undefined;
}

/** The key, or the reason there is none: non-transient refusals end at once, transient ones at the deadline. */
export async function fetchKeyWithRetry(cfg: AgentConfig, deps: UnlockDeps, deadline: number): Promise<{ key: Buffer; attempts: number; volume?: VolumeReleaseInfo; session: ReleaseSession }> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = deps.random ?? Math.random;
  const tls = brokerTls(cfg);
  let last = '';
  for (let attempt = 1; ; attempt++) {
    const remaining = deadline - now();
    if (remaining <= 0) throw verifyError('AGENT_DEADLINE', `no key within the boot deadline of ${cfg.deadlineSeconds} s (${attempt - 1} attempt(s)); last error: ${last}`);
    try {
      const got = await fetchResourceWithSession({
        broker: cfg.broker.url,
        resource: cfg.volume.resource,
        evidence: deps.evidence,
        ...(tls ? { tls } : {}),
        allowInsecureHttp: cfg.broker.allowInsecureHttp,
        timeoutMs: Math.max(1, Math.min(cfg.broker.requestTimeoutSeconds * 1000, remaining)),
        log: deps.log,
      });
      return { key: got.secret, attempts: attempt, ...(got.volume ? { volume: got.volume } : {}), session: got.session };
    } catch (e) {
      if (!(e instanceof BrokerError) || !e.transient) throw e;
      last = `${e.code}: ${e.message}`;
      const delay = backoffMs(attempt, cfg.retry, random());
      if (now() + delay >= deadline) throw verifyError('AGENT_DEADLINE', `no key within the boot deadline of ${cfg.deadlineSeconds} s (${attempt} attempt(s)); last error: ${last}`);
      deps.log.warn('fetch', `attempt ${attempt} failed (${last}); retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
    }
  }
}

/**
 * Reports the volume initialized in the session its key was released to, retrying transient
 * failures within the boot deadline. Never throws: the volume is open and sound, and the next boot
 * reports it if this one could not (the broker still says not initialized, the volume is LUKS2).
 */
async function reportWithRetry(cfg: AgentConfig, deps: UnlockDeps, deadline: number, session: ReleaseSession, volume: VolumeReleaseInfo): Promise<boolean> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = deps.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    const remaining = deadline - now();
    try {
      if (remaining <= 0) throw new BrokerError('AGENT_DEADLINE', 'the boot deadline passed', { transient: false });
      await reportVolumeInitialized(session, volume, { timeoutMs: Math.max(1, Math.min(cfg.broker.requestTimeoutSeconds * 1000, remaining)), log: deps.log });
      return true;
    } catch (e) {
      const line = describeError(e);
      const delay = backoffMs(attempt, cfg.retry, random());
      if (!(e instanceof BrokerError) || !e.transient || now() + delay >= deadline) {
        deps.log.warn('initialized', `the broker did not record volume ${volume.id} as initialized (${line}); the boot continues and the next boot reports it. Until then a blank disk presented for this volume would be formatted again`);
        return false;
      }
      deps.log.warn('initialized', `report attempt ${attempt} failed (${line}); retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
    }
  }
}

/** udev may create the device node after the unit starts: wait for it, within the deadline. */
async function waitForDevice(device: string, deadline: number, deps: UnlockDeps): Promise<void> {
  const now = deps.now ?? Date.now;
  let logged = false;
  for (;;) {
    try {
      await access(device);
      return;
    } catch {
      if (now() >= deadline) throw verifyError('VOLUME_MISSING', `${device} did not appear before the boot deadline`);
      if (!logged) deps.log.info('volume', `waiting for ${device} to appear`);
      logged = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function unlock(cfg: AgentConfig, deps: UnlockDeps): Promise<UnlockOutcome> {
  const now = deps.now ?? Date.now;
  const deadline = now() + cfg.deadlineSeconds * 1000;
  const { log } = deps;
  const v = cfg.volume;
  log.info('start', `unlocking ${v.device} as ${v.name} with key ${v.resource} from ${cfg.broker.url} (evidence ${deps.evidence.name}, deadline ${cfg.deadlineSeconds} s, mode ${v.unlock})`);

  await waitForDevice(v.device, deadline, deps);
  // Looked at before the broker is asked: a volume we would refuse costs no key release.
  const before = await probeVolume(v.device);
  if (before.kind === 'other') throw verifyError('VOLUME_UNKNOWN_CONTENT', `${v.device} is neither LUKS2 nor blank (${before.what}): refusing to open or format it`);
  if (before.kind === 'blank' && !v.formatBlank) throw verifyError('VOLUME_BLANK', `${v.device} is blank and formatBlank is false: refusing to format it`);
  log.info('volume', before.kind === 'luks2' ? `${v.device} holds a LUKS2 header (${before.size} bytes)` : `${v.device} is blank (${before.size} bytes): first boot, it will be formatted once the key is released`);

  const opts = { cryptsetup: v.cryptsetup, pbkdf: v.pbkdf };
  const mapped = v.unlock === 'open' ? `/dev/mapper/${v.name}` : undefined;
  const seal = cfg.tpmSeal?.enabled ? { target: cfg.tpmSeal.device, pcrs: cfg.tpmSeal.pcrs, cryptsetup: v.cryptsetup } : undefined;

  if (seal && before.kind === 'luks2') {
    const sealed = await unsealFromVolume(v.device, seal, log);
    if (sealed) {
      try {
        await openLuks(v.device, v.name, sealed, v.unlock, opts);
        log.info('open', mapped ? `${v.device} opened as ${mapped} with the TPM-sealed key` : `${v.device}: the TPM-sealed key opens a LUKS2 key slot (test-passphrase: nothing mapped)`);
        return { action: 'opened', device: v.device, mapped, attempts: 0, keySource: 'tpm' };
      } catch (e) {
        if (!(e instanceof CofferError && e.code === 'VOLUME_KEY_REJECTED')) throw e;
        log.warn('tpm', 'the TPM-sealed key no longer opens the volume (re-provisioned?): the broker is asked');
      } finally {
        sealed.fill(0);
      }
    }
  }

  const { key, attempts, volume, session } = await fetchKeyWithRetry(cfg, deps, deadline);
  // Whether the broker knows the volume initialized once this boot is done (reported below).
  let known = volume?.initialized === true;
  let reported: boolean | undefined;
  const report = async () => {
    if (!volume || volume.initialized) return;
    reported = await reportWithRetry(cfg, deps, deadline, session, volume);
    known = reported;
  };
  const volumeOut = () => (volume ? { volume: { ...volume, ...(reported !== undefined ? { reported } : {}) } } : {});
  // After a successful broker unlock: a failure to seal costs the next boot a broker round trip, nothing more.
  const sealAfter = async () => {
    if (!seal) return;
    // A boot that unseals from the TPM never asks the broker: it must not begin before the broker
    // records the volume initialized, or a reset disk would go unnoticed on every later boot.
    if (volume && !known) {
      log.warn('tpm', `the key is not sealed to the TPM until the broker records volume ${volume.id} as initialized: the next boot asks the broker`);
      return;
    }
    try {
      await sealToVolume(v.device, key, seal, log);
    } catch (e) {
      log.warn('tpm', `the key was not sealed to the TPM: ${describeError(e)}`);
    }
  };
  try {
    if (key.length < v.minKeyBytes) throw verifyError('VOLUME_KEY_TOO_SHORT', `the released key is ${key.length} bytes; at least ${v.minKeyBytes} are required`);
    if (before.kind === 'luks2') {
      await openLuks(v.device, v.name, key, v.unlock, opts);
      log.info('open', mapped ? `${v.device} opened as ${mapped}` : `${v.device}: the released key opens a LUKS2 key slot (test-passphrase: nothing mapped)`);
      // The key opens it, so it was formatted under this key version: a report an earlier boot lost.
      await report();
      await sealAfter();
      return { action: 'opened', device: v.device, mapped, attempts, keySource: 'broker', ...volumeOut() };
    }
    if (volume?.initialized) {
      throw verifyError(
        'VOLUME_RESET',
        `${v.device} is blank, but the broker says volume ${volume.id} (key version ${volume.keyVersion}) was already initialized by an earlier boot: the host presented a blank disk in place of the volume's data (reset or rolled back). Refusing to format it; nothing was written. Give the VM its disk back, or, to start over with an empty volume on purpose, re-provision the volume at the broker (coffer broker volume provision ${volume.id} --reprovision with its identity options): that destroys the old key and its data for good`,
      );
    }
    if (!volume) log.warn('volume', `${v.resource} is not a provisioned volume key (volumes/<id>/key): the broker cannot tell this first boot from a host that presented a blank disk in place of the data`);
    // Time passed while the broker was asked: look again right before writing anything.
    const again = await probeVolume(v.device);
    if (again.kind !== 'blank') throw verifyError('VOLUME_CHANGED', `${v.device} was blank but is not any more (${again.kind === 'other' ? again.what : again.kind}): refusing to format it`);
    await formatLuks(v.device, key, opts);
    log.info('format', `${v.device} formatted as LUKS2 with the released key`);
    await openLuks(v.device, v.name, key, v.unlock, opts);
    if (mapped) {
      await makeFilesystem(mapped, v.filesystem);
      log.info('open', `${v.device} opened as ${mapped}${v.filesystem !== 'none' ? `, ${v.filesystem} created` : ''}`);
    } else {
      log.info('open', `${v.device}: the released key opens the new key slot (test-passphrase: nothing mapped, no filesystem made)`);
    }
    await report();
    await sealAfter();
    return { action: 'formatted', device: v.device, mapped, attempts, keySource: 'broker', ...volumeOut() };
  } finally {
    key.fill(0);
  }
}

/** One line for the operator: `CODE: message`. */
export function describeError(e: unknown): string {
  if (e instanceof CofferError) return `${e.code}: ${e.message}`;
  return `INTERNAL: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}`;
}
