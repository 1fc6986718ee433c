import { inputError } from '../errors.js';

/**
 * Image references as the distribution reference grammar defines them
 * (github.com/distribution/reference): `[host[:port]/]path[:tag][@algorithm:hex]`. The first
 * component is a registry host only when it holds a dot or a colon or is `localhost`; otherwise
 * the image is on Docker Hub (`docker.io`, with `library/` for one-component names), which is
 * how docker and containerd resolve it.
 */
export interface ImageReference {
  /** As written. */
  raw: string;
  registry: string;
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>` or `sha512:<128 hex>`. */
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
export const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

export function parseImageReference(raw: string): ImageReference {
  const bad = (why: string) => inputError('WORKLOAD_BAD_IMAGE_REF', `image reference "${raw}" ${why}`);
  if (raw.length === 0 || raw.length > 512) throw bad('must be 1 to 512 characters');
  let rest = raw;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad('has a digest that is not sha256:<64 lowercase hex> or sha512:<128 lowercase hex>');
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`has an invalid tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) throw bad(`has an invalid registry host "${first}"`);
    registry = first;
    parts.shift();
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) throw bad('has an invalid repository name (lowercase letters, digits and . _ - separators)');
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > 255) throw bad('has a repository name longer than 255 characters');
  return { raw, registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The registry host as an allow-list compares it (Docker Hub's aliases folded). */
export function registryKey(host: string): string {
  const h = host.toLowerCase();
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h;
}
