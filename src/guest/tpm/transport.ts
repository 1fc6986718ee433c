import { open, type FileHandle } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { CofferError, inputError } from '../../errors.js';
import { HEADER_SIZE } from './constants.js';

/**
 * How command bytes reach a TPM. A transport moves one complete command and returns one complete
 * response; it checks that the response is framed as a TPM response (a 10-byte header whose size
 * field equals the bytes received, within the size limit), not what it means (see marshal.ts).
 */
export interface TpmTransport {
  /** Sends one command and returns its response. Commands are never interleaved. */
  send(command: Uint8Array): Promise<Buffer>;
  close(): Promise<void>;
  /** For messages: "/dev/tpmrm0", "swtpm 127.0.0.1:2321". */
  readonly description: string;
}

export interface TransportOptions {
  /** Per-command limit, milliseconds (default 30 s: RSA key generation on a slow TPM takes seconds). */
  timeoutMs?: number;
  /** Largest response accepted (default 16 KiB; TPMs answer within their 4 KiB MAX_RESPONSE_SIZE). */
  maxResponseBytes?: number;
}

export type TpmTarget =
  | { kind: 'device'; path: string }
  /** swtpm's (or the MS simulator's) TCP command port. framing 'raw' (default): plain TPM commands, as swtpm's own TCTI sends them; 'mssim': TPM_SEND_COMMAND framing. */
  | { kind: 'tcp'; host: string; port: number; framing?: 'raw' | 'mssim' }
  /** swtpm --server type=unixio,path=... */
  | { kind: 'unix'; path: string; framing?: 'raw' | 'mssim' };

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE = 16 * 1024;
/** The MS simulator's TPM_SEND_COMMAND, which swtpm also accepts on its command port. */
const MSSIM_SEND_COMMAND = 8;

function timeoutError(what: string, ms: number): CofferError {
  return inputError('TPM_TIMEOUT', `${what} did not answer within ${ms} ms`);
}

function limits(opts: TransportOptions): { timeoutMs: number; maxResponseBytes: number } {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw inputError('USAGE', `TPM timeout ${timeoutMs} is not a positive integer of milliseconds`);
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < HEADER_SIZE) throw inputError('USAGE', `TPM response limit ${maxResponseBytes} is below the ${HEADER_SIZE}-byte header`);
  return { timeoutMs, maxResponseBytes };
}

/** The response's own size field, checked against the limit; undefined until 10 bytes arrived. */
export function declaredResponseSize(head: Buffer, maxResponseBytes: number, what: string): number | undefined {
  if (head.length < HEADER_SIZE) return undefined;
  const size = head.readUInt32BE(2);
  if (size < HEADER_SIZE) throw inputError('TPM_BAD_RESPONSE', `${what}: the response header declares ${size} bytes, less than its own ${HEADER_SIZE}-byte header`);
  if (size > maxResponseBytes) throw inputError('TPM_BAD_RESPONSE', `${what}: the response declares ${size} bytes, more than the ${maxResponseBytes}-byte limit`);
  return size;
}

function checkCommand(command: Uint8Array, what: string): Buffer {
  const b = Buffer.from(command.buffer, command.byteOffset, command.byteLength);
  if (b.length < HEADER_SIZE || b.readUInt32BE(2) !== b.length) throw inputError('TPM_BAD_COMMAND', `${what}: refusing to send a command whose size field does not match its length`);
  return b;
}

/** Serialises calls: a TPM processes one command at a time, and so does every transport. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * A TPM character device: /dev/tpmrm0 (the kernel's resource manager, which flushes what a
 * closed file left loaded) or /dev/tpm0. One write() is one command; one read() returns the whole
 * response. A timed-out read cannot be cancelled in Node: the handle is closed and the transport
 * is unusable afterwards.
 */
export class DeviceTransport implements TpmTransport {
  readonly description: string;
  private fh: FileHandle | undefined;
  private broken = false;
  private readonly queue = new Queue();
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(
    readonly path: string,
    opts: TransportOptions = {},
  ) {
    ({ timeoutMs: this.timeoutMs, maxResponseBytes: this.maxResponseBytes } = limits(opts));
    this.description = path;
  }

