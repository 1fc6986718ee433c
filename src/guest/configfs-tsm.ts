import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CofferError, inputError, verifyError } from '../errors.js';
import { parseCertTable } from '../evidence/snp/input.js';
import { silentLog, type AgentLog } from './log.js';

/**
 * Reports from the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report`, Linux 6.7+):
 * mkdir an entry, write 64 bytes of report data to `inblob`, read `outblob` (the signed report)
 * and `auxblob` (for SEV-SNP the GHCB certificate table with VCEK, ASK, ARK), rmdir the entry.
 *
 * Entries can be shared: the kernel counts writes in `generation` (reads, of outblob included, do
 * not count). The count is read before the first write (0: the entry is new) and after the last
 * read, and must have advanced by exactly the writes made here; otherwise another process wrote in
 * between and the report may carry its report data or privilege level.
 */

export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report';

/** configfs-tsm provider names and the KBS `tee` they produce evidence for. */
export const TSM_PROVIDERS: Readonly<Record<string, 'snp' | 'tdx'>> = { sev_guest: 'snp', tdx_guest: 'tdx' };

export interface TsmOptions {
  /** The report directory (default /sys/kernel/config/tsm/report). */
  root?: string;
  /** Entry name (default coffer-<pid>-<random>): created here, refused if it already exists. */
  entryName?: string;
  /** Written to `privlevel` when given (SEV-SNP: the VMPL the report claims, 0-3). */
  privlevel?: number;
  /** Refuse a provider other than this one (`sev_guest`, `tdx_guest`). */
  expectProvider?: string;
  /**
   * How long to wait for the entry's attributes after mkdir. configfs creates them with the
   * directory, so on a real kernel the first check passes; the bound lets the same code run
   * against a user-space simulator that populates a plain directory (test/guest/tsm-sim.ts).
   */
  attributeWaitMs?: number;
  log?: AgentLog;
}

export interface TsmReport {
  provider: string;
  outblob: Buffer;
  /** Empty when the provider supplied none. */
  auxblob: Buffer;
  /** `generation` after the report was read. */
  generation: number;
  entry: string;
}

const MAX_BLOB = 1 << 20;

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

async function readAttr(entry: string, name: string): Promise<Buffer> {
  try {
    const b = await readFile(join(entry, name));
    if (b.length > MAX_BLOB) throw verifyError('TSM_BAD_ATTRIBUTE', `${name} of ${entry} is larger than ${MAX_BLOB} bytes`);
    return b;
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw verifyError('TSM_READ_FAILED', `cannot read ${name} of ${entry}: ${errnoOf(e) ?? (e as Error).message}`);
  }
}

/** Writes an attribute the way configfs wants it: an existing file, opened write-only, one write. */
async function writeAttr(entry: string, name: string, data: Buffer): Promise<void> {
  let fh;
  try {
    // No O_CREAT: a missing attribute means this is not a configfs-tsm entry, never a file to create.
    fh = await open(join(entry, name), constants.O_WRONLY);
    const { bytesWritten } = await fh.write(data, 0, data.length, 0);
    if (bytesWritten !== data.length) throw verifyError('TSM_WRITE_FAILED', `short write to ${name} of ${entry} (${bytesWritten} of ${data.length} bytes)`);
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw verifyError('TSM_WRITE_FAILED', `cannot write ${name} of ${entry}: ${errnoOf(e) ?? (e as Error).message}`);
  } finally {
    await fh?.close();
  }
}

async function readGeneration(entry: string): Promise<number> {
  const text = (await readAttr(entry, 'generation')).toString('latin1').trim();
  if (!/^\d{1,10}$/.test(text)) throw verifyError('TSM_BAD_ATTRIBUTE', `generation of ${entry} is not a number: ${JSON.stringify(text.slice(0, 20))}`);
  return Number(text);
}

