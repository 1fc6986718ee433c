import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { inputError, verifyError } from '../errors.js';
import { ACCEPT_MANIFESTS, MAX_JSON_BLOB, digestOf, verifyImage, type BlobSource, type Descriptor, type PlatformWanted, type VerifiedImage, type VerifyImageOptions } from './oci.js';
import { parseImageReference, type ImageReference } from './reference.js';

/**
 * A client of the OCI distribution API (distribution-spec v1.1): manifests and blobs by digest,
 * push for tests and mirroring, and the token flow docker uses (a 401 with
 * `WWW-Authenticate: Bearer realm=...,service=...,scope=...` sends us to the realm for a token,
 * with basic credentials if we have them). Plain http is refused unless asked for, and then only
 * for loopback hosts: a registry reached without TLS can serve anything (the digests still
 * protect the content, but not which image a tag names).
 */

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Use http:// (loopback hosts only). */
  plainHttp?: boolean;
  credentials?: RegistryCredentials;
  /** Per-request timeout (default 60 s); for a layer body, the longest pause between two chunks. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (RFC 7235): `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9._-]*)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][A-Za-z0-9._-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2] ?? '')) !== null) {
    if (p[0] === '') break;
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export class RegistryClient implements BlobSource {
  private readonly base: string;
  private readonly tokens = new Map<string, string>();
  private readonly f: typeof fetch;

  constructor(
    readonly host: string,
    readonly repository: string,
    private readonly opts: RegistryOptions = {},
  ) {
    if (opts.plainHttp && !isLoopback(host)) throw inputError('REGISTRY_PLAIN_HTTP', `refusing plain http to ${host}: only loopback registries may be reached without TLS`);
    const h = host === 'docker.io' ? 'registry-1.docker.io' : host;
    this.base = `${opts.plainHttp ? 'http' : 'https'}://${h}`;
    this.f = opts.fetch ?? fetch;
  }

  static forReference(ref: string | ImageReference, opts: RegistryOptions = {}): RegistryClient {
    const r = typeof ref === 'string' ? parseImageReference(ref) : ref;
    return new RegistryClient(r.registry, r.repository, opts);
  }

  private async token(ch: Challenge): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw verifyError('REGISTRY_AUTH', `${this.host}: bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw verifyError('REGISTRY_AUTH', `${this.host}: bearer realm "${realm}" is not a URL`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.host))) throw verifyError('REGISTRY_AUTH', `${this.host}: refusing a token realm over plain http (${url.host})`);
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    if (ch.params.scope) url.searchParams.set('scope', ch.params.scope);
    const key = url.toString();
    const cached = this.tokens.get(key);
    if (cached) return cached;
    const headers: Record<string, string> = {};
    if (this.opts.credentials) headers.authorization = `Basic ${Buffer.from(`${this.opts.credentials.username}:${this.opts.credentials.password}`).toString('base64')}`;
    const r = await this.f(url, { headers, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 60_000) }).catch((e: unknown) => {
      throw verifyError('REGISTRY_UNREACHABLE', `token endpoint ${url.host}: ${(e as Error).message}`);
    });
    if (r.status !== 200) throw verifyError('REGISTRY_AUTH', `token endpoint ${url.host} answered ${r.status}`);
    const body = (await r.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
    const tok = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!tok) throw verifyError('REGISTRY_AUTH', `token endpoint ${url.host} returned no token`);
    this.tokens.set(key, tok);
    return tok;
  }

  /** One request with the auth dance: on 401, answer the challenge once and retry. */
  async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer; absolute?: string; signal?: AbortSignal } = {}): Promise<Response> {
    const url = init.absolute ?? `${this.base}${path}`;
    // Credentials and tokens go only to the registry's own origin: an upload Location (or any
    // absolute URL the registry hands us) on another host gets none, as fetch does for redirects.
    let foreign = false;
    try {
      foreign = new URL(url).origin !== new URL(this.base).origin;
    } catch {
      throw verifyError('REGISTRY_ERROR', `${this.host}: ${method}: "${url}" is not a URL`);
    }
    const send = (auth?: string) =>
      this.f(url, {
        method,
        headers: { ...init.headers, ...(auth ? { authorization: auth } : {}) },
        ...(init.body ? { body: init.body } : {}),
        signal: init.signal ?? AbortSignal.timeout(this.opts.timeoutMs ?? 60_000),
      }).catch((e: unknown) => {
        throw verifyError('REGISTRY_UNREACHABLE', `${this.host}: ${(e as Error).message}`);
      });
    const first = await send(foreign ? undefined : this.lastAuth);
    if (first.status !== 401) return first;
    await first.body?.cancel();
    if (foreign) throw verifyError('REGISTRY_AUTH', `${this.host}: ${method} to another origin (${new URL(url).host}) asks for credentials: not sent`);
    const ch = parseChallenge(first.headers.get('www-authenticate') ?? '');
    let auth: string | undefined;
    if (ch?.scheme === 'bearer') auth = `Bearer ${await this.token(ch)}`;
    else if (ch?.scheme === 'basic' && this.opts.credentials) auth = `Basic ${Buffer.from(`${this.opts.credentials.username}:${this.opts.credentials.password}`).toString('base64')}`;
    else throw verifyError('REGISTRY_AUTH', `${this.host}: ${method} ${path} needs authentication (${first.headers.get('www-authenticate') ?? 'no challenge'})`);
    this.lastAuth = auth;
    const second = await send(auth);
    if (second.status === 401) throw verifyError('REGISTRY_AUTH', `${this.host}: ${method} ${path} refused the credentials`);
    return second;
  }
  private lastAuth: string | undefined;

  private repoPath(kind: 'manifests' | 'blobs', ref: string): string {
    return `/v2/${this.repository}/${kind}/${ref}`;
  }

  /** Resolves a tag or digest to the root descriptor (digest computed here, never taken from a header). */
  async resolve(reference: string): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const r = await this.request('GET', this.repoPath('manifests', reference), { headers: { accept: ACCEPT_MANIFESTS } });
    if (r.status === 404) throw verifyError('REGISTRY_NOT_FOUND', `${this.host}/${this.repository}:${reference} not found`);
    if (r.status !== 200) throw verifyError('REGISTRY_ERROR', `${this.host}: manifest ${reference}: HTTP ${r.status}`);
    const bytes = await readLimited(r, MAX_JSON_BLOB, `manifest ${reference}`);
    let mediaType = (r.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    // Some registries answer application/json; the document's own mediaType then decides (and
    // verifyImage still refuses a document without one it understands).
    if (!ACCEPT_MANIFESTS.split(', ').includes(mediaType)) {
      try {
        const own = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown } | null)?.mediaType;
        if (typeof own === 'string') mediaType = own;
      } catch {
        // not JSON: verifyImage reports it
      }
    }
    const alg = reference.startsWith('sha512:') ? 'sha512' : 'sha256';
    const digest = digestOf(bytes, alg);
    if (reference.includes(':') && /^sha(256|512):/.test(reference) && digest !== reference) throw verifyError('OCI_DIGEST_MISMATCH', `manifest ${reference}: the registry served content that hashes to ${digest}`);
    const header = r.headers.get('docker-content-digest');
    if (header && header.startsWith(`${alg}:`) && header !== digest) throw verifyError('OCI_DIGEST_MISMATCH', `manifest ${reference}: Docker-Content-Digest ${header} but the content hashes to ${digest}`);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async read(desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit) throw inputError('OCI_BLOB_TOO_LARGE', `${desc.digest}: ${desc.size} bytes, more than ${limit}`);
    const kind = desc.mediaType.includes('manifest') || desc.mediaType.includes('index') ? 'manifests' : 'blobs';
    const r = await this.request('GET', this.repoPath(kind, desc.digest), kind === 'manifests' ? { headers: { accept: ACCEPT_MANIFESTS } } : {});
    if (r.status !== 200) throw verifyError(r.status === 404 ? 'REGISTRY_NOT_FOUND' : 'REGISTRY_ERROR', `${this.host}: ${kind} ${desc.digest}: HTTP ${r.status}`);
    return readLimited(r, desc.size + 1, desc.digest);
  }

  async *stream(desc: Descriptor): AsyncIterable<Uint8Array> {
    // A layer may take longer than any fixed timeout to arrive: the timeout bounds each silence
    // (waiting for the headers, then between two chunks), not the whole transfer.
    const limit = this.opts.timeoutMs ?? 60_000;
    const ac = new AbortController();
    let timer = setTimeout(() => ac.abort(), limit);
    try {
      const r = await this.request('GET', this.repoPath('blobs', desc.digest), { signal: ac.signal });
      if (r.status !== 200 || !r.body) throw verifyError(r.status === 404 ? 'REGISTRY_NOT_FOUND' : 'REGISTRY_ERROR', `${this.host}: blob ${desc.digest}: HTTP ${r.status}`);
      const body = Readable.fromWeb(r.body as unknown as WebReadableStream<Uint8Array>);
      try {
        for await (const c of body) {
          clearTimeout(timer);
          yield c as Uint8Array;
          timer = setTimeout(() => ac.abort(), limit);
        }
      } catch (e) {
        throw verifyError('REGISTRY_UNREACHABLE', `${this.host}: blob ${desc.digest}: ${ac.signal.aborted ? `no data for ${limit} ms` : (e as Error).message}`);
      } finally {
        body.destroy();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Pulls and verifies an image (tag or digest) down to every layer. */
  async pull(reference: string, platform?: PlatformWanted, opts: VerifyImageOptions = {}): Promise<VerifiedImage> {
    const { descriptor } = await this.resolve(reference);
    return verifyImage(this, descriptor, platform, opts);
  }

  /** Uploads a blob (monolithic POST then PUT), unless the registry already has it. */
  async pushBlob(bytes: Buffer, digest = digestOf(bytes)): Promise<string> {
    const head = await this.request('HEAD', this.repoPath('blobs', digest));
    if (head.status === 200) return digest;
    const start = await this.request('POST', `/v2/${this.repository}/blobs/uploads/`);
    if (start.status !== 202) throw verifyError('REGISTRY_ERROR', `${this.host}: starting an upload: HTTP ${start.status}`);
    const loc = start.headers.get('location');
    if (!loc) throw verifyError('REGISTRY_ERROR', `${this.host}: upload without a Location`);
    const u = new URL(loc, this.base);
    u.searchParams.set('digest', digest);
    const put = await this.request('PUT', '', { absolute: u.toString(), headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    if (put.status !== 201) throw verifyError('REGISTRY_ERROR', `${this.host}: upload of ${digest}: HTTP ${put.status} ${await put.text()}`);
    return digest;
  }

  async pushManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const r = await this.request('PUT', this.repoPath('manifests', reference), { headers: { 'content-type': mediaType }, body: bytes });
    if (r.status !== 201) throw verifyError('REGISTRY_ERROR', `${this.host}: manifest ${reference}: HTTP ${r.status} ${await r.text()}`);
    return digestOf(bytes);
  }
}

async function readLimited(r: Response, limit: number, what: string): Promise<Buffer> {
  const len = Number(r.headers.get('content-length') ?? NaN);
  if (Number.isFinite(len) && len > limit) {
    await r.body?.cancel();
    throw verifyError('OCI_SIZE_MISMATCH', `${what}: ${len} bytes, more than expected`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  if (r.body) {
    const body = Readable.fromWeb(r.body as unknown as WebReadableStream<Uint8Array>);
    try {
      for await (const c of body) {
        n += (c as Buffer).length;
        if (n > limit) throw verifyError('OCI_SIZE_MISMATCH', `${what}: longer than expected`);
        chunks.push(c as Buffer);
      }
    } catch (e) {
      if ((e as { name?: string }).name === 'CofferError') throw e;
      throw verifyError('REGISTRY_UNREACHABLE', `${what}: ${(e as Error).message}`);
    } finally {
      body.destroy();
    }
  }
  return Buffer.concat(chunks);
}
