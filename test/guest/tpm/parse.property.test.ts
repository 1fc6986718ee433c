// Parsers of the guest TPM client against arbitrary and mutated bytes: the response frame, every
// command's response parameters (through a transport that answers with fuzz), the sealed blob and
// target strings give a value or a CofferError, never another exception, never a hang. Then the
// deterministic pieces: response-code decoding and the exact command bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { HANG_MS, valueOrCoffer } from '../../helpers/property.js';
import { CofferError } from '../../../src/errors.js';
import {
  buildCommand,
  decodeTpmRc,
  encodeSealedBlob,
  parseResponse,
  parseSealedBlob,
  parseTpmTarget,
  sealedObjectTemplate,
  selectionFromInput,
  tpmRcError,
  isRetryable,
  Tpm,
  TpmClient,
  TPM_CC,
  TPM_RH,
  TPM_RS_PW,
  type TpmTransport,
} from '../../../src/guest/tpm/index.js';

/** A transport that answers each command with the next of the given byte strings (the last one repeats). */
function fuzzTransport(answers: readonly Uint8Array[]): TpmTransport {
  let i = 0;
  return {
    description: 'fuzz',
    send: async () => Buffer.from(answers[Math.min(i++, answers.length - 1)] ?? new Uint8Array(0)),
    close: async () => undefined,
  };
}

async function valueOrCofferAsync(what: string, fn: () => Promise<unknown>): Promise<void> {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof CofferError)) throw new Error(`${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a CofferError`);
    assert.match(e.code, /^[A-Z0-9_]+$/);
  }
  if (Date.now() - t0 > HANG_MS) throw new Error(`${what} took too long`);
}

function frame(rc: number, body: Buffer, tag = 0x8001): Buffer {
  const h = Buffer.alloc(10);
  h.writeUInt16BE(tag, 0);
  h.writeUInt32BE(10 + body.length, 2);
  h.writeUInt32BE(rc, 6);
  return Buffer.concat([h, body]);
}

// Well-formed answers to mutate: PCR_Read of sha256:7, a session response (PCR_Extend), a Create-like body.
const PCR_READ = frame(0, Buffer.from('00000005' + '00000001000b03800000' + '00000001' + '0020' + 'ab'.repeat(32), 'hex'));
const WITH_SESSION = frame(0, Buffer.from('00000000' + '0000' + '01' + '0000', 'hex'), 0x8002);
const CREATE_PRIMARY = frame(0, Buffer.concat([Buffer.from('80000000', 'hex'), Buffer.from('0000004a', 'hex'), Buffer.from('0010' + '0023000b00030472000000060080004300100003001000000000', 'hex'), Buffer.alloc(0)]), 0x8002);
const SEEDS = [PCR_READ, WITH_SESSION, CREATE_PRIMARY];

function mutate(b: Buffer, edits: readonly [number, number][]): Buffer {
  const out = Buffer.from(b);
  for (const [at, v] of edits) out[at % out.length] = v;
  return out;
}

const SEL = selectionFromInput({ sha256: [7], sha384: [0, 1] });

