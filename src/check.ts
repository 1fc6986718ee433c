/**
 * One explainable step of a verification or validation: what was compared, what was expected,
 * what was found, and whether it held. Verdicts are lists of these, so a denial always says
 * which rule failed and on which value.
 */
export interface Check {
  /** Stable, dotted name, e.g. `snp.signature` or `pki.chain.validity`. */
  name: string;
  ok: boolean;
  /** A human sentence: what was compared. */
  description: string;
  expected?: string;
  found?: string;
  /** Error code when the check failed. */
  code?: string;
  /**
   * The rule was not evaluated (nothing to compare against): the link is taken on trust, not
   * verified. `ok` stays true so it does not fail the verdict, but reports must show it.
   */
  notChecked?: boolean;
}

export function pass(name: string, description: string, extra: Partial<Check> = {}): Check {
  return { name, ok: true, description, ...extra };
}

export function notChecked(name: string, description: string): Check {
  return { name, ok: true, notChecked: true, description: `NOT CHECKED: ${description}` };
}

export function fail(name: string, code: string, description: string, extra: Partial<Check> = {}): Check {
  return { name, ok: false, code, description, ...extra };
}
