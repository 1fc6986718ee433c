import { closeSync, openSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { configfsTsmSource, fetchResourceWithSession, lineLogger, tpmSource, type BrokerTls } from '../guest/index.js';
import { action, common, type CliContext } from './main.js';
import { readInput } from './files.js';
import { EXIT_OK, toJson } from './output.js';

/**
 * `coffer fetch`: one RCAR exchange from inside a confidential VM, the secret written to a new
 * file (mode 0600, never overwriting) or to standard output. Progress lines go to standard error.
 * With --json, a volume key's authenticated `coffer.volume` header (key version, initialized) is
 * shown as `volume`; fetching never reports a volume initialized (the agent does, once it formats).
 */

interface FetchFlags {
  broker: string;
  resource: string;
  evidence: string;
  tsmRoot?: string;
  tpm: string;
  privlevel?: string;
  ca?: string;
  pin?: string;
  allowInsecureHttp?: boolean;
  timeout: string;
  out?: string;
  json?: boolean;
}

/** Creates `path` with mode 0600 (refusing an existing file or a symlink) and writes `data`. */
function writeSecretFile(path: string, data: Buffer): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw inputError('FETCH_OUT_EXISTS', code === 'EEXIST' ? `${path} already exists: refusing to overwrite it` : `cannot create ${path}: ${code ?? (e as Error).message}`);
  }
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

export function registerFetch(program: Command, ctx: CliContext): void {
  common(
    program
      .command('fetch')
      .description('inside a confidential VM: attest to a broker and fetch a secret (KBS protocol)')
      .requiredOption('--broker <url>', 'broker URL (https://, or http:// to a loopback address)')
      .requiredOption('--resource <path>', 'resource path repository/type/tag')
      .option('--evidence <source>', 'evidence source: configfs-tsm (SEV-SNP) or tpm', 'configfs-tsm')
      .option('--tpm <target>', 'TPM for --evidence tpm: /dev/tpmrm0 or swtpm:host=H,port=P', '/dev/tpmrm0')
      .option('--tsm-root <dir>', 'configfs-tsm report directory (default /sys/kernel/config/tsm/report)')
      .option('--privlevel <n>', 'SEV-SNP VMPL to request the report at (configfs-tsm privlevel)')
      .option('--ca <file>', 'CA certificate (PEM) the broker certificate must chain to')
      .option('--pin <sha256>', 'SHA-256 fingerprint of the broker certificate (instead of --ca)')
      .option('--allow-insecure-http', 'allow http:// to a non-loopback broker (an impostor could supply the secret)')
      .option('--timeout <seconds>', 'per-request timeout', '10')
      .option('--out <file>', 'write the secret to this new file (mode 0600) instead of standard output'),
  ).action(
    action(ctx, async (f: FetchFlags) => {
      if (f.evidence !== 'configfs-tsm' && f.evidence !== 'tpm') throw inputError('USAGE', `--evidence ${f.evidence}: use configfs-tsm or tpm`);
      if (f.ca !== undefined && f.pin !== undefined) throw inputError('USAGE', 'give --ca or --pin, not both');
      const timeout = Number(f.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 300) throw inputError('USAGE', '--timeout must be 1 to 300 seconds');
      const privlevel = f.privlevel === undefined ? undefined : Number(f.privlevel);
      if (privlevel !== undefined && !(Number.isInteger(privlevel) && privlevel >= 0 && privlevel <= 3)) throw inputError('USAGE', '--privlevel must be 0 to 3');
      const log = lineLogger((l) => ctx.io.err(l));
      const tls: BrokerTls | undefined = f.pin !== undefined ? { pinSha256: f.pin } : f.ca !== undefined ? { ca: readInput(f.ca, 'CA certificate') } : undefined;
      const evidence = f.evidence === 'tpm' ? tpmSource({ target: f.tpm, log }) : configfsTsmSource({ ...(f.tsmRoot ? { root: f.tsmRoot } : {}), ...(privlevel !== undefined ? { privlevel } : {}), log });
      const got = await fetchResourceWithSession({ broker: f.broker, resource: f.resource, evidence, ...(tls ? { tls } : {}), allowInsecureHttp: f.allowInsecureHttp === true, timeoutMs: timeout * 1000, log });
      const secret = got.secret;
      // The session's cookie and token are credentials: never in the output.
      const volume = got.volume ? { volume: { id: got.volume.id, keyVersion: got.volume.keyVersion, initialized: got.volume.initialized } } : {};
      try {
        if (f.out !== undefined) {
          writeSecretFile(f.out, secret);
          if (f.json) ctx.io.out(toJson({ ok: true, resource: f.resource, size: secret.length, out: f.out, ...volume }));
        } else if (f.json) {
          ctx.io.out(toJson({ ok: true, resource: f.resource, size: secret.length, value: secret.toString('base64'), ...volume }));
        } else {
          process.stdout.write(secret);
        }
      } finally {
        secret.fill(0);
      }
      return EXIT_OK;
    }),
  );
}