  private async handle(): Promise<FileHandle> {
    if (this.broken) throw inputError('TPM_UNAVAILABLE', `${this.path}: the device was closed after an earlier failure`);
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r+');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'error';
        throw inputError('TPM_UNAVAILABLE', `cannot open the TPM device ${this.path} (${code})`);
      }
    }
    return this.fh;
  }

  send(command: Uint8Array): Promise<Buffer> {
    const cmd = checkCommand(command, this.path);
    return this.queue.run(async () => {
      const fh = await this.handle();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError(this.path, this.timeoutMs)), this.timeoutMs);
      });
      try {
        const io = (async () => {
          const w = await fh.write(cmd, 0, cmd.length);
          if (w.bytesWritten !== cmd.length) throw inputError('TPM_UNAVAILABLE', `${this.path}: short write (${w.bytesWritten} of ${cmd.length} bytes)`);
          // One byte more than the limit tells an over-long response from one that fits exactly.
          const buf = Buffer.alloc(this.maxResponseBytes + 1);
          const r = await fh.read(buf, 0, buf.length, null);
          const resp = buf.subarray(0, r.bytesRead);
          if (resp.length > this.maxResponseBytes) throw inputError('TPM_BAD_RESPONSE', `${this.path}: the response is longer than the ${this.maxResponseBytes}-byte limit`);
          if (resp.length < HEADER_SIZE) throw inputError('TPM_BAD_RESPONSE', `${this.path}: the response is ${resp.length} bytes, shorter than a TPM header`);
          try {
            const size = declaredResponseSize(resp, this.maxResponseBytes, this.path) as number;
            if (size !== resp.length) throw inputError('TPM_BAD_RESPONSE', `${this.path}: the response header declares ${size} bytes, ${resp.length} arrived`);
            return Buffer.from(resp);
          } finally {
            buf.fill(0);
          }
        })();
        return await Promise.race([io, timeout]);
      } catch (e) {
        this.broken = true;
        // Not awaited: FileHandle.close() waits for the pending read, which after a timeout may
        // never return; the handle is released whenever the read ends.
        const fh = this.fh;
        this.fh = undefined;
        if (fh) void fh.close().catch(() => undefined);
        if (e instanceof CofferError) throw e;
        throw inputError('TPM_UNAVAILABLE', `${this.path}: ${(e as NodeJS.ErrnoException).code ?? 'I/O error'} while talking to the TPM`);
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      const fh = this.fh;
      this.fh = undefined;
      this.broken = true;
      await fh?.close().catch(() => undefined);
    });
  }
}

/**
 * swtpm's command port over TCP or a Unix socket. swtpm serves one client connection at a time and
 * accepts, on that port, either plain TPM commands ('raw', what tpm2-tss's swtpm TCTI sends) or
 * commands prefixed by the MS simulator's TPM_SEND_COMMAND header `u32 8 || u8 locality || u32
 * length`, answered as `u32 length || response || u32 0` ('mssim', what the mssim TCTI and the
 * Microsoft reference simulator speak). The connection is opened on first use and held until
 * close(): another client (tpm2-tools) waits until then.
 */
export class SocketTransport implements TpmTransport {
  readonly description: string;
  private socket: Socket | undefined;
  private broken = false;
  private readonly queue = new Queue();
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly framing: 'raw' | 'mssim';
  private readonly locality: number;

  constructor(
    private readonly target: Extract<TpmTarget, { kind: 'tcp' | 'unix' }>,
    opts: TransportOptions & { locality?: number } = {},
  ) {
    ({ timeoutMs: this.timeoutMs, maxResponseBytes: this.maxResponseBytes } = limits(opts));
    this.framing = target.framing ?? 'raw';
    this.locality = opts.locality ?? 0;
    if (!Number.isInteger(this.locality) || this.locality < 0 || this.locality > 4) throw inputError('USAGE', `TPM locality ${this.locality} is not 0-4`);
    this.description = target.kind === 'tcp' ? `swtpm ${target.host}:${target.port}` : `swtpm ${target.path}`;
  }

