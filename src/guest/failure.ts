import { runTool } from './luks.js';
import type { AgentLog } from './log.js';

/**
 * What the VM does when the agent cannot unlock: power off (default), reboot or halt. There is
 * no "continue": a VM that boots on without its data volume could run the workload on an empty
 * or attacker-supplied disk, or leave a shell behind.
 *
 * The action is a command the agent runs. The defaults are `systemctl <action> --force --force`:
 * the doubled --force makes systemctl call reboot(2) at once, without stopping units, which is
 * what we want in the initrd (nothing of value is mounted, and nothing should get a chance to
 * run). The unit's `FailureAction=` (packaging/) is the backstop when the agent itself dies,
 * cannot read its configuration, or the command returns.
 */

export const FAILURE_ACTIONS = ['poweroff', 'reboot', 'halt'] as const;
export type FailureAction = (typeof FAILURE_ACTIONS)[number];

export function defaultFailureCommand(action: FailureAction): string[] {
  return ['systemctl', action, '--force', '--force'];
}

/**
 * Runs the failure command. It does not return on a real system; if it does (it failed, or it is
 * a test double), the caller still exits non-zero so that systemd's FailureAction takes over.
 */
export async function runFailureAction(action: FailureAction, command: readonly string[] | undefined, log: AgentLog): Promise<boolean> {
  const cmd = command && command.length > 0 ? command : defaultFailureCommand(action);
  log.error('failure', `failure action ${action}: running ${cmd.join(' ')}`);
  try {
    const r = await runTool(cmd[0] as string, cmd.slice(1), undefined, 60_000);
    if (r.code !== 0) {
      log.error('failure', `${cmd[0]} exited ${r.code ?? r.signal}; exiting non-zero so that the unit's FailureAction= applies`);
      return false;
    }
    return true;
  } catch (e) {
    log.error('failure', `${(e as Error).message}; exiting non-zero so that the unit's FailureAction= applies`);
    return false;
  }
}
