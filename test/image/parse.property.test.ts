// The image parsers against arbitrary bytes and one-byte mutations of real structures
// (an efitools .auth, an sbsign-style signed PE, a veritysetup superblock): a value or a
// CofferError, never another exception, never a hang.
import { describe, test, before } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { valueOrCoffer } from '../helpers/property.js';
import {
  buildAuthVariable,
  checkSignatures,
  createCertificate,
  encodeVeritySuperblock,
  parseAuthVariable,
  parseSignatureDatabase,
  parseVeritySuperblock,
  readAuthenticode,
  authenticodeHash,
  signPe,
  verifyAuthVariable,
  verifyAuthenticode,
  verifyVerity,
  x509SignatureList,
  type Signer,
} from '../../src/image/index.js';
import { SYSTEMD_BOOT, packagedFile } from './tools.js';

const OWNER = '26dc4851-195f-4ae1-9a19-fbf883bbb35e';
let signer: Signer;
let esl: Buffer;
let auth: Buffer;
let signedPe: Buffer;
let superblock: Buffer;

before(() => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const at = new Date(Date.UTC(2025, 0, 1));
  signer = { privateKey, certificate: createCertificate({ commonName: 'prop', publicKey, selfKey: privateKey, notBefore: at, notAfter: new Date(Date.UTC(2035, 0, 1)) }) };
  esl = x509SignatureList(signer.certificate, OWNER);
  auth = buildAuthVariable({ name: 'db' }, at, esl, signer);
  // A small PE: the first 64 KiB of systemd-boot are not a valid image, so sign the real one.
  signedPe = signPe(readFileSync(packagedFile(SYSTEMD_BOOT, 'systemd-boot-efi')), signer);
  superblock = encodeVeritySuperblock({ uuid: '8f1d9c4e-3b2a-4c5d-9e6f-0a1b2c3d4e5f', salt: Buffer.alloc(32, 1), dataBlocks: 300 });
});

const mutation = (len: () => number) => fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([i, x]) => [i % len(), x] as const);

function mutate(b: Buffer, [i, x]: readonly [number, number]): Buffer {
  const c = Buffer.from(b);
  c[i] = (c[i] ?? 0) ^ x;
  return c;
}

describe('image parsers on arbitrary input', () => {
  test('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (raw) => {
        const b = Buffer.from(raw);
        valueOrCoffer('parseSignatureDatabase', () => parseSignatureDatabase(b));
        valueOrCoffer('parseAuthVariable', () => parseAuthVariable(b));
        valueOrCoffer('verifyAuthVariable', () => verifyAuthVariable(b, { name: 'db' }, [signer.certificate]));
        valueOrCoffer('readAuthenticode', () => readAuthenticode(b));
        valueOrCoffer('authenticodeHash', () => authenticodeHash(b));
        valueOrCoffer('parseVeritySuperblock', () => parseVeritySuperblock(b));
        valueOrCoffer('verifyVerity', () => verifyVerity(b, b, Buffer.alloc(32)));
      }),
      { numRuns: 300 },
    );
  });

  test('one-byte mutations of a real ESL, .auth and superblock', () => {
    fc.assert(
      fc.property(mutation(() => auth.length), mutation(() => esl.length), mutation(() => superblock.length), (ma, me, ms) => {
        valueOrCoffer('verifyAuthVariable', () => verifyAuthVariable(mutate(auth, ma), { name: 'db' }, [signer.certificate]));
        valueOrCoffer('parseSignatureDatabase', () => parseSignatureDatabase(mutate(esl, me)));
        valueOrCoffer('parseVeritySuperblock', () => parseVeritySuperblock(mutate(superblock, ms)));
      }),
      { numRuns: 300 },
    );
  });

  test('one-byte mutations of the headers and signature of a signed PE', () => {
    const table = signedPe.length - 2048;
    fc.assert(
      fc.property(fc.oneof(fc.nat({ max: 1023 }), fc.integer({ min: table, max: signedPe.length - 1 })), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = mutate(signedPe, [i, x]);
        valueOrCoffer('checkSignatures', () => checkSignatures(b));
        valueOrCoffer('verifyAuthenticode', () => verifyAuthenticode(b, { certificates: [signer.certificate] }));
      }),
      { numRuns: 150 },
    );
  });
});
