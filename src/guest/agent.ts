import type { AgentConfig } from './config.js';
import { configfsTsmSource, type EvidenceSource } from './evidence.js';
import { tpmSource } from './tpm-agent.js';
import { runFailureAction } from './failure.js';
import type { AgentLog } from './log.js';
import { describeError, unlock, type UnlockDeps, type UnlockOutcome } from './unlock.js';

/**
 * `coffer agent unlock`: the unlock, and on any failure the failure action. Returns the exit
 * status: 0 unlocked; 1 failed (after the failure action ran, or tried to: systemd's
 * FailureAction= takes over from a non-zero exit).
 */

export function evidenceSourceFor(cfg: AgentConfig, log: AgentLog): EvidenceSource {
  if (cfg.evidence.source === 'configfs-tsm') {
    return configfsTsmSource({ root: cfg.evidence.tsmRoot, ...(cfg.evidence.privlevel !== undefined ? { privlevel: cfg.evidence.privlevel } : {}), log });
  }
  return tpmSource({ target: cfg.evidence.tpmDevice, ...(cfg.evidence.tpmPcrs ? { pcrs: cfg.evidence.tpmPcrs } : {}), ...(cfg.evidence.tpmEventLog ? { eventLogPath: cfg.evidence.tpmEventLog } : {}), log });
}

export interface AgentRun {
  exitCode: number;
  outcome?: UnlockOutcome;
  error?: string;
}

export async function runAgent(cfg: AgentConfig, deps: Partial<UnlockDeps> & { log: AgentLog }): Promise<AgentRun> {
  const { log } = deps;
  try {
    const evidence = deps.evidence ?? evidenceSourceFor(cfg, log);
    const outcome = await unlock(cfg, { ...deps, evidence });
    log.info('done', `${outcome.device} ${outcome.action === 'formatted' ? 'formatted and unlocked' : 'unlocked'}${outcome.mapped ? ` at ${outcome.mapped}` : ''}${outcome.keySource === 'tpm' ? ' with the TPM-sealed key' : ` after ${outcome.attempts} broker attempt(s)`}`);
    return { exitCode: 0, outcome };
  } catch (e) {
    const line = describeError(e);
    log.error('unlock', `FAILED: ${line}`);
    await runFailureAction(cfg.failure.action, cfg.failure.command, log);
    return { exitCode: 1, error: line };
  }
}