async function everyCommand(answers: readonly Uint8Array[]): Promise<void> {
  const mk = () => new TpmClient(fuzzTransport(answers));
  const session = { handle: 0x03000000, hash: 'sha256' as const, nonceTpm: Buffer.alloc(32) };
  await valueOrCofferAsync('getRandom', () => mk().getRandom(8));
  await valueOrCofferAsync('getProperty', () => mk().getProperty(0x12c));
  await valueOrCofferAsync('pcrReadOnce', () => mk().pcrReadOnce(SEL));
  await valueOrCofferAsync('pcrExtend', () => mk().pcrExtend(7, [{ hash: 0x000b, digest: Buffer.alloc(32) }]));
  await valueOrCofferAsync('createPrimary', () => mk().createPrimary(TPM_RH.OWNER, Buffer.from('0023000b', 'hex')));
  await valueOrCofferAsync('create', () => mk().create(0x80000000, Buffer.from('0008000b', 'hex'), { data: Buffer.from('x') }));
  await valueOrCofferAsync('load', () => mk().load(0x80000000, { private: Buffer.alloc(4), public: Buffer.from('0008000b00000412', 'hex') }));
  await valueOrCofferAsync('readPublic', () => mk().readPublic(0x80000000));
  await valueOrCofferAsync('quote', () => mk().quote(0x80000000, Buffer.alloc(32), SEL));
  await valueOrCofferAsync('nvReadPublic', () => mk().nvReadPublic(0x01c00002));
  await valueOrCofferAsync('nvRead', () => mk().nvRead(0x01c00002, 0x01c00002, 16, 0));
  await valueOrCofferAsync('startAuthSession', () => mk().startAuthSession('policy'));
  await valueOrCofferAsync('policyPcr', () => mk().policyPcr(session, SEL));
  await valueOrCofferAsync('policyGetDigest', () => mk().policyGetDigest(session));
  await valueOrCofferAsync('unseal', () => mk().unseal({ handle: 0x80000001, public: Buffer.alloc(4), name: Buffer.alloc(34) }, { ...session }));
  await valueOrCofferAsync('flushContext', () => mk().flushContext(0x80000000));
  const tpm = () => new Tpm(mk());
  await valueOrCofferAsync('Tpm.readPcrs', () => tpm().readPcrs({ sha256: [7] }));
  await valueOrCofferAsync('Tpm.quote', () => tpm().quote(Buffer.alloc(32, 1), { sha256: [7] }));
  await valueOrCofferAsync('Tpm.readNvCertificate', () => tpm().readNvCertificate(0x01c00002));
  await valueOrCofferAsync('Tpm.seal', () => tpm().seal(Buffer.from('s'), { sha256: [7] }));
}

function sampleBlob(): Buffer {
  const pub = Buffer.concat([sealedObjectTemplate(Buffer.alloc(32, 0x77)).subarray(0, -2), Buffer.from('0020', 'hex'), Buffer.alloc(32, 0x55)]);
  return encodeSealedBlob({ srk: 'ecc', selection: selectionFromInput({ sha256: [7, 11] }), public: pub, private: Buffer.alloc(120, 0x99) });
}

