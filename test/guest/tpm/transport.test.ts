// The transports and the response checks against peers that misbehave in ways swtpm never does:
// a local TCP server answers each command with crafted bytes (truncated, lying sizes, wrong tags,
// trailing bytes, silence, a bad simulator frame). The well-behaved path is covered against the
// real swtpm in swtpm.test.ts.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceTransport, SocketTransport, TpmClient, openTpm, parseTpmTarget, type TpmTransport } from '../../../src/guest/tpm/index.js';
import { rejectsCoffer } from './helpers.js';

type Reply = (cmd: Buffer, n: number, sock: Socket) => void;

const servers: Server[] = [];
const sockets = new Set<Socket>();
after(async () => {
  // Clients a test left open would keep server.close() waiting.
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** A one-connection TCP peer that hands each complete raw (or mssim-framed) command to `reply`. */
async function peer(reply: Reply, framing: 'raw' | 'mssim' = 'raw'): Promise<{ port: number; commands: Buffer[]; hangups: EventEmitter }> {
  const commands: Buffer[] = [];
  const hangups = new EventEmitter();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => {
      sockets.delete(sock);
      hangups.emit('closed');
    });
    let buf = Buffer.alloc(0);
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const off = framing === 'mssim' ? 9 : 0;
        if (buf.length < off + 6) return;
        const size = buf.readUInt32BE(off + 2);
        if (buf.length < off + size) return;
        const cmd = buf.subarray(0, off + size);
        buf = buf.subarray(off + size);
        commands.push(Buffer.from(cmd));
        reply(Buffer.from(cmd), commands.length, sock);
      }
    });
    sock.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { port: addr.port, commands, hangups };
}

function resp(rc: number, body: Buffer = Buffer.alloc(0), tag = 0x8001): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(10 + body.length, 2);
  b.writeUInt32BE(rc, 6);
  return Buffer.concat([b, body]);
}

const GET_RANDOM_8 = resp(0, Buffer.from('0008' + '11'.repeat(8), 'hex'));

function client(port: number, opts: { timeoutMs?: number; maxResponseBytes?: number; framing?: 'raw' | 'mssim' } = {}): { c: TpmClient; t: TpmTransport } {
  const t = new SocketTransport({ kind: 'tcp', host: '127.0.0.1', port, framing: opts.framing ?? 'raw' }, { timeoutMs: opts.timeoutMs ?? 5000, ...(opts.maxResponseBytes ? { maxResponseBytes: opts.maxResponseBytes } : {}) });
  return { c: new TpmClient(t), t };
}

