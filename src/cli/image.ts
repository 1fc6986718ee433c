import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import {
  authenticodeHash,
  checkBank,
  dbAuthority,
  parsePhase,
  predictPcr11,
  predictPcr4,
  predictPcr7,
  signedReferenceValues,
  snpLaunchMeasurement,
  tdxMeasurement,
  ukiSections,
  SNP_VMMS,
  type SecureBootState,
  type SnpMeasureOptions,
  type SnpVmm,
} from '../image/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { collect, intArg, parseTime, readInput } from './files.js';
import { writeOutput } from './uki.js';

interface SnpFlags {
  vcpus?: string;
  vcpuType?: string;
  guestFeatures?: string;
  vmm?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  trace?: boolean;
}

function snpOptions(f: SnpFlags): SnpMeasureOptions {
  if ((f.initrd !== undefined || f.append !== undefined) && f.kernel === undefined) throw inputError('USAGE', '--initrd and --append are measured only with --kernel');
  const vmm = f.vmm ?? 'qemu';
  if (!(SNP_VMMS as readonly string[]).includes(vmm)) throw inputError('USAGE', `--vmm must be one of ${SNP_VMMS.join(', ')}`);
  let guestFeatures: bigint | undefined;
  if (f.guestFeatures !== undefined) {
    if (!/^(0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(f.guestFeatures)) throw inputError('BAD_NUMBER', `--guest-features must be a number (e.g. 0x1), got "${f.guestFeatures}"`);
    guestFeatures = BigInt(f.guestFeatures);
    if (guestFeatures >= 1n << 64n) throw inputError('BAD_NUMBER', '--guest-features must fit in 64 bits');
  }
  return {
    ...(f.vcpus !== undefined ? { vcpus: intArg(f.vcpus, '--vcpus', 512) } : {}),
    ...(f.vcpuType !== undefined ? { vcpuType: f.vcpuType } : {}),
    ...(guestFeatures !== undefined ? { guestFeatures } : {}),
    vmm: vmm as SnpVmm,
    ...(f.kernel !== undefined
      ? { kernel: { kernel: readInput(f.kernel, 'kernel'), ...(f.initrd !== undefined ? { initrd: readInput(f.initrd, 'initrd') } : {}), ...(f.append !== undefined ? { append: f.append } : {}) } }
      : {}),
    ...(f.trace ? { trace: true } : {}),
  };
}

function snpFlags(cmd: Command): Command {
  return cmd
    .option('--vcpus <n>', 'number of vCPUs (one VMSA each)', '1')
    .option('--vcpu-type <type>', 'QEMU CPU model (EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...) or a CPUID signature in hex', 'EPYC-v4')
    .option('--guest-features <n>', 'SEV_FEATURES of the VMSA', '0x1')
    .option('--vmm <vmm>', `the VMM that launches the guest: ${SNP_VMMS.join(', ')}`, 'qemu')
    .option('--kernel <file>', 'kernel passed with -kernel (measured through the hashes table)')
    .option('--initrd <file>', 'initrd passed with -initrd')
    .option('--append <cmdline>', 'kernel command line passed with -append');
}

function loadVariable(path: string | undefined, what: string): Buffer | undefined {
  return path === undefined ? undefined : readInput(path, `${what} ESL`);
}

function loadReferenceKey(path: string): KeyObject {
  try {
    return createPrivateKey(readInput(path, 'reference signing key'));
  } catch (e) {
    if (e instanceof Error && 'code' in e && (e as { code?: string }).code === 'FILE_UNREADABLE') throw e;
    throw inputError('REFERENCE_BAD_KEY', `${path} is not an unencrypted PEM or DER private key`);
  }
}

interface ReferenceFlags extends SnpFlags {
  sign: string;
  kid?: string;
  uki?: string;
  ovmf?: string[];
  tdx?: boolean;
  name: string;
  id?: string;
  version: string;
  out: string;
  phase: string;
  bootApp?: string[];
  pk?: string;
  kek?: string;
  db?: string;
  dbx?: string;
  verityRoot?: string;
  issuedAt?: string;
  json?: boolean;
}

export function registerImage(program: Command, ctx: CliContext): void {
  const image = program.command('image').description('predict what an image measures when it boots, and publish it as signed reference values');
  const measure = image.command('measure').description('predicted launch measurements and PCRs');

  common(snpFlags(measure.command('snp').description('SEV-SNP launch measurement of a guest started from an OVMF image').requiredOption('--ovmf <file>', 'OVMF image with SEV metadata')).option('--trace', 'list every page folded in (with --json)')).action(
    action(ctx, (f: SnpFlags & { ovmf: string; json?: boolean }) => {
      const m = snpLaunchMeasurement(readInput(f.ovmf, 'OVMF image'), snpOptions(f));
      if (f.json) ctx.io.out(toJson({ ok: true, ovmf: f.ovmf, ...m, guestFeatures: `0x${m.guestFeatures.toString(16)}`, vcpuSignature: `0x${m.vcpuSignature.toString(16)}`, ovmfGpa: `0x${m.ovmfGpa.toString(16)}`, apEip: m.apEip === undefined ? null : `0x${m.apEip.toString(16)}` }));
      else ctx.io.out(`SEV-SNP launch measurement: ${m.measurement}\n(${f.ovmf}, ${m.vcpus} vCPU(s), signature 0x${m.vcpuSignature.toString(16)}, guest features 0x${m.guestFeatures.toString(16)}, VMM ${m.vmm}${m.kernelHashes ? ', kernel hashes table' : ''})`);
      return EXIT_OK;
    }),
  );

  common(measure.command('tdx').description('TDX MRTD of a TD started from a TDVF (OVMF) image, for both page orders').requiredOption('--ovmf <file>', 'OVMF image with TDVF metadata')).action(
    action(ctx, (f: { ovmf: string; json?: boolean }) => {
      const m = tdxMeasurement(readInput(f.ovmf, 'OVMF image'));
      if (f.json) ctx.io.out(toJson({ ok: true, ovmf: f.ovmf, ...m, sections: m.sections.map((s) => ({ ...s, memoryAddress: `0x${s.memoryAddress.toString(16)}`, memorySize: `0x${s.memorySize.toString(16)}` })) }));
      else ctx.io.out(`MRTD (per page, current KVM):        ${m.mrtd.perPage}\nMRTD (section first, older QEMU):    ${m.mrtd.sectionFirst}`);
      return EXIT_OK;
    }),
  );

  common(
    measure
      .command('pcr')
      .description('PCR 4, 7 and 11 for a UKI booted directly by UEFI firmware')
      .requiredOption('--uki <file>', 'the (signed) UKI')
      .option('--boot-app <file>', 'an image the firmware starts before the UKI (shim, a boot loader); repeatable, in order', collect)
      .option('--phase <words>', 'PCR 11 boot phase words, colon separated ("" for the stub alone)', 'enter-initrd:leave-initrd:sysinit:ready')
      .option('--bank <alg>', 'sha1, sha256, sha384 or sha512', 'sha256')
      .option('--pk <esl>', 'PK variable (ESL) for PCR 7')
      .option('--kek <esl>', 'KEK variable (ESL)')
      .option('--db <esl>', 'db variable (ESL)')
      .option('--dbx <esl>', 'dbx variable (ESL)'),
  ).action(
    action(ctx, (f: { uki: string; bootApp?: string[]; phase: string; bank: string; pk?: string; kek?: string; db?: string; dbx?: string; json?: boolean }) => {
      const bank = checkBank(f.bank);
      const uki = readInput(f.uki, 'UKI');
      const s = ukiSections(uki);
      if (!s['.linux']) throw inputError('UKI_NO_KERNEL', `${f.uki} has no .linux section: it is not a UKI`);
      const apps = [...(f.bootApp ?? []).map((p) => authenticodeHash(readInput(p, 'boot application'), bank)), authenticodeHash(uki, bank)];
      const pcrs: Record<string, string> = {
        '4': predictPcr4(apps, { bank }).toString('hex'),
        '11': predictPcr11(s, { bank, phase: parsePhase(f.phase) }).toString('hex'),
      };
      const sb = secureBootState(f, uki);
      if (sb) pcrs['7'] = predictPcr7(sb.state, { bank }).toString('hex');
      ctx.io.out(f.json ? toJson({ ok: true, bank, pcrs, ...(sb ? { authority: sb.authority ?? null } : {}) }) : Object.entries(pcrs).map(([k, v]) => `${k}:${bank}=${v}`).join('\n'));
      return EXIT_OK;
    }),
  );

  common(
    snpFlags(
      image
        .command('reference')
        .description('write the signed reference-value document (JWS) for an image: UKI Authenticode digest, PCR 4/7/11, SNP launch digest, TDX MRTD, dm-verity root hash')
        .requiredOption('--sign <key>', 'reference signing key (Ed25519 or ECDSA P-384, PEM)')
        .option('--kid <id>', 'key id for the JWS header')
        .option('--uki <file>', 'the signed UKI')
        .option('--ovmf <file>', 'OVMF image the guest boots with (repeatable: one SNP digest each)', collect)
        .option('--tdx', 'also predict the TDX MRTD of each --ovmf (both page orders)')
        .requiredOption('--name <name>', 'image name')
        .option('--id <id>', 'image id the policy refers to (default: --name)')
        .requiredOption('--version <version>', 'image version')
        .option('--phase <words>', 'PCR 11 boot phase words the value is predicted at', 'enter-initrd:leave-initrd:sysinit:ready')
        .option('--boot-app <file>', 'images the firmware starts before the UKI, in order (PCR 4)', collect)
        .option('--pk <esl>', 'PK variable (ESL): with --kek, --db (and --dbx), PCR 7 is predicted')
        .option('--kek <esl>', 'KEK variable (ESL)')
        .option('--db <esl>', 'db variable (ESL)')
        .option('--dbx <esl>', 'dbx variable (ESL)')
        .option('--verity-root <hex>', 'dm-verity root hash (default: roothash= on the UKI command line)')
        .option('--issued-at <time>', 'issuedAt (ISO 8601; default now)')
        .requiredOption('--out <file>', 'where to write the JWS'),
    ),
  ).action(
    action(ctx, async (f: ReferenceFlags) => {
      const key = loadReferenceKey(f.sign);
      const uki = f.uki !== undefined ? readInput(f.uki, 'UKI') : undefined;
      if (!uki && (f.bootApp || f.pk || f.kek || f.db || f.dbx)) throw inputError('USAGE', '--boot-app and the Secure Boot variables predict PCR 4 and 7 of a UKI boot: give --uki');
      if (f.verityRoot !== undefined && !/^[0-9a-fA-F]{64}$/.test(f.verityRoot)) throw inputError('BAD_HEX', '--verity-root must be 32 bytes of hex');
      if (!uki && !f.ovmf?.length && f.verityRoot === undefined) throw inputError('USAGE', 'nothing to publish: give --uki, --ovmf or --verity-root');
      const sb = uki ? secureBootState(f, uki) : undefined;
      const snp = snpOptions(f);
      const r = await signedReferenceValues(
        {
          image: { id: f.id ?? f.name, name: f.name, version: f.version },
          issuedAt: f.issuedAt !== undefined ? parseTime(f.issuedAt) : new Date(),
          ...(uki ? { uki, pcr11Phase: parsePhase(f.phase), bootChain: (f.bootApp ?? []).map((p) => authenticodeHash(readInput(p, 'boot application'))) } : {}),
          ...(sb ? { secureBoot: sb.state } : {}),
          ...(f.ovmf?.length ? { ovmf: f.ovmf.map((p) => ({ data: readInput(p, 'OVMF image'), snp, tdx: f.tdx ?? false })) } : {}),
          ...(f.verityRoot !== undefined ? { verityRootHash: f.verityRoot } : {}),
        },
        key,
        f.kid !== undefined ? { kid: f.kid } : {},
      );
      writeOutput(f.out, `${r.jws}\n`);
      if (f.json) ctx.io.out(toJson({ ok: true, out: f.out, values: r.values, notes: r.notes }));
      else ctx.io.out([`wrote ${f.out}: signed reference values for ${r.values.image.id} ${r.values.image.version}`, ...r.notes.map((n) => `note: ${n}`)].join('\n'));
      return EXIT_OK;
    }),
  );
}

function secureBootState(f: { pk?: string; kek?: string; db?: string; dbx?: string }, uki: Buffer): { state: SecureBootState; authority?: string } | undefined {
  if (f.pk === undefined && f.kek === undefined && f.db === undefined && f.dbx === undefined) return undefined;
  if (f.pk === undefined || f.kek === undefined || f.db === undefined) throw inputError('USAGE', 'PCR 7 needs --pk, --kek and --db (and --dbx when it is set)');
  const db = loadVariable(f.db, 'db') as Buffer;
  const auth = dbAuthority(uki, db);
  if (!auth) throw inputError('SECUREBOOT_UNTRUSTED_SIGNER', 'no db certificate verifies a signature of the UKI: with Secure Boot on, the firmware would refuse to start it');
  const pk = loadVariable(f.pk, 'PK');
  const kek = loadVariable(f.kek, 'KEK');
  const dbx = loadVariable(f.dbx, 'dbx');
  return {
    state: { secureBoot: true, ...(pk ? { pk } : {}), ...(kek ? { kek } : {}), db, ...(dbx ? { dbx } : {}), authorities: [{ data: auth.data }] },
    authority: auth.subject,
  };
}