  private connectOnce(): Promise<Socket> {
    if (this.broken) return Promise.reject(inputError('TPM_UNAVAILABLE', `${this.description}: the connection was closed after an earlier failure`));
    if (this.socket) return Promise.resolve(this.socket);
    return new Promise<Socket>((resolve, reject) => {
      const s = this.target.kind === 'tcp' ? connect({ host: this.target.host, port: this.target.port }) : connect({ path: this.target.path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(timeoutError(`${this.description} (connect)`, this.timeoutMs));
      }, this.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        // Errors surface through the pending command; this keeps an idle socket's error from crashing the process.
        s.on('error', () => undefined);
        // A peer that hangs up between commands (swtpm restarted) is reconnected on the next
        // command; every high-level call flushes what it loaded, so nothing depends on the link.
        s.once('close', () => {
          if (this.socket === s) this.socket = undefined;
        });
        s.setNoDelay(true);
        this.socket = s;
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(inputError('TPM_UNAVAILABLE', `cannot connect to ${this.description} (${e.code ?? e.message})`));
      });
    });
  }

  private fail(): void {
    this.broken = true;
    this.socket?.destroy();
    this.socket = undefined;
  }

  send(command: Uint8Array): Promise<Buffer> {
    const cmd = checkCommand(command, this.description);
    return this.queue.run(async () => {
      const s = await this.connectOnce();
      try {
        return await this.exchange(s, cmd);
      } catch (e) {
        this.fail();
        throw e;
      }
    });
  }

  private exchange(s: Socket, cmd: Buffer): Promise<Buffer> {
    const what = this.description;
    const mssim = this.framing === 'mssim';
    const prefix = mssim ? 4 : 0;
    const trailer = mssim ? 4 : 0;
    return new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      let total: number | undefined;
      const done = (err: Error | undefined, value?: Buffer) => {
        clearTimeout(timer);
        got.fill(0);
        s.off('data', onData);
        s.off('close', onClose);
        s.off('error', onError);
        if (err) reject(err);
        else resolve(value as Buffer);
      };
      const onData = (chunk: Buffer) => {
        const prev = got;
        got = Buffer.concat([got, chunk]);
        prev.fill(0);
        chunk.fill(0);
        try {
          if (total === undefined) {
            if (mssim && got.length >= 4) {
              const framed = got.readUInt32BE(0);
              if (framed < HEADER_SIZE || framed > this.maxResponseBytes) throw inputError('TPM_BAD_RESPONSE', `${what}: the simulator frame announces ${framed} bytes (limit ${this.maxResponseBytes})`);
            }
            const size = declaredResponseSize(got.subarray(prefix), this.maxResponseBytes, what);
            if (size === undefined) return;
            if (mssim && got.readUInt32BE(0) !== size) throw inputError('TPM_BAD_RESPONSE', `${what}: the simulator frame announces ${got.readUInt32BE(0)} bytes, the TPM header ${size}`);
            total = prefix + size + trailer;
          }
          if (got.length < total) return;
          if (got.length > total) throw inputError('TPM_BAD_RESPONSE', `${what}: ${got.length - total} unexpected byte(s) after the response`);
          if (mssim && got.readUInt32BE(total - 4) !== 0) throw inputError('TPM_BAD_RESPONSE', `${what}: the simulator's acknowledgement is 0x${got.readUInt32BE(total - 4).toString(16)}, not 0`);
          done(undefined, Buffer.from(got.subarray(prefix, total - trailer)));
        } catch (e) {
          done(e as Error);
        }
      };
      const onClose = () => done(inputError('TPM_UNAVAILABLE', `${what} closed the connection${got.length ? ` after ${got.length} byte(s) of a response` : ' without answering'}`));
      const onError = (e: NodeJS.ErrnoException) => done(inputError('TPM_UNAVAILABLE', `${what}: ${e.code ?? e.message}`));
      const timer = setTimeout(() => done(timeoutError(what, this.timeoutMs)), this.timeoutMs);
      s.on('data', onData);
      s.once('close', onClose);
      s.once('error', onError);
      if (mssim) {
        const head = Buffer.alloc(9);
        head.writeUInt32BE(MSSIM_SEND_COMMAND, 0);
        head.writeUInt8(this.locality, 4);
        head.writeUInt32BE(cmd.length, 5);
        const framed = Buffer.concat([head, cmd]);
        s.write(framed, () => framed.fill(0));
      } else {
        s.write(cmd);
      }
    });
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      const s = this.socket;
      this.socket = undefined;
      this.broken = true;
      if (!s) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end();
        // A peer that never closes its side must not keep close() waiting.
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 2000).unref();
      });
    });
  }
}

/**
 * swtpm's control channel (`--ctrl type=tcp|unixio`): big-endian u32 command codes answered by a
 * u32 result. Only what a client needs when swtpm runs without `--flags not-need-init`:
 * CMD_INIT (power on) and CMD_SHUTDOWN (stop swtpm, which first saves its state).
 */
export class SwtpmControl {
  static readonly CMD_GET_CAPABILITY = 0x01;
  static readonly CMD_INIT = 0x02;
  static readonly CMD_SHUTDOWN = 0x03;

  constructor(
    private readonly target: { host: string; port: number } | { path: string },
    private readonly timeoutMs = 10_000,
  ) {}

