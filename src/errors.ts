/**
 * The one error type of Coffer. Every failure a user can cause is a CofferError with a
 * stable `code`; the CLI prints its message on one line and maps `kind` to an exit status:
 * `input` (bad input or usage, exit 2) or `verify` (evidence failed a check, exit 1).
 */
export type ErrorKind = 'input' | 'verify';

export class CofferError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: string,
    message: string,
    options: { kind?: ErrorKind; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CofferError';
    this.code = code;
    this.kind = options.kind ?? 'verify';
    this.details = options.details;
  }
}

/** Bad input: malformed bytes, wrong sizes, unknown versions, bad flags (exit 2). */
export function inputError(code: string, message: string, details?: Record<string, unknown>): CofferError {
  return new CofferError(code, message, { kind: 'input', ...(details ? { details } : {}) });
}

/** A verification or policy failure (exit 1). */
export function verifyError(code: string, message: string, details?: Record<string, unknown>): CofferError {
  return new CofferError(code, message, { kind: 'verify', ...(details ? { details } : {}) });
}

export function isCofferError(e: unknown): e is CofferError {
  return e instanceof CofferError;
}