async function waitForAttributes(entry: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await access(join(entry, 'provider'));
      return;
    } catch {
      if (Date.now() >= until) throw verifyError('TSM_NOT_AN_ENTRY', `${entry} has no provider attribute: the directory is not a configfs-tsm report entry (is a TSM provider driver such as sev-guest or tdx-guest loaded?)`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** One report for `reportData` (exactly 64 bytes). */
export async function tsmReport(reportData: Buffer, o: TsmOptions = {}): Promise<TsmReport> {
  if (reportData.length !== 64) throw inputError('TSM_BAD_REPORT_DATA', `report data must be 64 bytes, not ${reportData.length}`);
  if (o.privlevel !== undefined && (!Number.isInteger(o.privlevel) || o.privlevel < 0 || o.privlevel > 3)) throw inputError('TSM_BAD_PRIVLEVEL', `privlevel must be 0 to 3, not ${o.privlevel}`);
  const log = o.log ?? silentLog;
  const root = o.root ?? TSM_REPORT_ROOT;
  const entry = join(root, o.entryName ?? `coffer-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(entry, { mode: 0o700 });
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'EEXIST') throw verifyError('TSM_ENTRY_EXISTS', `${entry} already exists: another process uses this report entry`);
    if (code === 'ENOENT') throw verifyError('TSM_UNAVAILABLE', `${root} does not exist: configfs-tsm needs Linux 6.7 or later with CONFIG_TSM_REPORTS, a TSM provider (sev-guest, tdx-guest) and configfs mounted at /sys/kernel/config`);
    throw verifyError('TSM_UNAVAILABLE', `cannot create ${entry}: ${code ?? (e as Error).message}`);
  }
  try {
    await waitForAttributes(entry, o.attributeWaitMs ?? 5000);
    const provider = (await readAttr(entry, 'provider')).toString('latin1').trim();
    if (o.expectProvider !== undefined && provider !== o.expectProvider) throw verifyError('TSM_WRONG_PROVIDER', `configfs-tsm provider is ${JSON.stringify(provider.slice(0, 40))}, expected ${o.expectProvider}`);
    const before = await readGeneration(entry);
    // The kernel starts a new entry at 0, and this entry was made just now by us: anything else means
    // someone wrote an attribute (privlevel, say) that our own writes might not overwrite.
    if (before !== 0) throw verifyError('TSM_GENERATION_RACE', `generation of ${entry} is ${before} right after we created it: another process wrote to the entry; refusing it`);
    let writes = 0;
    if (o.privlevel !== undefined) {
      await writeAttr(entry, 'privlevel', Buffer.from(`${o.privlevel}\n`));
      writes++;
    }
    await writeAttr(entry, 'inblob', reportData);
    writes++;
    const outblob = await readAttr(entry, 'outblob');
    if (outblob.length === 0) throw verifyError('TSM_NO_REPORT', `${entry}/outblob is empty: the provider produced no report`);
    let auxblob: Buffer = Buffer.alloc(0);
    try {
      auxblob = await readAttr(entry, 'auxblob');
    } catch (e) {
      // Providers without auxiliary data (TDX) have no auxblob attribute.
      if (!(e instanceof CofferError && e.message.includes('ENOENT'))) throw e;
    }
    const after = await readGeneration(entry);
    if (after !== before + writes) {
      throw verifyError('TSM_GENERATION_RACE', `generation of ${entry} went from ${before} to ${after} across our ${writes} write(s): another process wrote to the entry, so the report may not carry our report data; refusing it`);
    }
    return { provider, outblob, auxblob, generation: after, entry };
  } finally {
    try {
      await rmdir(entry);
    } catch (e) {
      log.warn('evidence', `could not remove ${entry}: ${errnoOf(e) ?? (e as Error).message}`);
    }
  }
}

/** The SEV-SNP certificate table in an auxblob, described for the operator log (which certificates the host supplied). */
export function describeAuxblob(auxblob: Buffer): string {
  if (auxblob.length === 0) return 'no certificates';
  const entries = parseCertTable(auxblob);
  return entries.map((e) => `${e.role ?? e.guid} (${e.data.length} bytes)`).join(', ') || 'an empty certificate table';
}
