import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';

/**
 * Looks for secrets baked into image layers while they stream through the digest check: file
 * names that hold credentials by convention (SSH and TLS private keys, cloud and registry
 * credentials, package-manager tokens) and regular files up to 1 MiB whose content holds a PEM
 * private key. Reads ustar, GNU long names and pax `path` records; whiteouts are skipped. A layer
 * that is not a tar (or is zstd-compressed, which Node 20 cannot inflate) is reported as not
 * scanned rather than as clean. Findings only count once the layer's digest has verified.
 */

export interface LayerSecret {
  layer: number;
  path: string;
  why: string;
}

const SECRET_FILES: readonly [RegExp, string][] = [
  [/(^|\/)\.ssh\/id_(rsa|dsa|ecdsa|ed25519)$/, 'SSH private key'],
  [/(^|\/)\.aws\/credentials$/, 'AWS credentials'],
  [/(^|\/)\.docker\/config\.json$/, 'registry credentials (docker config.json)'],
  [/(^|\/)\.npmrc$/, 'npm configuration (may hold an auth token)'],
  [/(^|\/)\.pypirc$/, 'PyPI credentials'],
  [/(^|\/)\.netrc$/, '.netrc credentials'],
  [/(^|\/)\.git-credentials$/, 'git credentials'],
  [/(^|\/)\.kube\/config$/, 'Kubernetes credentials'],
  [/(^|\/)\.config\/gcloud\/(credentials\.db|application_default_credentials\.json)$/, 'Google Cloud credentials'],
  [/(^|\/)\.azure\/(accessTokens\.json|msal_token_cache\.json)$/, 'Azure credentials'],
  [/(^|\/)\.env$/, '.env file'],
];
const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const MAX_CONTENT_SCAN = 1024 * 1024;
// pax and GNU long-name records are held in memory until their entry ends: a larger one (a
// decompression bomb needs only a size field) makes the layer "not scanned" instead of an OOM.
const MAX_META = 1024 * 1024;

/** The name as the runtime will create it (containerd cleans it): `a//b`, `./a`, `a/./b`, `a/x/../b`. */
function cleanPath(name: string): string {
  return posix.normalize(`/${name}`).replace(/^\/+/, '');
}

/** The last `path` record of a pax extended header (records are length-prefixed; later ones win, as in Go's archive/tar). */
function paxPathOf(data: Buffer): string | undefined {
  let path: string | undefined;
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(data.subarray(off, sp).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= sp - off + 1 || off + len > data.length) break;
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0 && rec.slice(0, eq) === 'path') path = rec.slice(eq + 1);
    off += len;
  }
  return path;
}

/** Parses a tar stream incrementally; feed it decompressed bytes. */
class TarScanner {
  private buf: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private padding = 0;
  private content: Buffer[] | undefined;
  private current = '';
  private longName: string | undefined;
  private paxPath: string | undefined;
  private meta: 'L' | 'x' | undefined;
  private metaBuf: Buffer[] = [];
  private zeroBlocks = 0;
  bad = false;
  readonly found: { path: string; why: string }[] = [];

