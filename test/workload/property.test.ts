// Parsers must survive arbitrary input: a workload file that is not what it claims, or a blob
// that is not an image, gives a value or a CofferError, never another exception, never a hang.
import { test } from 'node:test';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkModel, loadWorkload, parseImageReference, verifyImage, type BlobSource, type Descriptor } from '../../src/workload/index.js';
import { valueOrCoffer } from '../helpers/property.js';

const FIX = join(import.meta.dirname, 'fixtures');
const fixtures = readdirSync(FIX).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(join(FIX, f), 'utf8'));

const check = (text: string, format?: 'coffer' | 'kubernetes' | 'compose') => valueOrCoffer('workload check', () => checkModel(loadWorkload(text, 'p.yaml', format).model), { kinds: ['input'] });

test('arbitrary text as a workload file', () => {
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => check(s)), { numRuns: 300 });
});

test('fixtures with lines dropped, duplicated or their values replaced', () => {
  const values = fc.constantFrom('true', '0', '-1', '[]', '{}', 'null', '"x"', '[1, 2]', '{a: 1}', '"latest"', '1e400', '!!binary AA==', '&a 1', '*a');
  fc.assert(
    fc.property(fc.nat(fixtures.length - 1), fc.array(fc.tuple(fc.nat(), fc.nat(2), values), { minLength: 1, maxLength: 4 }), fc.constantFrom(undefined, 'coffer', 'kubernetes', 'compose'), (fi, edits, format) => {
      const lines = (fixtures[fi] as string).split('\n');
      for (const [at, kind, v] of edits) {
        const i = at % lines.length;
        const line = lines[i] as string;
        if (kind === 0) lines.splice(i, 1);
        else if (kind === 1) lines.splice(i, 0, line);
        else lines[i] = line.includes(':') ? `${line.slice(0, line.indexOf(':') + 1)} ${v}` : `${line} ${v}`;
      }
      check(lines.join('\n'), format as 'coffer' | 'kubernetes' | 'compose' | undefined);
    }),
    { numRuns: 400 },
  );
});

test('arbitrary image references', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => valueOrCoffer('reference', () => parseImageReference(s), { kinds: ['input'] })), { numRuns: 500 });
});

test('arbitrary bytes as a manifest, index or config', async () => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.json().map((j) => new TextEncoder().encode(j))), fc.constantFrom('application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json', 'text/plain'), async (bytes, mediaType) => {
      const b = Buffer.from(bytes);
      const { createHash } = await import('node:crypto');
      const root: Descriptor = { mediaType, digest: `sha256:${createHash('sha256').update(b).digest('hex')}`, size: b.length };
      // Every other blob the document names is the same bytes: parsing goes as deep as it can.
      const src: BlobSource = {
        read: async () => b,
        stream: async function* () {
          yield b;
        },
      };
      let thrown: unknown;
      try {
        await verifyImage(src, root, { os: 'linux', architecture: 'amd64' }, { scanLayers: true });
      } catch (e) {
        thrown = e;
      }
      valueOrCoffer('verifyImage', () => {
        if (thrown) throw thrown;
      });
    }),
    { numRuns: 300 },
  );
});
