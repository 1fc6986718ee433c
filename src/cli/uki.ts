import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { authenticodeHash, buildUki, checkBank, parsePhase, pcr11Phases, predictPcr11, ukiSections } from '../image/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { readInput } from './files.js';
import { loadSigner } from './secureboot.js';

export function writeOutput(path: string, data: Uint8Array | string, mode?: number): void {
  try {
    writeFileSync(path, data, mode === undefined ? undefined : { mode });
  } catch {
    throw inputError('FILE_UNWRITABLE', `cannot write ${path}`);
  }
}

/** ukify's convention: the command line as text, or @FILE. */
function cmdlineArg(v: string): Buffer {
  return v.startsWith('@') ? readInput(v.slice(1), 'command line file') : Buffer.from(v, 'utf8');
}

interface BuildFlags {
  stub: string;
  linux: string;
  initrd?: string;
  cmdline?: string;
  osrel?: string;
  osRelease?: string;
  pcrpkey?: string;
  splash?: string;
  dtb?: string;
  signKey?: string;
  signCert?: string;
  out: string;
  json?: boolean;
}

export function registerUki(program: Command, ctx: CliContext): void {
  const uki = program.command('uki').description('unified kernel images: systemd-stub with kernel, initrd and command line as PE sections');

  common(
    uki
      .command('build')
      .description('add .osrel, .cmdline, .pcrpkey, .linux and .initrd sections to systemd-stub; optionally sign the result (Authenticode)')
      .requiredOption('--stub <file>', 'systemd-stub, e.g. /usr/lib/systemd/boot/efi/linuxx64.efi.stub')
      .requiredOption('--linux <file>', 'kernel image')
      .option('--initrd <file>', 'initrd')
      .option('--cmdline <text|@file>', 'kernel command line, as text or @FILE (measured exactly as given)')
      .option('--osrel <file>', 'os-release file')
      .option('--os-release <file>', 'same as --osrel')
      .option('--pcrpkey <file>', 'public key for signed PCR 11 policies (PEM)')
      .option('--splash <file>', 'boot splash (BMP)')
      .option('--dtb <file>', 'devicetree')
      .option('--sign-key <file>', 'db private key to sign the UKI with')
      .option('--sign-cert <file>', 'db certificate that goes with --sign-key')
      .requiredOption('--out <file>', 'where to write the UKI (replaced)'),
  ).action(
    action(ctx, (f: BuildFlags) => {
      if ((f.signKey === undefined) !== (f.signCert === undefined)) throw inputError('USAGE', '--sign-key and --sign-cert go together');
      if (f.osrel !== undefined && f.osRelease !== undefined) throw inputError('USAGE', 'give --osrel or --os-release, not both');
      const osrelPath = f.osrel ?? f.osRelease;
      const signer = f.signKey !== undefined && f.signCert !== undefined ? loadSigner(f.signKey, f.signCert) : undefined;
      const r = buildUki(
        readInput(f.stub, 'stub'),
        {
          linux: readInput(f.linux, 'kernel'),
          ...(f.initrd !== undefined ? { initrd: readInput(f.initrd, 'initrd') } : {}),
          ...(f.cmdline !== undefined ? { cmdline: cmdlineArg(f.cmdline) } : {}),
          ...(osrelPath !== undefined ? { osrel: readInput(osrelPath, 'os-release') } : {}),
          ...(f.pcrpkey !== undefined ? { pcrpkey: readInput(f.pcrpkey, 'PCR public key') } : {}),
          ...(f.splash !== undefined ? { splash: readInput(f.splash, 'splash') } : {}),
          ...(f.dtb !== undefined ? { dtb: readInput(f.dtb, 'devicetree') } : {}),
        },
        signer ? { signer } : {},
      );
      writeOutput(f.out, r.image);
      const sections = ukiSections(r.image);
      const authenticode = authenticodeHash(r.image, 'sha256').toString('hex');
      const pcr11 = pcr11Phases(sections);
      if (f.json) {
        ctx.io.out(toJson({ ok: true, out: f.out, size: r.image.length, signed: r.signed, authenticode, sections: r.sections, pcr11: { sha256: pcr11 } }));
      } else {
        const lines = r.sections.map((s) => `  ${s.name.padEnd(9)} VMA 0x${s.virtualAddress.toString(16).padStart(8, '0')}  size ${s.virtualSize}`);
        ctx.io.out([`wrote ${f.out} (${r.image.length} bytes, ${r.signed ? 'signed' : 'unsigned'})`, ...lines, `Authenticode SHA-256: ${authenticode}`, ...pcr11.map((p) => `PCR 11 ${p.phase === '' ? '(stub)' : p.phase}: ${p.value}`)].join('\n'));
      }
      return EXIT_OK;
    }),
  );

  common(
    uki
      .command('pcr11')
      .description('predict PCR 11 for a UKI as systemd-stub and systemd-pcrphase extend it')
      .argument('<uki>', 'the UKI')
      .option('--bank <alg>', 'sha1, sha256, sha384 or sha512', 'sha256')
      .option('--phase <words>', 'boot phase words, colon separated ("" for the stub alone); default: every phase systemd-measure lists'),
  ).action(
    action(ctx, (path: string, f: { bank: string; phase?: string; json?: boolean }) => {
      const bank = checkBank(f.bank);
      const sections = ukiSections(readInput(path, 'UKI'));
      if (!sections['.linux']) throw inputError('UKI_NO_KERNEL', `${path} has no .linux section: it is not a UKI`);
      const values = f.phase !== undefined ? [{ phase: f.phase, value: predictPcr11(sections, { bank, phase: parsePhase(f.phase) }).toString('hex') }] : pcr11Phases(sections, bank);
      ctx.io.out(f.json ? toJson({ ok: true, pcr: 11, bank, values }) : values.map((v) => `11:${bank}=${v.value}  ${v.phase === '' ? '(stub)' : v.phase}`).join('\n'));
      return EXIT_OK;
    }),
  );
}
