import { chmodSync, closeSync, constants, fchmodSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, writeSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { inputError } from '../errors.js';

/**
 * The broker's private files (KEK, token-signing key, TLS key, admin token, database) and the
 * directory they live in. Keys are read only from regular files owned by the broker's user with
 * no group or other permission bits, opened with O_NOFOLLOW so a symbolic link planted in their
 * place is refused rather than followed. Files and directories are created with their mode set
 * explicitly (fchmod/chmod after creation), not left to the umask.
 */

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;
/** Group or other may read, write or execute: refused for key files. */
export const INSECURE_FILE_BITS = 0o077;
/** Others may read, write or search, or the group may write: refused for the broker's home. */
export const INSECURE_DIR_BITS = 0o027;

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, '0');

/** Our uid, or undefined where the platform has none (then ownership is not checked). */
function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** Refuses a file or directory another user owns: they could change it under us. */
export function checkOwner(st: Stats, path: string, what: string, code: string): void {
  const uid = myUid();
  if (uid !== undefined && st.uid !== uid) {
    throw inputError(code, `${what} ${path} is owned by uid ${st.uid}, not by the broker's user (uid ${uid}): chown it or run the broker as its owner`);
  }
}

/**
 * Reads a private file: no symbolic link, a regular file, owned by us, no group or other
 * permission bits. `code` names the refusal (KEY_INSECURE_FILE, KEK_INSECURE_FILE).
 */
export function readPrivateFile(path: string, what: string, code = 'KEY_INSECURE_FILE'): Buffer {
  const fd = openPrivate(path, what, code);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Opens a private file for reading after the checks of readPrivateFile; the caller closes it. */
export function openPrivate(path: string, what: string, code: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ELOOP') throw inputError(code, `${what} ${path} is a symbolic link: give the file itself`);
    throw inputError(c === 'ENOENT' ? 'FILE_MISSING' : 'FILE_UNREADABLE', `${what} ${path} cannot be read (${c ?? 'error'})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw inputError(code, `${what} ${path} is not a regular file`);
    checkOwner(st, path, what, code);
    if ((st.mode & INSECURE_FILE_BITS) !== 0) {
      throw inputError(code, `${what} ${path} has mode ${octal(st.mode)}: it must not be accessible to the group or other users (chmod 600 ${path})`);
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Creates a file exclusively with mode 0600 (set explicitly) and writes `data`; never follows or replaces. */
export function writePrivateFile(path: string, data: string | Uint8Array): void {
  ensureDir(dirname(path));
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
    if (typeof data === 'string') writeSync(fd, data);
    else writeSync(fd, data);
    // On disk before anything refers to it: a KEK recorded as current in the store (and data keys
    // re-wrapped under it) must not come back empty after a power loss.
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDir(dirname(path));
}

/** Makes a new directory entry durable (best effort: not every file system lets a directory be opened for it). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch {
    // the entry is still written; only its durability across a power loss is not forced
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Creates an empty file with mode 0600 if it does not exist (for SQLite to open); tightens an existing one to 0600. */
export function touchPrivateFile(path: string, what: string, code: string): void {
  let st: Stats | undefined;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw inputError('FILE_UNREADABLE', `${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (st === undefined) {
    ensureDir(dirname(path));
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, PRIVATE_FILE_MODE);
      fchmodSync(fd, PRIVATE_FILE_MODE);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw inputError('FILE_UNWRITABLE', `cannot create ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      st = lstatSync(path);
    }
  }
  if (st.isSymbolicLink()) throw inputError(code, `${what} ${path} is a symbolic link: give the file itself`);
  if (!st.isFile()) throw inputError(code, `${what} ${path} is not a regular file`);
  checkOwner(st, path, what, code);
  if ((st.mode & INSECURE_FILE_BITS) !== 0) chmodSync(path, PRIVATE_FILE_MODE);
}

/** mkdir -p with mode 0700 set explicitly on every directory it creates. */
export function ensureDir(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  // mkdirSync returns the first directory it made; chmod it and each one below it down to `dir`.
  for (let d = dir; d.length >= first.length; d = dirname(d)) {
    chmodSync(d, PRIVATE_DIR_MODE);
    if (d === first) break;
  }
}

/**
 * The broker's home ($COFFER_HOME): created 0700, and an existing one must be a directory owned
 * by us that others cannot read, write or search and the group cannot write (BROKER_INSECURE_HOME).
 */
export function ensurePrivateHome(dir: string): void {
  ensureDir(dir);
  const st = statSync(dir);
  if (!st.isDirectory()) throw inputError('BROKER_INSECURE_HOME', `the broker home ${dir} is not a directory`);
  checkOwner(st, dir, 'the broker home', 'BROKER_INSECURE_HOME');
  if ((st.mode & INSECURE_DIR_BITS) !== 0) {
    throw inputError('BROKER_INSECURE_HOME', `the broker home ${dir} has mode ${octal(st.mode)}: other users could read or replace its files (chmod 700 ${dir})`);
  }
}