describe('response framing over TCP (raw)', () => {
  test('a well-formed answer is accepted; the command bytes are exactly GetRandom(8)', async () => {
    const p = await peer((_, __, s) => s.write(GET_RANDOM_8));
    const { c, t } = client(p.port);
    assert.ok((await c.getRandom(8)).equals(Buffer.alloc(8, 0x11)));
    await t.close();
    assert.equal(p.commands[0]?.toString('hex'), '80010000000c0000017b0008');
  });

  test('truncated then closed → TPM_UNAVAILABLE; truncated and silent → TPM_TIMEOUT (and the transport stays closed)', async () => {
    const p1 = await peer((_, __, s) => {
      s.write(GET_RANDOM_8.subarray(0, 6));
      s.end();
    });
    await rejectsCoffer(() => client(p1.port).c.getRandom(8), 'TPM_UNAVAILABLE', { message: /after 6 byte/ });
    const p2 = await peer((_, __, s) => s.write(GET_RANDOM_8.subarray(0, 14)));
    const { c, t } = client(p2.port, { timeoutMs: 300 });
    await rejectsCoffer(() => c.getRandom(8), 'TPM_TIMEOUT');
    await rejectsCoffer(() => c.getRandom(8), 'TPM_UNAVAILABLE', { message: /earlier failure/ });
    await t.close();
  });

  test('size field below the header, above the limit, or followed by extra bytes → TPM_BAD_RESPONSE', async () => {
    const tiny = Buffer.from(GET_RANDOM_8);
    tiny.writeUInt32BE(6, 2);
    const huge = Buffer.from(GET_RANDOM_8);
    huge.writeUInt32BE(1_000_000, 2);
    for (const [bytes, re] of [[tiny, /less than its own/], [huge, /more than the 4096-byte limit/], [Buffer.concat([GET_RANDOM_8, Buffer.from('xx')]), /unexpected byte/]] as const) {
      const p = await peer((_, __, s) => s.write(bytes));
      await rejectsCoffer(() => client(p.port, { maxResponseBytes: 4096 }).c.getRandom(8), 'TPM_BAD_RESPONSE', { message: re });
    }
  });

  test('wrong tags, an error response with a body, a body that does not parse → TPM_BAD_RESPONSE', async () => {
    const cases: [Buffer, RegExp][] = [
      [resp(0, Buffer.from('0008' + '11'.repeat(8), 'hex'), 0x00c4), /neither TPM_ST_NO_SESSIONS/],
      [resp(0, Buffer.from('0008' + '11'.repeat(8), 'hex'), 0x8002), /expected TPM_ST_NO_SESSIONS/],
      [resp(0x101, Buffer.from('00')), /bare 10-byte header/],
      [resp(0, Buffer.from('0009' + '11'.repeat(8), 'hex')), /truncated/],
      [resp(0, Buffer.from('0041' + '11'.repeat(65), 'hex')), /more than the 64/],
      [resp(0, Buffer.from('0008' + '11'.repeat(9), 'hex')), /trailing/],
    ];
    for (const [bytes, re] of cases) {
      const p = await peer((_, __, s) => s.write(bytes));
      await rejectsCoffer(() => client(p.port).c.getRandom(8), 'TPM_BAD_RESPONSE', { message: re });
    }
  });

  test('TPM response codes become TPM_RC_* errors naming the blamed session; RETRY is retried, then succeeds', async () => {
    const p = await peer((_, __, s) => s.write(resp(0x98e)));
    const e = await rejectsCoffer(() => client(p.port).c.getRandom(8), 'TPM_RC_AUTH_FAIL', { kind: 'verify' });
    assert.deepEqual([e.details?.session, e.details?.rcHex], [1, '0x98e']);
    const r = await peer((_, n, s) => s.write(n < 3 ? resp(0x922) : GET_RANDOM_8));
    assert.equal((await client(r.port).c.getRandom(8)).length, 8);
    assert.equal(r.commands.length, 3);
    const never = await peer((_, __, s) => s.write(resp(0x922)));
    await rejectsCoffer(() => client(never.port).c.getRandom(8), 'TPM_RC_RETRY');
    assert.equal(never.commands.length, 6, 'five retries, then the error');
  });

  test('a PCR_Read answer that adds a PCR or miscounts its digests → TPM_BAD_RESPONSE', async () => {
    // Asked sha256:7, told sha256:8.
    const body = (bitmap: string, count: number) => Buffer.from(`00000001` + `00000001000b03${bitmap}` + count.toString(16).padStart(8, '0') + '0020' + 'ab'.repeat(32), 'hex');
    const p1 = await peer((_, __, s) => s.write(resp(0, body('000100', 1))));
    const t1 = await openTpm({ kind: 'tcp', host: '127.0.0.1', port: p1.port });
    await rejectsCoffer(() => t1.readPcrs({ sha256: [7] }), 'TPM_BAD_RESPONSE', { message: /not asked for/ });
    const p2 = await peer((_, __, s) => s.write(resp(0, body('800000', 2))));
    const t2 = await openTpm({ kind: 'tcp', host: '127.0.0.1', port: p2.port });
    await rejectsCoffer(() => t2.readPcrs({ sha256: [7] }), 'TPM_BAD_RESPONSE', { message: /2 digests for 1/ });
    const p3 = await peer((_, __, s) => s.write(resp(0, body('800000', 1))));
    const t3 = await openTpm({ kind: 'tcp', host: '127.0.0.1', port: p3.port });
    assert.ok((await t3.readPcrs({ sha256: [7] })).get('sha256')?.get(7)?.equals(Buffer.alloc(32, 0xab)));
    await Promise.all([t1.close(), t2.close(), t3.close()]);
  });

  test('a peer that hangs up between commands is reconnected; one that hangs up mid-command is an error', async () => {
    const p = await peer((_, __, s) => s.end(GET_RANDOM_8));
    const { c, t } = client(p.port);
    const closed = once(p.hangups, 'closed');
    assert.equal((await c.getRandom(8)).length, 8);
    await closed; // the first connection is gone on both sides
    assert.equal((await c.getRandom(8)).length, 8);
    await t.close();
    assert.equal(p.commands.length, 2);
    const q = await peer((_, __, s) => s.end());
    await rejectsCoffer(() => client(q.port).c.getRandom(8), 'TPM_UNAVAILABLE', { message: /without answering/ });
  });

  test('nobody listening → TPM_UNAVAILABLE', async () => {
    const p = await peer(() => undefined);
    const server = servers.pop() as Server;
    await new Promise((r) => server.close(r));
    await rejectsCoffer(() => client(p.port).c.getRandom(8), 'TPM_UNAVAILABLE', { message: /ECONNREFUSED/ });
  });
});

