// What reaches the terminal: characters from evidence (a certificate subject, a UEFI variable
// name) cannot move the cursor, recolour or reorder a line, and --json output stays valid JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { printable, toJson } from '../../src/cli/output.js';

test('control characters, C1 and bidi overrides are shown as \\uXXXX; tab and newline pass', () => {
  assert.equal(printable('CN=evil\u001b[2J\u001b]0;owned\u0007'), 'CN=evil\\u001b[2J\\u001b]0;owned\\u0007');
  assert.equal(printable('a\u202egnp.exe\u2066x\u0085y\u009bz\u007f'), 'a\\u202egnp.exe\\u2066x\\u0085y\\u009bz\\u007f');
  assert.equal(printable('line one\n\tline two\r\n'), 'line one\n\tline two\\u000d\n');
  assert.equal(printable('plain ASCII, UTF-8 é ü 漢字'), 'plain ASCII, UTF-8 é ü 漢字');
});

test('--json output stays valid and means the same after escaping', () => {
  const value = { subject: 'CN=x\u0085\u202e\u2028y', path: 'C:\\u0085 is not an escape' };
  const shown = printable(toJson(value));
  assert.doesNotMatch(shown, /[\u0085\u202e\u2028]/);
  assert.deepEqual(JSON.parse(shown), value);
});

test('the process writes through it (a real child process)', () => {
  const code = `import('${new URL('../../src/cli/output.ts', import.meta.url).pathname}').then((m) => m.processIo.out('x\\u001b[31my'))`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'x\\u001b[31my\n');
});