  push(chunk: Buffer): void {
    if (this.bad || this.zeroBlocks >= 2) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, this.buf.length);
        if (n === 0) return;
        const part = this.buf.subarray(0, n);
        if (this.meta) this.metaBuf.push(Buffer.from(part));
        else if (this.content) this.content.push(Buffer.from(part));
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining > 0) return;
        this.finishEntry();
        continue;
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.padding -= n;
        if (this.padding > 0) return;
      }
      if (this.buf.length < 512) return;
      const h = this.buf.subarray(0, 512);
      this.buf = this.buf.subarray(512);
      if (h.every((b) => b === 0)) {
        if (++this.zeroBlocks >= 2) return;
        continue;
      }
      this.zeroBlocks = 0;
      if (!this.header(h)) {
        this.bad = true;
        return;
      }
    }
  }

  private header(h: Buffer): boolean {
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] as number);
    const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    if (stored !== sum) return false;
    const str = (a: number, b: number) => h.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const sizeField = h.subarray(124, 136);
    // Base-256 sizes (GNU) for entries over 8 GiB.
    const size = ((sizeField[0] as number) & 0x80) !== 0 ? Number(sizeField.readBigUInt64BE(4)) : parseInt(str(124, 136).trim() || '0', 8);
    if (!Number.isSafeInteger(size) || size < 0) return false;
    const type = String.fromCharCode(h[156] as number);
    // Only POSIX ustar (magic "ustar\0") has a prefix field; old GNU ("ustar  ") keeps times there.
    const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\0' ? str(345, 500) : '';
    const name = this.paxPath ?? this.longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    this.remaining = size;
    this.padding = (512 - (size % 512)) % 512;
    this.meta = undefined;
    this.content = undefined;
    if (type === 'L' || type === 'x') {
      if (size > MAX_META) return false;
      this.meta = type;
      this.metaBuf = [];
    } else {
      this.longName = undefined;
      this.paxPath = undefined;
      this.current = cleanPath(name);
      // A hard link is the same file under a second name: the name counts (its content was seen
      // under the first). Symlinks do not: pointing at a runtime-mounted secret is the right way.
      if (type === '0' || type === '\0' || type === '7' || type === '1') {
        const base = this.current.split('/').pop() ?? '';
        if (!base.startsWith('.wh.')) {
          const hit = SECRET_FILES.find(([re]) => re.test(this.current));
          if (hit) this.found.push({ path: this.current, why: hit[1] });
          else if (type !== '1' && size > 0 && size <= MAX_CONTENT_SCAN) this.content = [];
        }
      }
    }
    if (size === 0) this.finishEntry();
    return true;
  }

  private finishEntry(): void {
    if (this.meta === 'L') this.longName = Buffer.concat(this.metaBuf).toString('utf8').replace(/\0.*$/s, '');
    else if (this.meta === 'x') {
      const p = paxPathOf(Buffer.concat(this.metaBuf));
      if (p !== undefined) this.paxPath = p;
    } else if (this.content) {
      if (PEM_PRIVATE.test(Buffer.concat(this.content).toString('latin1'))) this.found.push({ path: this.current, why: 'PEM private key' });
    }
    this.meta = undefined;
    this.content = undefined;
  }
}

/** Scans one layer as its bytes go by. `push` the compressed chunks, then `end()`. */
export class LayerScanner {
  private readonly tar = new TarScanner();
  private readonly gunzip: Gunzip | undefined;
  private failed: string | undefined;
  private done: Promise<void>;

  /** The uncompressed bytes' hash: the layer's diff_id, which the runtime keys its snapshots by. */
  private readonly diff: Hash;
  private readonly diffAlg: 'sha256' | 'sha512';

  constructor(
    readonly index: number,
    mediaType: string,
    diffIdAlgorithm: 'sha256' | 'sha512' = 'sha256',
  ) {
    this.diffAlg = diffIdAlgorithm;
    this.diff = createHash(diffIdAlgorithm);
    if (mediaType.endsWith('+zstd')) {
      this.failed = 'zstd layers cannot be inflated here';
      this.done = Promise.resolve();
      return;
    }
    if (mediaType.endsWith('.tar')) {
      this.done = Promise.resolve();
      return;
    }
    this.gunzip = createGunzip();
    this.gunzip.on('data', (c: Buffer) => {
      this.diff.update(c);
      this.tar.push(c);
    });
    this.done = new Promise((resolve) => {
      this.gunzip?.on('end', resolve);
      this.gunzip?.on('error', (e) => {
        this.failed = `not gzip: ${e.message}`;
        resolve();
      });
    });
  }

  /** Resolves when the inflater can take more: the caller awaits it so that memory stays bounded. */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.failed) return;
    if (!this.gunzip) {
      this.diff.update(chunk);
      this.tar.push(Buffer.from(chunk));
      return;
    }
    if (this.gunzip.write(chunk)) return;
    const g = this.gunzip;
    await new Promise<void>((resolve) => {
      const done = () => {
        g.off('drain', done);
        g.off('error', done);
        resolve();
      };
      g.on('drain', done);
      g.on('error', done);
    });
  }

  /** The secrets found, or why the layer could not be scanned; the diff_id when the layer could be inflated. */
  async end(): Promise<{ secrets: LayerSecret[]; notScanned?: string; diffId?: string }> {
    this.gunzip?.end();
    await this.done;
    const notScanned = this.failed ?? (this.tar.bad ? 'not a tar archive' : undefined);
    return {
      secrets: this.tar.found.map((f) => ({ layer: this.index, ...f })),
      ...(notScanned ? { notScanned } : {}),
      ...(this.failed ? {} : { diffId: `${this.diffAlg}:${this.diff.digest('hex')}` }),
    };
  }
}