  /** `answer` bytes come back; with `result`, the first u32 is a TPM result code that must be 0. */
  private request(payload: Buffer, answer: number, result = true): Promise<Buffer> {
    const what = 'host' in this.target ? `swtpm control ${this.target.host}:${this.target.port}` : `swtpm control ${this.target.path}`;
    return new Promise<Buffer>((resolve, reject) => {
      const s = 'host' in this.target ? connect({ host: this.target.host, port: this.target.port }) : connect({ path: this.target.path });
      let got = Buffer.alloc(0);
      const finish = (err?: Error, v?: Buffer) => {
        clearTimeout(timer);
        s.destroy();
        if (err) reject(err);
        else resolve(v as Buffer);
      };
      const timer = setTimeout(() => finish(timeoutError(what, this.timeoutMs)), this.timeoutMs);
      s.on('connect', () => s.write(payload));
      s.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c]);
        if (got.length > answer) finish(inputError('TPM_BAD_RESPONSE', `${what}: ${got.length} bytes, expected ${answer}`));
        else if (got.length === answer) {
          const rc = result ? got.readUInt32BE(0) : 0;
          if (rc !== 0) finish(inputError('TPM_CONTROL_FAILED', `${what}: the command failed with 0x${rc.toString(16)}`, { result: rc }));
          else finish(undefined, got);
        }
      });
      s.on('error', (e: NodeJS.ErrnoException) => finish(inputError('TPM_UNAVAILABLE', `cannot reach ${what} (${e.code ?? e.message})`)));
      s.on('close', () => finish(inputError('TPM_UNAVAILABLE', `${what} closed the connection after ${got.length} byte(s)`)));
    });
  }

  /** CMD_GET_CAPABILITY: the PTM_CAP_* bit mask of what the control channel supports (a bare u64, no result code). */
  async capabilities(): Promise<bigint> {
    const r = await this.request(u32(SwtpmControl.CMD_GET_CAPABILITY), 8, false);
    return r.readBigUInt64BE(0);
  }

  /** CMD_INIT: "power on" the TPM (then TPM2_Startup is needed). */
  async init(flags = 0): Promise<void> {
    await this.request(Buffer.concat([u32(SwtpmControl.CMD_INIT), u32(flags)]), 4);
  }

  /** CMD_SHUTDOWN: swtpm stops (and exits, unless told otherwise). */
  async shutdown(): Promise<void> {
    await this.request(u32(SwtpmControl.CMD_SHUTDOWN), 4);
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/**
 * Reads a target description:
 * - a path (`/dev/tpmrm0`, `device:/dev/tpm0`);
 * - `swtpm:host=127.0.0.1,port=2321` (tpm2-tss TCTI syntax; raw framing) or `swtpm:path=/run/swtpm.sock`;
 * - `mssim:host=127.0.0.1,port=2321` (TPM_SEND_COMMAND framing);
 * - `tcp://127.0.0.1:2321`.
 */
export function parseTpmTarget(spec: string): TpmTarget {
  const s = spec.trim();
  const bad = (why: string): never => {
    throw inputError('TPM_BAD_TARGET', `TPM target "${spec}": ${why} (use /dev/tpmrm0, swtpm:host=H,port=P, swtpm:path=SOCKET, mssim:host=H,port=P or tcp://H:P)`);
  };
  const port = (p: string | undefined): number => {
    if (p === undefined || !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) return bad(`port ${p ?? '(missing)'} is not 1-65535`);
    return Number(p);
  };
  if (s.startsWith('/')) return { kind: 'device', path: s };
  if (s.startsWith('device:')) {
    const path = s.slice('device:'.length);
    if (!path.startsWith('/')) bad('a device path must be absolute');
    return { kind: 'device', path };
  }
  const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(s);
  if (tcp) return { kind: 'tcp', host: tcp[1] as string, port: port(tcp[2]) };
  const m = /^(swtpm|mssim):(.*)$/.exec(s);
  if (!m) return bad('unknown form');
  const framing = m[1] === 'mssim' ? 'mssim' : 'raw';
  const kv = new Map<string, string>();
  for (const part of (m[2] as string).split(',').filter((x) => x !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) bad(`"${part}" is not key=value`);
    const k = part.slice(0, eq);
    if (!['host', 'port', 'path'].includes(k)) bad(`unknown key "${k}"`);
    if (kv.has(k)) bad(`"${k}" is given twice`);
    kv.set(k, part.slice(eq + 1));
  }
  const path = kv.get('path');
  if (path !== undefined) {
    if (kv.has('host') || kv.has('port')) bad('give a path or host and port, not both');
    if (!path.startsWith('/')) bad('the socket path must be absolute');
    return { kind: 'unix', path, framing };
  }
  return { kind: 'tcp', host: kv.get('host') ?? '127.0.0.1', port: kv.has('port') ? port(kv.get('port')) : 2321, framing };
}

/** The transport for a target. */
export function openTransport(target: TpmTarget, opts: TransportOptions = {}): TpmTransport {
  return target.kind === 'device' ? new DeviceTransport(target.path, opts) : new SocketTransport(target, opts);
}
