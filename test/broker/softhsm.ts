// A private SoftHSM2 token directory for one test process: SOFTHSM2_CONF points at a config in a
// temp dir (set before the module is first initialised in this process), tokens are made with the
// real softhsm2-util.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsm {
  dir: string;
  /** Initialises a token with this label, SO PIN `so-${pin}` and user PIN `pin`. */
  initToken(label: string, pin: string): void;
  spec(token: string, label: string, extra?: string): string;
  cleanup(): void;
}

export function softHsm(): SoftHsm {
  if (!existsSync(SOFTHSM_MODULE)) throw new Error(`${SOFTHSM_MODULE} is missing: apt-get install softhsm2`);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-softhsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  return {
    dir,
    initToken(label, pin) {
      try {
        execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', `so-${pin}`, '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'pipe' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('softhsm2-util is missing: apt-get install softhsm2');
        throw e;
      }
    },
    spec: (token, label, extra = '') => `pkcs11:module=${SOFTHSM_MODULE};token=${token};label=${label}${extra}`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
