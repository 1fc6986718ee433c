#!/usr/bin/env node
// Runs every test file under test/ with node's own test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [substring-filter ...]
//
// The PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth, user root, database test),
// or $COFFER_TEST_PG_URL. Where neither answers, this script starts a private server of its own
// (Debian's postgresql binaries, a temporary data directory, a free port) for the run and stops
// it afterwards, rather than skipping those tests (COFFER_TEST_PG_PRIVATE=1 forces that path).
import { mkdtempSync, readdirSync, rmSync, statSync, chownSync, existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

function answers(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function pgBin() {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin/initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) {
    console.error('PostgreSQL answers on neither 127.0.0.1:5432 nor $COFFER_TEST_PG_URL, and no server binaries are installed to start one: apt-get install postgresql (scripts/setup.sh does)');
    process.exit(1);
  }
  return join(base, versions[0], 'bin');
}

/** Starts a throwaway server; initdb refuses to run as root, so as root it runs as the postgres user. */
async function privatePostgres() {
  const bin = pgBin();
  const dir = mkdtempSync(join(tmpdir(), 'coffer-pg-'));
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) {
      console.error('cannot start a private PostgreSQL as root without the postgres user: apt-get install postgresql');
      process.exit(1);
    }
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const run = (cmd, args) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(full[0], full[1], { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) {
      console.error(`private PostgreSQL: ${cmd} failed: ${r.stderr || r.stdout || r.error?.message}`);
      rmSync(dir, { recursive: true, force: true });
      process.exit(1);
    }
  };
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'root', '--no-sync', '-E', 'UTF8']);
  run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start']);
  run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'root', 'test']);
  console.log(`PostgreSQL: started a private server on 127.0.0.1:${port} for this run${env.COFFER_TEST_PG_PRIVATE === '1' ? ' (COFFER_TEST_PG_PRIVATE=1)' : ' (none answered on 127.0.0.1:5432)'}`);
  return {
    url: `postgres://root@127.0.0.1:${port}/test`,
    stop: () => {
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const files = walk(join(root, 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const env = { ...process.env };
let pgServer;
// COFFER_TEST_PG_PRIVATE=1 forces the private server (to check this path on a machine that has one).
if (env.COFFER_TEST_PG_PRIVATE === '1' || (!env.COFFER_TEST_PG_URL && !(await answers('127.0.0.1', 5432)))) {
  pgServer = await privatePostgres();
  env.COFFER_TEST_PG_URL = pgServer.url;
}
let status;
try {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files], { stdio: 'inherit', cwd: root, env });
  status = r.status ?? 1;
} finally {
  pgServer?.stop();
}
process.exit(status);
