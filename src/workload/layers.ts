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
    const prefix = h.subarray(257, 263).toString('latin1').startsWith('ustar') ? str(345, 500) : '';
    const name = this.paxPath ?? this.longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    this.remaining = size;
    this.padding = (512 - (size % 512)) % 512;
    this.meta = undefined;
    this.content = undefined;
    if (type === 'L' || type === 'x') {
      this.meta = type;
      this.metaBuf = [];
    } else {
      this.longName = undefined;
      this.paxPath = undefined;
      this.current = name.replace(/^\.\//, '');
      if (type === '0' || type === '\0' || type === '7') {
        const base = this.current.split('/').pop() ?? '';
        if (!base.startsWith('.wh.')) {
          const hit = SECRET_FILES.find(([re]) => re.test(this.current));
          if (hit) this.found.push({ path: this.current, why: hit[1] });
          else if (size > 0 && size <= MAX_CONTENT_SCAN) this.content = [];
        }
      }
    }
    if (size === 0) this.finishEntry();
    return true;
  }

  private finishEntry(): void {
    if (this.meta === 'L') this.longName = Buffer.concat(this.metaBuf).toString('utf8').replace(/\0.*$/s, '');
    else if (this.meta === 'x') {
      const text = Buffer.concat(this.metaBuf).toString('utf8');
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text);
      if (m) this.paxPath = m[1];
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

  constructor(
    readonly index: number,
    mediaType: string,
  ) {
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
    this.gunzip.on('data', (c: Buffer) => this.tar.push(c));
    this.done = new Promise((resolve) => {
      this.gunzip?.on('end', resolve);
      this.gunzip?.on('error', (e) => {
        this.failed = `not gzip: ${e.message}`;
        resolve();
      });
    });
  }

  push(chunk: Uint8Array): void {
    if (this.failed) return;
    if (this.gunzip) this.gunzip.write(chunk);
    else this.tar.push(Buffer.from(chunk));
  }

  /** The secrets found, or why the layer could not be scanned. */
  async end(): Promise<{ secrets: LayerSecret[]; notScanned?: string }> {
    this.gunzip?.end();
    await this.done;
    const notScanned = this.failed ?? (this.tar.bad ? 'not a tar archive' : undefined);
    return { secrets: this.tar.found.map((f) => ({ layer: this.index, ...f })), ...(notScanned ? { notScanned } : {}) };
  }
}
