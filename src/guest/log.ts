/**
 * Operator log of the guest agent: one plain ASCII line per event, written to the serial console
 * (through journald in the initrd). Lines carry what was done and why it stopped, never key
 * material: callers pass only descriptions, and the key buffer never reaches a formatter.
 */

export type LogLevel = 'info' | 'warn' | 'error';

export interface AgentLog {
  info(step: string, msg: string): void;
  warn(step: string, msg: string): void;
  error(step: string, msg: string): void;
}

/** Strips control characters (a broker-supplied detail must not rewrite the console) and bounds the length. */
export function sanitize(s: string, max = 600): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** Lines like `coffer-agent: 2026-11-28T16:00:00.000Z INFO attest: evidence collected (configfs-tsm)`. */
export function lineLogger(write: (line: string) => void, now: () => Date = () => new Date()): AgentLog {
  const emit = (level: LogLevel, step: string, msg: string) => write(`coffer-agent: ${now().toISOString()} ${level.toUpperCase()} ${sanitize(step, 40)}: ${sanitize(msg)}\n`);
  return {
    info: (step, msg) => emit('info', step, msg),
    warn: (step, msg) => emit('warn', step, msg),
    error: (step, msg) => emit('error', step, msg),
  };
}

/** Standard error: journald forwards it to the console in the initrd. */
export const stderrLog: AgentLog = lineLogger((l) => process.stderr.write(l));

export const silentLog: AgentLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