describe('MS simulator framing', () => {
  const framed = (r: Buffer, ack = 0, len = r.length) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(len);
    const a = Buffer.alloc(4);
    a.writeUInt32BE(ack);
    return Buffer.concat([h, r, a]);
  };

  test('the command goes out as TPM_SEND_COMMAND || locality || length, the answer is unwrapped', async () => {
    const p = await peer((_, __, s) => s.write(framed(GET_RANDOM_8)), 'mssim');
    const { c, t } = client(p.port, { framing: 'mssim' });
    assert.equal((await c.getRandom(8)).length, 8);
    await t.close();
    assert.equal(p.commands[0]?.subarray(0, 9).toString('hex'), '00000008000000000c');
  });

  test('a non-zero acknowledgement or a frame that disagrees with the TPM header → TPM_BAD_RESPONSE', async () => {
    for (const [bytes, re] of [[framed(GET_RANDOM_8, 1), /acknowledgement/], [framed(GET_RANDOM_8, 0, 22), /frame announces 22 bytes, the TPM header 20/], [framed(GET_RANDOM_8, 0, 3), /frame announces 3 bytes/]] as const) {
      const p = await peer((_, __, s) => s.write(bytes), 'mssim');
      await rejectsCoffer(() => client(p.port, { framing: 'mssim' }).c.getRandom(8), 'TPM_BAD_RESPONSE', { message: re });
    }
  });
});

describe('device transport and targets', () => {
  test('a missing device → TPM_UNAVAILABLE; a command with a lying size is never sent', async () => {
    const t = new DeviceTransport('/nonexistent/tpmrm0');
    await rejectsCoffer(() => t.send(Buffer.from('80010000000c0000017b0008', 'hex')), 'TPM_UNAVAILABLE', { message: /ENOENT/ });
    await rejectsCoffer(() => t.send(Buffer.from('80010000000d0000017b0008', 'hex')), 'TPM_BAD_COMMAND');
  });

  test('one write, one read on a character-device-like file: a FIFO echoes the command, which parses as a TPM frame', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-fifo-'));
    try {
      const fifo = join(dir, 'tpm');
      execFileSync('mkfifo', [fifo]);
      const t = new DeviceTransport(fifo, { timeoutMs: 5000 });
      const cmd = Buffer.from('80010000000c0000017b0008', 'hex');
      assert.ok((await t.send(cmd)).equals(cmd));
      await t.close();
      // Larger than the response limit: refused, not truncated.
      const t2 = new DeviceTransport(fifo, { maxResponseBytes: 11 });
      const big = Buffer.concat([Buffer.from('800100000010000001 7b'.replace(/ /g, ''), 'hex'), Buffer.alloc(6)]);
      await rejectsCoffer(() => t2.send(big), 'TPM_BAD_RESPONSE', { message: /longer than the 11-byte limit/ });
      await t2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('target strings', () => {
    assert.deepEqual(parseTpmTarget('/dev/tpmrm0'), { kind: 'device', path: '/dev/tpmrm0' });
    assert.deepEqual(parseTpmTarget('device:/dev/tpm0'), { kind: 'device', path: '/dev/tpm0' });
    assert.deepEqual(parseTpmTarget('swtpm:host=127.0.0.1,port=2321'), { kind: 'tcp', host: '127.0.0.1', port: 2321, framing: 'raw' });
    assert.deepEqual(parseTpmTarget('swtpm:port=2400'), { kind: 'tcp', host: '127.0.0.1', port: 2400, framing: 'raw' });
    assert.deepEqual(parseTpmTarget('mssim:host=localhost,port=2321'), { kind: 'tcp', host: 'localhost', port: 2321, framing: 'mssim' });
    assert.deepEqual(parseTpmTarget('swtpm:path=/run/swtpm.sock'), { kind: 'unix', path: '/run/swtpm.sock', framing: 'raw' });
    assert.deepEqual(parseTpmTarget('tcp://10.0.0.1:2321'), { kind: 'tcp', host: '10.0.0.1', port: 2321 });
    for (const bad of ['', 'tpm0', 'swtpm:port=0', 'swtpm:port=65536', 'swtpm:port=2321,port=2322', 'swtpm:bogus=1', 'swtpm:path=rel.sock', 'swtpm:path=/a,port=1', 'device:dev/tpm0', 'swtpm:host']) {
      assert.throws(() => parseTpmTarget(bad), (e: Error & { code?: string }) => e.code === 'TPM_BAD_TARGET', bad);
    }
  });
});
