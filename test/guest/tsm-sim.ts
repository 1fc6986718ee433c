// A user-space stand-in for the kernel's configfs-tsm with the sev-guest provider, run as its own
// process: `node --import tsx test/guest/tsm-sim.ts <report-dir> <control.json>`.
//
// The agent does to this directory exactly what it does to /sys/kernel/config/tsm/report: mkdir
// an entry, read provider and generation, write inblob (and privlevel), read outblob, auxblob and
// generation again, rmdir. What the kernel does on those operations is played here with files
// and named pipes:
//   - on mkdir (fs.watch, with a polling fallback): provider, privlevel_floor, an empty inblob and
//     privlevel, the auxblob (GHCB certificate table: VCEK, ASK, ARK from the fake AMD), and FIFOs
//     for generation and outblob; provider is written last, so its presence means "populated";
//   - the first read of generation gets the count (0);
//   - a read of outblob blocks until the simulator has read inblob, counted the writes, and signed
//     a report with REPORT_DATA = inblob and the VCEK of the fake AMD chain;
//   - the second read of generation: the simulator first removes every other attribute, then
//     answers and unlinks the FIFO while it holds it open, so the agent's rmdir finds the
//     directory empty, as rmdir of a configfs entry does.
// The control file (re-read for every entry) says what the simulated VM is: its launch
// measurement, guest policy, the VCEK key and certificates, and `meddle` (another process writes
// inblob in between: generation advances by one more than the agent's writes).
import { closeSync, constants, existsSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, watch, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildReport, signReport } from '../helpers/amd-ca.js';

export interface SimControl {
  measurement: string;
  /** Guest policy (decimal string); default 0x30000. */
  policy?: string;
  vcekKeyPem: string;
  vcekPem: string;
  /** ASK then ARK (PEM). */
  chainPem: string;
  meddle?: boolean;
  /** generation as first read (another process wrote to the entry between its mkdir and that read). */
  startGeneration?: number;
  /** Leave the VCEK out of auxblob. */
  noVcek?: boolean;
  provider?: string;
}

const GUIDS = { ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae', ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782', VCEK: '63da758d-e664-4564-adc5-f4b93be8accd' };

/** The GHCB certificate table: {GUID, u32 offset, u32 length}... then an all-zero entry, then the DER blobs. */
export function certTable(entries: { guid: string; der: Buffer }[]): Buffer {
  const headerLen = (entries.length + 1) * 24;
  const parts: Buffer[] = [];
  let offset = headerLen;
  const head = Buffer.alloc(headerLen);
  entries.forEach((e, i) => {
    Buffer.from(e.guid.replace(/-/g, ''), 'hex').copy(head, i * 24);
    head.writeUInt32LE(offset, i * 24 + 16);
    head.writeUInt32LE(e.der.length, i * 24 + 20);
    parts.push(e.der);
    offset += e.der.length;
  });
  return Buffer.concat([head, ...parts]);
}

function pemBlocks(pem: string): Buffer[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => Buffer.from(new X509Certificate(m[0]).raw));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a FIFO for writing once a reader has it open (polling: a non-blocking open fails with ENXIO until then). */
async function fifoWriter(path: string, timeoutMs = 60_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > until) throw e;
      await sleep(2);
    }
  }
}

async function serve(entry: string, control: SimControl): Promise<void> {
  const certs = pemBlocks(control.chainPem);
  const table = certTable([...(control.noVcek ? [] : [{ guid: GUIDS.VCEK, der: pemBlocks(control.vcekPem)[0] as Buffer }]), { guid: GUIDS.ASK, der: certs[0] as Buffer }, { guid: GUIDS.ARK, der: certs[1] as Buffer }]);
  writeFileSync(join(entry, 'auxblob'), table);
  writeFileSync(join(entry, 'inblob'), Buffer.alloc(0));
  writeFileSync(join(entry, 'privlevel'), Buffer.alloc(0));
  writeFileSync(join(entry, 'privlevel_floor'), '0\n');
  execFileSync('mkfifo', [join(entry, 'generation'), join(entry, 'outblob')]);
  // Written under another name and renamed, so that the agent never reads a created-but-empty
  // provider (the kernel's attribute is never empty; a plain write let it see "" under load).
  writeFileSync(join(entry, '.provider.tmp'), `${control.provider ?? 'sev_guest'}\n`);
  renameSync(join(entry, '.provider.tmp'), join(entry, 'provider'));
  let generation = control.startGeneration ?? 0;

  let fd = await fifoWriter(join(entry, 'generation'));
  writeSync(fd, `${generation}\n`);
  closeSync(fd);

  fd = await fifoWriter(join(entry, 'outblob'));
  const inblob = readFileSync(join(entry, 'inblob'));
  const privlevel = readFileSync(join(entry, 'privlevel'), 'latin1').trim();
  generation += (inblob.length > 0 ? 1 : 0) + (privlevel !== '' ? 1 : 0) + (control.meddle ? 1 : 0);
  const reportData = Buffer.alloc(64);
  inblob.copy(reportData, 0, 0, 64);
  const report = signReport(
    buildReport({ product: 'Milan', measurement: Buffer.from(control.measurement, 'hex'), reportData, vmpl: privlevel === '' ? 0 : Number(privlevel), ...(control.policy ? { policy: BigInt(control.policy) } : {}) }),
    createPrivateKey(control.vcekKeyPem),
  );
  writeSync(fd, report);
  closeSync(fd);

  fd = await fifoWriter(join(entry, 'generation'));
  for (const name of ['provider', 'privlevel_floor', 'privlevel', 'inblob', 'auxblob', 'outblob', 'generation']) unlinkSync(join(entry, name));
  writeSync(fd, `${generation}\n`);
  closeSync(fd);
  process.stdout.write(`served ${entry} generation ${generation}\n`);
}

async function main(): Promise<void> {
  const [root, controlFile] = process.argv.slice(2);
  if (!root || !controlFile) throw new Error('usage: tsm-sim.ts <report-dir> <control.json>');
  const seen = new Set<string>();
  const check = () => {
    for (const name of readdirSync(root)) {
      const entry = join(root, name);
      if (seen.has(name) || !existsSync(entry) || !statSync(entry).isDirectory()) continue;
      seen.add(name);
      const control = JSON.parse(readFileSync(controlFile, 'utf8')) as SimControl;
      serve(entry, control).catch((e: Error) => {
        process.stdout.write(`abandoned ${entry}: ${e.message}\n`);
        rmSync(entry, { recursive: true, force: true });
      });
    }
  };
  watch(root, () => check());
  setInterval(check, 50);
  process.stdout.write('ready\n');
}

// Run as a program only (the tests import certTable from here).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main();
