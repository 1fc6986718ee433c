import { problem } from './problem.js';

/**
 * Resource paths are `<repository>/<type>/<tag>` as in the KBS protocol; policy prefixes and
 * token scopes are one to three of those segments. Segments are letters, digits, `.`, `_`, `-`
 * (never `.` or `..` alone), so a path can neither escape nor alias another.
 */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

function segments(p: string, what: string, min: number, max: number): string[] {
  const parts = p.split('/');
  if (parts.length < min || parts.length > max || !parts.every((s) => SEGMENT.test(s))) {
    throw problem('bad-request', 'BROKER_BAD_PATH', `${what} "${p.slice(0, 200)}" must be ${min === max ? max : `${min} to ${max}`} segment(s) of letters, digits, . _ - separated by /`);
  }
  return parts;
}

export function resourcePath(p: string): string {
  return segments(p, 'resource path', 3, 3).join('/');
}

export function prefixPath(p: string): string {
  return segments(p.replace(/\/+$/, ''), 'path prefix', 1, 3).join('/');
}

/** Whether `path` is `prefix` or lies under it, segment-wise (`team-a` covers `team-a/x/y`, not `team-ab/x/y`). */
export function covers(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}
