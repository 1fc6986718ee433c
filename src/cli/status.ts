import type { Command } from 'commander';
import { PINNED_ROOTS, loadPinnedRoot } from '../pki/roots.js';
import { CofferError } from '../errors.js';
import { action, common, VERSION, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';

interface RootStatus {
  id: string;
  vendor: string;
  product: string;
  subject: string | null;
  sha256: string;
  notAfter: string | null;
  ok: boolean;
  error?: string;
}

/** Loads every pinned root and checks it against its SHA-256 pin. */
function rootStatus(): RootStatus[] {
  return PINNED_ROOTS.map((pin) => {
    try {
      const a = loadPinnedRoot(pin.id);
      return { id: pin.id, vendor: pin.vendor, product: pin.product, subject: a.cert.subjectCn, sha256: pin.sha256, notAfter: a.cert.notAfter.toISOString(), ok: true };
    } catch (e) {
      return { id: pin.id, vendor: pin.vendor, product: pin.product, subject: null, sha256: pin.sha256, notAfter: null, ok: false, error: e instanceof CofferError ? `${e.code}: ${e.message}` : String(e) };
    }
  });
}

export function registerStatus(program: Command, ctx: CliContext): void {
  const print = (json: boolean | undefined): number => {
    const roots = rootStatus();
    const ok = roots.every((r) => r.ok);
    if (json) {
      ctx.io.out(toJson({ ok, version: VERSION, roots }));
    } else {
      ctx.io.out(`Coffer ${VERSION} — verifies confidential-VM evidence down to pinned vendor roots\n\nPinned roots (each checked against its SHA-256 pin):`);
      for (const r of roots) {
        ctx.io.out(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.vendor} ${r.product.padEnd(6)} ${(r.subject ?? '-').padEnd(10)} sha256 ${r.sha256}${r.ok ? `  valid to ${r.notAfter?.slice(0, 10)}` : `  ${r.error}`}`);
      }
      ctx.io.out('\nTry:\n  coffer snp show REPORT                               decode an SEV-SNP report\n  coffer snp verify REPORT --vcek VCEK --chain CHAIN    verify it to AMD\'s root\n  coffer snp verify REPORT --fetch                     fetch the VCEK from AMD KDS (cached)\n  coffer --help');
    }
    return ok ? EXIT_OK : EXIT_FAILED;
  };
  common(program.command('status').description('show the version and check every pinned vendor root against its pin')).action(action(ctx, (f: { json?: boolean }) => print(f.json)));
  const roots = program.command('roots').description('pinned vendor roots');
  common(roots.command('list').description('list the pinned roots and check each against its SHA-256 pin')).action(action(ctx, (f: { json?: boolean }) => print(f.json)));
}