describe('property: arbitrary and mutated responses', () => {
  test('parseResponse: arbitrary bytes with any expectation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(3), fc.nat(3), (b, handles, sessions) => {
        valueOrCoffer('parseResponse', () => parseResponse(b, { handles, sessions }));
      }),
      { numRuns: 2000 },
    );
  });

  test('parseResponse: well-formed frames with mutated bytes and size fields', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SEEDS), fc.array(fc.tuple(fc.nat(400), fc.nat(255)), { maxLength: 4 }), fc.nat(3), (seed, edits, sessions) => {
        valueOrCoffer('parseResponse', () => parseResponse(mutate(seed, edits), { handles: seed === CREATE_PRIMARY ? 1 : 0, sessions }));
      }),
      { numRuns: 2000 },
    );
  });

  test('every command and the high-level calls, answered with fuzz or mutated frames', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.tuple(fc.constantFrom(...SEEDS), fc.array(fc.tuple(fc.nat(400), fc.nat(255)), { maxLength: 3 })).map(([s, e]) => mutate(s, e))), { minLength: 1, maxLength: 4 }),
        async (answers) => {
          await everyCommand(answers);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('parseSealedBlob: arbitrary bytes, every single-byte change of a real-shaped blob, truncations', () => {
    const blob = sampleBlob();
    assert.equal(parseSealedBlob(blob).selection[0]?.pcrs.join(','), '7,11');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        valueOrCoffer('parseSealedBlob', () => parseSealedBlob(b), { kinds: ['input'] });
      }),
      { numRuns: 1500 },
    );
    let accepted = 0;
    for (let i = 0; i < blob.length; i++) {
      const x = Buffer.from(blob);
      x[i] = (x[i] as number) ^ 0x01;
      try {
        parseSealedBlob(x);
        accepted++;
      } catch (e) {
        assert.ok(e instanceof CofferError && e.code === 'TPM_BAD_SEALED_BLOB', `byte ${i}: ${String(e)}`);
      }
    }
    // Flips inside the policy, unique, private and bitmap bytes still parse (the TPM judges those).
    assert.ok(accepted > 0 && accepted < blob.length);
    for (let n = 0; n < blob.length; n++) assert.throws(() => parseSealedBlob(blob.subarray(0, n)), (e: CofferError) => e.code === 'TPM_BAD_SEALED_BLOB');
    assert.throws(() => parseSealedBlob(Buffer.concat([blob, Buffer.alloc(1)])), /trailing/);
    const v2 = Buffer.from(blob);
    v2[8] = 2;
    assert.throws(() => parseSealedBlob(v2), /version 2 is not supported/);
  });

  test('parseTpmTarget and decodeTpmRc never throw anything else', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        valueOrCoffer('parseTpmTarget', () => parseTpmTarget(s));
        valueOrCoffer('parseTpmTarget', () => parseTpmTarget(`swtpm:${s}`));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (rc) => {
        const info = decodeTpmRc(rc);
        assert.match(info.name, /^TPM/);
        if (rc !== 0) assert.match(tpmRcError('TPM2_X', rc).code, /^TPM_RC_[A-Z0-9_]+$/);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('response codes', () => {
  const cases: [number, string, Partial<{ parameter: number; handle: number; session: number; warning: boolean }>][] = [
    [0x99d, 'TPM_RC_POLICY_FAIL', { session: 1 }],
    [0x1c4, 'TPM_RC_VALUE', { parameter: 1 }],
    [0x2c4, 'TPM_RC_VALUE', { parameter: 2 }],
    [0x18b, 'TPM_RC_HANDLE', { handle: 1 }],
    [0x28b, 'TPM_RC_HANDLE', { handle: 2 }],
    [0x98e, 'TPM_RC_AUTH_FAIL', { session: 1 }],
    [0xa9d, 'TPM_RC_POLICY_FAIL', { session: 2 }],
    [0x9a2, 'TPM_RC_BAD_AUTH', { session: 1 }],
    [0x09f, 'TPM_RC_INTEGRITY', {}],
    [0x100, 'TPM_RC_INITIALIZE', {}],
    [0x101, 'TPM_RC_FAILURE', {}],
    [0x128, 'TPM_RC_PCR_CHANGED', {}],
    [0x143, 'TPM_RC_COMMAND_CODE', {}],
    [0x14c, 'TPM_RC_NV_DEFINED', {}],
    [0x902, 'TPM_RC_OBJECT_MEMORY', { warning: true }],
    [0x903, 'TPM_RC_SESSION_MEMORY', { warning: true }],
    [0x910, 'TPM_RC_REFERENCE_H0', { warning: true }],
    [0x919, 'TPM_RC_REFERENCE_S1', { warning: true }],
    [0x921, 'TPM_RC_LOCKOUT', { warning: true }],
    [0x922, 'TPM_RC_RETRY', { warning: true }],
  ];

  test('format one (parameter, handle, session numbers) and format zero (errors, warnings)', () => {
    for (const [rc, name, extra] of cases) {
      const d = decodeTpmRc(rc);
      assert.equal(d.name, name, `0x${rc.toString(16)}`);
      assert.equal(d.parameter, extra.parameter, `0x${rc.toString(16)} parameter`);
      assert.equal(d.handle, extra.handle, `0x${rc.toString(16)} handle`);
      assert.equal(d.session, extra.session, `0x${rc.toString(16)} session`);
      assert.equal(d.warning, extra.warning ?? false, `0x${rc.toString(16)} warning`);
    }
    assert.equal(decodeTpmRc(0x1e).name, 'TPM12_RC');
    assert.equal(decodeTpmRc(0x501).name, 'TPM_RC_VENDOR');
    assert.equal(decodeTpmRc(0x000b0005).format, 'layer');
    assert.ok(isRetryable(0x922) && isRetryable(0x908) && isRetryable(0x90a) && !isRetryable(0x921) && !isRetryable(0x99d));
    const e = tpmRcError('TPM2_Unseal', 0x99d);
    assert.equal(e.code, 'TPM_RC_POLICY_FAIL');
    assert.equal(e.kind, 'verify');
    assert.equal(e.message, 'TPM2_Unseal failed: TPM_RC_POLICY_FAIL (0x99d, session 1): a policy check failed');
    assert.equal(tpmRcError('TPM2_Load', 0x18b).kind, 'input');
  });
});

describe('policy session HMACs', () => {
  test("the command HMAC covers cpHash and both nonces; a response whose HMAC does not verify is refused", async () => {
    const item = { handle: 0x80000001, public: Buffer.alloc(4), name: Buffer.concat([Buffer.from('000b', 'hex'), Buffer.alloc(32, 0x42)]) };
    const nonceTpm = Buffer.alloc(32, 0x11);
    const nextNonce = Buffer.alloc(32, 0x22);
    const outData = Buffer.from('0005' + Buffer.from('hello').toString('hex'), 'hex');
    let sent: Buffer | undefined;
    const answer = (hmacOk: boolean): TpmTransport => ({
      description: 'fixed',
      close: async () => undefined,
      send: async (cmd) => {
        sent = Buffer.from(cmd);
        // The command's nonceCaller: after header (10), handle (4), auth size (4), session handle (4), nonce size (2).
        const nonceCaller = Buffer.from(cmd.subarray(24, 56));
        const rp = createHash('sha256').update(Buffer.alloc(4)).update(Buffer.from('0000015e', 'hex')).update(outData).digest();
        const mac = createHmac('sha256', Buffer.alloc(0)).update(rp).update(nextNonce).update(nonceCaller).update(Buffer.from([0])).digest();
        if (!hmacOk) mac[0] = (mac[0] as number) ^ 1;
        const p = Buffer.alloc(4);
        p.writeUInt32BE(outData.length);
        return frame(0, Buffer.concat([p, outData, Buffer.from('0020', 'hex'), nextNonce, Buffer.from([0]), Buffer.from('0020', 'hex'), mac]), 0x8002);
      },
    });
    const out = await new TpmClient(answer(true)).unseal(item, { handle: 0x03000000, hash: 'sha256', nonceTpm });
    assert.equal(out.toString(), 'hello');
    // The command HMAC, recomputed from the bytes that went out.
    const cmd = sent as Buffer;
    const nonceCaller = cmd.subarray(24, 56);
    const cp = createHash('sha256').update(Buffer.from('0000015e', 'hex')).update(item.name).digest();
    const want = createHmac('sha256', Buffer.alloc(0)).update(cp).update(nonceCaller).update(nonceTpm).update(Buffer.from([0])).digest();
    assert.equal(cmd.readUInt8(56), 0, 'continueSession clear: the session ends with Unseal');
    assert.equal(cmd.subarray(59, 91).toString('hex'), want.toString('hex'));
    await assert.rejects(new TpmClient(answer(false)).unseal(item, { handle: 0x03000000, hash: 'sha256', nonceTpm }), (e: CofferError) => e.code === 'TPM_BAD_RESPONSE' && /HMAC/.test(e.message));
  });
});

describe('command bytes', () => {
  test('GetRandom, PCR_Read and a password-authorised PCR_Extend, byte for byte (Part 3 layouts)', () => {
    assert.equal(buildCommand(TPM_CC.GetRandom, [], Buffer.from('0010', 'hex')).toString('hex'), '80010000000c0000017b0010');
    // TPML_PCR_SELECTION sha256:7 (3-octet bitmap).
    assert.equal(buildCommand(TPM_CC.PCR_Read, [], Buffer.from('00000001000b03800000', 'hex')).toString('hex'), '8001000000140000017e00000001000b03800000');
    // Handle 7, authorization area size 9 (TPM_RS_PW, empty nonce, attributes 0, empty password), TPML_DIGEST_VALUES.
    const ext = buildCommand(TPM_CC.PCR_Extend, [7], Buffer.concat([Buffer.from('00000001000b', 'hex'), Buffer.alloc(32, 0xee)]), [{ handle: TPM_RS_PW, nonce: new Uint8Array(0), attributes: 0, hmac: new Uint8Array(0) }]);
    assert.equal(ext.toString('hex'), '800200000041000001820000000700000009400000090000000000' + '00000001000b' + 'ee'.repeat(32));
    assert.equal(ext.readUInt32BE(2), ext.length);
  });
});
