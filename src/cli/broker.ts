import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { isIP } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import { DEFAULT_PORT, RETENTION_DEFAULTS, ROLES, brokerPaths, pinnedAgent, readPrivateFile, rotateKek, createToken, describeStore, isPostgresUrl, openStore, parseListen, prefixPath, resourcePath, startBroker, urlHasPassword, type Role, type RunningBroker } from '../broker/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { readInput, parseTime } from './files.js';
import { akFingerprint, parseAkPart } from '../evidence/tpm/index.js';

/**
 * `coffer broker ...`: run the key broker and administer it. `serve` and `token create` work on
 * the local files (database, KEK, signing key); everything else talks to the admin API of a
 * running broker (--url, default $COFFER_URL or http://127.0.0.1:8666) with a bearer token read
 * from $COFFER_TOKEN, --token-file, or the bootstrap file next to the default database. Tokens
 * are never taken on the command line, where other users could read them in the process list.
 */

interface HomeFlags {
  home?: string;
  db?: string;
  store?: string;
  json?: boolean;
}

interface ServeFlags extends HomeFlags {
  kek?: string;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsSelfSigned?: boolean;
  clientCa?: string;
  allowInsecureHttp?: boolean;
  attestationPolicy?: string;
  logLevel?: string;
  retainAttestationsDays?: string;
  maxAttestations?: string;
  maxUnverifiedRefusals?: string;
}

/** A whole number in [min, max] from a flag, or a USAGE error naming the flag. */
function intFlag(flag: string, v: string, min: number, max: number): number {
  const n = /^\d{1,9}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw inputError('USAGE', `${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

interface ClientFlags extends HomeFlags {
  url?: string;
  tokenFile?: string;
  ca?: string;
  pin?: string;
  clientCert?: string;
  clientKey?: string;
  allowInsecureHttp?: boolean;
}

/** Loopback hosts, where plain HTTP never leaves the machine. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** In-process hooks for tests: they receive the running broker that `serve` started. */
export interface BrokerCliHooks {
  onServe?: (running: RunningBroker) => void;
  /** Do not install SIGINT/SIGTERM handlers (tests run many brokers in one process). */
  noSignals?: boolean;
}

function homeOf(f: HomeFlags) {
  return brokerPaths({ ...(f.home ? { home: f.home } : {}), ...(f.db ? { db: f.db } : {}) });
}

const STORE_HELP = 'store: postgres://USER@HOST/DB (replicas share it; password from PGPASSWORD or ~/.pgpass), sqlite:PATH or a file path (default $COFFER_STORE, else the SQLite --db)';

/**
 * The store to open: --store, else --db, else $COFFER_STORE, else <home>/broker.db. A password in
 * --store is refused: every user sees command lines in the process list.
 */
function storeOf(f: HomeFlags): string {
  if (f.store !== undefined) {
    if (f.db !== undefined) throw inputError('USAGE', '--store and --db are alternatives: give one');
    if (isPostgresUrl(f.store) && urlHasPassword(f.store)) {
      throw inputError('STORE_PASSWORD_ON_COMMAND_LINE', '--store must not carry a password (the process list shows command lines): use PGPASSWORD, ~/.pgpass, or the whole URL in $COFFER_STORE');
    }
    return f.store;
  }
  const env = process.env.COFFER_STORE?.trim();
  return f.db === undefined && env ? env : homeOf(f).db;
}

/** `--kek`: a pkcs11: or file: spec as given, a bare path made absolute. */
function kekSpec(v: string): string {
  return v.startsWith('pkcs11:') || v.startsWith('file:') ? v : `file:${resolvePath(v)}`;
}

function adminToken(f: ClientFlags): string {
  const env = process.env.COFFER_TOKEN?.trim();
  if (env) return env;
  const file = f.tokenFile ?? homeOf(f).adminTokenFile;
  if (!f.tokenFile && !existsSync(file)) throw inputError('ADMIN_NO_TOKEN', `no admin token: set COFFER_TOKEN or give --token-file (the first \`coffer broker serve\` writes one to ${file})`);
  return readInput(file, 'token file').toString('utf8').trim();
}

interface ApiReply {
  status: number;
  body: Record<string, unknown>;
}

/** One admin API call; a problem reply becomes a CofferError with the problem's code. */
async function api(f: ClientFlags, method: string, path: string, payload?: unknown): Promise<ApiReply> {
  const base = new URL(f.url ?? process.env.COFFER_URL ?? `http://127.0.0.1:${DEFAULT_PORT}`);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw inputError('USAGE', `--url ${base.href} must be http:// or https://`);
  // Checked before the token is even read: the admin token would cross the network in clear.
  if (base.protocol === 'http:' && !isLoopbackHost(base.hostname) && f.allowInsecureHttp !== true) {
    throw inputError('BROKER_INSECURE_URL', `refusing to send the admin token over plain HTTP to ${base.host}: use https:// (with --ca if needed), or --allow-insecure-http if the network path is trusted`);
  }
  const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base.href : `${base.href}/`);
  const token = adminToken(f);
  const data = payload === undefined ? undefined : Buffer.from(JSON.stringify(payload));
  const ca = f.ca ? readInput(f.ca, 'CA certificate') : undefined;
  if (f.pin !== undefined && url.protocol !== 'https:') throw inputError('USAGE', '--pin needs an https:// broker URL');
  if ((f.clientCert === undefined) !== (f.clientKey === undefined)) throw inputError('USAGE', '--client-cert and --client-key go together');
  const agent = f.pin !== undefined ? pinnedAgent(f.pin) : undefined;
  const clientCert = f.clientCert !== undefined && f.clientKey !== undefined ? { cert: readInput(f.clientCert, 'client certificate'), key: readPrivateFile(f.clientKey, 'the TLS client key') } : undefined;
  const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      url,
      {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
        timeout: 30_000,
        ...(ca ? { ca } : {}),
        ...(agent ? { agent } : {}),
        ...(clientCert ?? {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => reject(e instanceof CofferError ? e : inputError('BROKER_UNREACHABLE', `cannot reach the broker at ${base.origin}: ${e.code ?? e.message}`)));
    if (data) req.write(data);
    req.end();
  }).finally(() => data?.fill(0));
  let body: Record<string, unknown> = {};
  if (reply.text) {
    try {
      body = JSON.parse(reply.text) as Record<string, unknown>;
    } catch {
      throw new CofferError('BROKER_BAD_REPLY', `the broker answered ${reply.status} with something that is not JSON`);
    }
  }
  if (reply.status >= 400) {
    const code = typeof body.code === 'string' ? body.code : `HTTP_${reply.status}`;
    const detail = typeof body.detail === 'string' ? body.detail : `HTTP ${reply.status}`;
    throw new CofferError(code, `${detail}${typeof body.type === 'string' ? ` (${body.type})` : ''}`, { kind: reply.status === 400 || reply.status === 413 ? 'input' : 'verify' });
  }
  return { status: reply.status, body };
}

const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/');

function clientOptions(cmd: Command): Command {
  return common(cmd)
    .option('--url <url>', `broker URL (default $COFFER_URL or http://127.0.0.1:${DEFAULT_PORT})`)
    .option('--token-file <file>', 'file holding the admin token (default $COFFER_TOKEN, else admin.token next to the default database)')
    .option('--ca <file>', 'CA certificate (PEM) to trust for an https:// broker')
    .option('--pin <fingerprint>', 'trust exactly this certificate: the SHA-256 fingerprint (or sha256//… public-key pin) `broker serve` printed')
    .option('--client-cert <file>', 'TLS client certificate (PEM) for a broker started with --client-ca')
    .option('--client-key <file>', 'its private key (PEM, mode 0600)')
    .option('--allow-insecure-http', 'send the admin token over plain http:// to a non-loopback broker (refused otherwise)')
    .option('--home <dir>', 'broker home (default $COFFER_HOME or ./.coffer)');
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const w = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] as number))).join('  ')).join('\n');
}

const iso = (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toISOString() : '-');

export function registerBroker(program: Command, ctx: CliContext, hooks: BrokerCliHooks = {}): void {
  const broker = program.command('broker').description('the key broker: release secrets only to attested confidential VMs');

  common(
    broker
      .command('serve')
      .description('run the key broker (KBS protocol and admin API) on the local store')
      .option('--home <dir>', 'where the database, KEK and signing key live (default $COFFER_HOME or ./.coffer)')
      .option('--db <path>', 'SQLite database (default <home>/broker.db)')
      .option('--store <url>', STORE_HELP)
      .option('--kek <spec>', 'key-encryption key: a file (PATH or file:PATH, 32 bytes, mode 0600) or pkcs11:module=LIB;token=LABEL;label=KEY (PIN from $COFFER_PKCS11_PIN, or pin-env=VAR / pin-file=PATH); default <home>/kek.key, created on first start; after rotate-kek the store\'s current KEK')
      .option('--listen <host:port>', 'address to listen on', `127.0.0.1:${DEFAULT_PORT}`)
      .option('--tls-cert <file>', 'TLS certificate chain (PEM)')
      .option('--tls-key <file>', 'TLS private key (PEM, mode 0600)')
      .option('--tls-self-signed', 'HTTPS with a generated self-signed ECDSA P-256 certificate kept in <home> (its fingerprint is printed: pin it)')
      .option('--client-ca <file>', 'PEM CA: admin API and /metrics then also need a TLS client certificate issued by it (KBS routes do not)')
      .option('--allow-insecure-http', 'serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)')
      .option('--attestation-policy <file>', 'policy every attestation must pass before a token is issued (default: verified, no debug, no migration)')
      .option('--log-level <level>', 'log level (default info); logs are JSON on standard error')
      .option('--retain-attestations-days <n>', `delete console attestation records older than this (default ${RETENTION_DEFAULTS.attestationDays}); the audit log is never purged`)
      .option('--max-attestations <n>', `keep at most this many attestation records, oldest deleted first (default ${RETENTION_DEFAULTS.maxAttestations})`)
      .option('--max-unverified-refusals <n>', `of which at most this many refusals whose evidence did not verify (default ${RETENTION_DEFAULTS.maxUnverifiedRefusals})`),
  ).action(
    action(ctx, async (f: ServeFlags) => {
      if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw inputError('USAGE', '--tls-cert and --tls-key go together');
      const { host, port } = parseListen(f.listen);
      const paths = brokerPaths({ ...(f.home ? { home: f.home } : {}), ...(f.db ? { db: f.db } : {}) });
      const store = storeOf(f);
      const retention = {
        ...(f.retainAttestationsDays !== undefined ? { attestationDays: intFlag('--retain-attestations-days', f.retainAttestationsDays, 1, 36_500) } : {}),
        ...(f.maxAttestations !== undefined ? { maxAttestations: intFlag('--max-attestations', f.maxAttestations, 1, 100_000_000) } : {}),
        ...(f.maxUnverifiedRefusals !== undefined ? { maxUnverifiedRefusals: intFlag('--max-unverified-refusals', f.maxUnverifiedRefusals, 0, 100_000_000) } : {}),
      };
      const running = await startBroker({
        retention,
        paths,
        store,
        host,
        port,
        ...(f.tlsCert && f.tlsKey ? { tls: { certFile: f.tlsCert, keyFile: f.tlsKey } } : {}),
        ...(f.tlsSelfSigned ? { selfSignedTls: true } : {}),
        ...(f.clientCa ? { clientCaFile: f.clientCa } : {}),
        ...(f.kek ? { kek: kekSpec(f.kek) } : {}),
        allowInsecureHttp: f.allowInsecureHttp === true,
        ...(f.attestationPolicy ? { attestationPolicyFile: f.attestationPolicy } : {}),
        ...(f.logLevel ? { logLevel: f.logLevel } : {}),
      });
      if (!hooks.noSignals) {
        const stop = () => void running.close().finally(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      hooks.onServe?.(running);
      const home = paths.home;
      if (f.json) {
        ctx.io.out(toJson({ ok: true, url: running.url, db: paths.db, store: describeStore(store), kek: running.kek, tls: running.tls, earKey: paths.earKey, adminTokenFile: running.created.adminToken ? paths.adminTokenFile : undefined, created: running.created }));
        return EXIT_OK;
      }
      const lines = [
        `coffer broker listening on ${running.url}  (KBS: ${running.url}/kbs/v0, admin: ${running.url}/admin/v0, API: ${running.url}/openapi.json)`,
        `  store ${describeStore(store)}; ${running.created.kek ? 'new ' : ''}KEK ${running.kek.id} (${running.kek.spec})${running.created.kek && running.kek.spec.startsWith('file:') ? ' (0600: back it up — without it no secret can be read)' : ''}`,
      ];
      if (running.tls) {
        lines.push(`  TLS certificate ${running.tls.certFile}${running.tls.selfSigned ? (running.tls.created ? ' (self-signed, new)' : ' (self-signed)') : ''}, SHA-256 fingerprint ${running.tls.fingerprint}`, `  pin it: curl --cacert ${running.tls.certFile} …, or curl --pinnedpubkey '${running.tls.spkiPin}' -k …`);
      }
      if (running.created.adminToken) lines.push(`  first start: an admin token was written to ${paths.adminTokenFile} (0600)`);
      const env = home === brokerPaths().home ? '' : `COFFER_HOME=${home} `;
      lines.push(
        '  add a first secret and who may have it:',
        `    ${env}coffer broker policy set default --policy policy.yaml      # e.g. measurements: {snp: ["<launch measurement>"]}`,
        `    ${env}coffer broker secret put default/key/disk --from-file disk.key`,
        '  a VM then runs auth → attest → GET /kbs/v0/resource/default/key/disk (docs/protocol.md)',
      );
      ctx.io.out(lines.join('\n'));
      return EXIT_OK;
    }),
  );


  common(
    broker
      .command('rotate-kek')
      .description('make a new KEK current and re-wrap every secret\'s data key under it; a running broker keeps serving; safe to re-run')
      .requiredOption('--to <spec>', 'the new KEK: PATH or file:PATH (created 0600 if missing) or pkcs11:module=LIB;token=LABEL;label=KEY (generated in the token if missing)')
      .option('--home <dir>', 'broker home (default $COFFER_HOME or ./.coffer)')
      .option('--db <path>', 'SQLite database (default <home>/broker.db)')
      .option('--store <url>', STORE_HELP),
  ).action(
    action(ctx, async (f: HomeFlags & { to: string }) => {
      const store = await openStore(storeOf(f));
      try {
        const r = await rotateKek({
          store,
          to: kekSpec(f.to),
          actor: `cli:${process.env.USER ?? 'unknown'}`,
          onRewrapped: f.json ? undefined : (_path, done, total) => (done % 100 === 0 || done === total ? ctx.io.err(`  re-wrapped ${done}/${total}`) : undefined),
        });
        if (f.json) ctx.io.out(toJson({ ok: true, ...r }));
        else {
          const left = Object.entries(r.counts).filter(([id]) => id !== r.kekId);
          ctx.io.out(
            [
              `KEK ${r.kekId} (${r.spec})${r.created ? ', created,' : ''} is current${r.switched ? '' : ' (it already was: resumed)'}`,
              `  ${r.rewrapped} data key(s) re-wrapped; ${r.counts[r.kekId] ?? 0} secret(s) and ${r.volumeCounts[r.kekId] ?? 0} volume key(s) sealed under it${left.length > 0 ? `; still under others: ${left.map(([id, n]) => `${id} ${n}`).join(', ')}` : ''}`,
              r.retired.length > 0 ? `  retired: ${r.retired.join(', ')} (no secret needs them any more: remove or archive them)` : '  nothing left to retire',
              '  restart brokers started with --kek for the old key with the new spec (or without --kek)',
            ].join('\n'),
          );
        }
        return EXIT_OK;
      } finally {
        await store.close();
      }
    }),
  );

  common(
    broker
      .command('kek')
      .command('list')
      .description('the KEKs the store knows: where each lives, its state (current, retiring, retired) and how many secrets and volume keys it seals')
      .option('--home <dir>', 'broker home (default $COFFER_HOME or ./.coffer)')
      .option('--db <path>', 'SQLite database (default <home>/broker.db)')
      .option('--store <url>', STORE_HELP),
  ).action(
    action(ctx, async (f: HomeFlags) => {
      const store = await openStore(storeOf(f));
      try {
        const [keks, secrets, volumes] = await Promise.all([store.listKeks(), store.countSecretsByKek(), store.countVolumesByKek()]);
        const rows = keks.map((k) => ({ ...k, secrets: secrets[k.id] ?? 0, volumes: volumes[k.id] ?? 0 }));
        const unknown = [...new Set([...Object.keys(secrets), ...Object.keys(volumes)])].filter((id) => !keks.some((k) => k.id === id));
        if (f.json) ctx.io.out(toJson({ ok: true, keks: rows, unregistered: unknown }));
        else {
          ctx.io.out(rows.length === 0 ? '(no KEK recorded yet: the first broker start records one)' : table([['ID', 'STATE', 'SECRETS', 'VOLUMES', 'SPEC'], ...rows.map((r) => [r.id, r.state, String(r.secrets), String(r.volumes), r.spec])]));
          if (unknown.length > 0) ctx.io.err(`coffer: warning: secrets are sealed under KEKs the store does not record: ${unknown.join(', ')}`);
        }
        return EXIT_OK;
      } finally {
        await store.close();
      }
    }),
  );

  const token = broker.command('token').description('admin bearer tokens');
  common(
    token
      .command('create')
      .description('create an admin token directly in the database (bootstrap; the token is shown once)')
      .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
      .option('--scope <prefix>', 'limit the token to a path prefix, e.g. team-a')
      .option('--label <text>', 'a note to recognise the token by')
      .option('--home <dir>', 'broker home (default $COFFER_HOME or ./.coffer)')
      .option('--db <path>', 'SQLite database (default <home>/broker.db)')
      .option('--store <url>', STORE_HELP),
  ).action(
    action(ctx, async (f: HomeFlags & { role: string; scope?: string; label?: string }) => {
      if (!(ROLES as readonly string[]).includes(f.role)) throw inputError('USAGE', `--role must be one of ${ROLES.join(', ')}`);
      const scope = f.scope !== undefined ? prefixPath(f.scope) : undefined;
      const store = await openStore(storeOf(f));
      try {
        const t = await createToken(store, f.role as Role, { at: Date.now(), ...(scope ? { scope } : {}), ...(f.label ? { label: f.label } : {}) }, (id) => ({
          at: Date.now(),
          actor: `cli:${process.env.USER ?? 'unknown'}`,
          action: 'admin.token.create',
          ...(scope ? { resource: scope } : {}),
          verdict: 'allow',
          detail: `created token:${id} role ${f.role}${scope ? ` scope ${scope}` : ''} directly in the database`,
        }));
        if (f.json) ctx.io.out(toJson({ ok: true, id: t.record.id, role: t.record.role, scope: t.record.scope, token: t.token }));
        else ctx.io.out(`${t.token}\n(token ${t.record.id}, role ${f.role}${scope ? `, scope ${scope}` : ''}: shown once; only its hash is stored)`);
        return EXIT_OK;
      } finally {
        await store.close();
      }
    }),
  );

  const secret = broker.command('secret').description('secrets (write-only: values are never read back)');
  clientOptions(
    secret
      .command('put <path>')
      .description('store a secret at repository/type/tag')
      .option('--from-file <file>', 'read the value from a file ("-" for standard input)')
      .option('--value-stdin', 'read the value from standard input'),
  ).action(
    action(ctx, async (path: string, f: ClientFlags & { fromFile?: string; valueStdin?: boolean }) => {
      const p = resourcePath(path);
      if ((f.fromFile === undefined) === (f.valueStdin !== true)) throw inputError('USAGE', 'give exactly one of --from-file FILE and --value-stdin');
      const value = readInput(f.fromFile ?? '-', 'secret file');
      let b64: string;
      try {
        b64 = value.toString('base64');
      } finally {
        value.fill(0);
      }
      const r = await api(f, 'PUT', `/admin/v0/secrets/${enc(p)}`, { value: b64 });
      if (f.json) ctx.io.out(toJson({ ok: true, secret: r.body }));
      else ctx.io.out(`stored ${p} (version ${String(r.body.version)}, ${String(r.body.size)} bytes, sealed under ${String(r.body.kekId)})`);
      return EXIT_OK;
    }),
  );
  clientOptions(secret.command('list').description('list secrets (metadata only)').option('--prefix <prefix>', 'only under this path prefix')).action(
    action(ctx, async (f: ClientFlags & { prefix?: string }) => {
      const r = await api(f, 'GET', `/admin/v0/secrets${f.prefix ? `?prefix=${encodeURIComponent(f.prefix)}` : ''}`);
      const list = (r.body.secrets ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, secrets: list }));
      else ctx.io.out(list.length === 0 ? '(no secrets)' : table([['PATH', 'VERSION', 'SIZE', 'UPDATED', 'BY'], ...list.map((s) => [String(s.path), String(s.version), String(s.size), iso(s.updatedAt), String(s.updatedBy)])]));
      return EXIT_OK;
    }),
  );
  clientOptions(secret.command('rm <path>').description('delete a secret')).action(
    action(ctx, async (path: string, f: ClientFlags) => {
      const p = resourcePath(path);
      await api(f, 'DELETE', `/admin/v0/secrets/${enc(p)}`);
      if (f.json) ctx.io.out(toJson({ ok: true, deleted: p }));
      else ctx.io.out(`deleted ${p}`);
      return EXIT_OK;
    }),
  );

  const policy = broker.command('policy').description('release policies per path prefix (the appraisal policy language, docs/policy.md)');
  clientOptions(policy.command('set <prefix>').description('set the release policy of a path prefix').requiredOption('--policy <file>', 'policy (YAML or JSON)')).action(
    action(ctx, async (prefix: string, f: ClientFlags & { policy: string }) => {
      const p = prefixPath(prefix);
      const text = readInput(f.policy, 'policy file').toString('utf8');
      const r = await api(f, 'PUT', `/admin/v0/policies/${enc(p)}`, { policy: text });
      const warnings = Array.isArray(r.body.warnings) ? r.body.warnings.map(String) : [];
      if (f.json) ctx.io.out(toJson({ ok: true, policy: r.body }));
      else ctx.io.out(`policy ${String(r.body.policyId)}@${String(r.body.policyVersion)} now decides releases under ${p}/ (with every policy above it and the built-in baseline)`);
      for (const w of warnings) ctx.io.err(`coffer: warning: ${w}`);
      return EXIT_OK;
    }),
  );
  clientOptions(policy.command('get <prefix>').description('print the release policy of a path prefix')).action(
    action(ctx, async (prefix: string, f: ClientFlags) => {
      const r = await api(f, 'GET', `/admin/v0/policies/${enc(prefixPath(prefix))}`);
      if (f.json) ctx.io.out(toJson({ ok: true, policy: r.body }));
      else ctx.io.out(String(r.body.text));
      return EXIT_OK;
    }),
  );
  clientOptions(policy.command('list').description('list release policies')).action(
    action(ctx, async (f: ClientFlags) => {
      const r = await api(f, 'GET', '/admin/v0/policies');
      const list = (r.body.policies ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, policies: list }));
      else ctx.io.out(list.length === 0 ? '(no policies: nothing can be released)' : table([['PREFIX', 'POLICY', 'UPDATED', 'BY'], ...list.map((p) => [String(p.prefix), `${String(p.policyId)}@${String(p.policyVersion)}`, iso(p.updatedAt), String(p.updatedBy)])]));
      return EXIT_OK;
    }),
  );

  clientOptions(
    broker
      .command('audit')
      .description('query the audit log (every auth, attestation, release and admin decision)')
      .option('--since <iso8601>', 'from this time')
      .option('--until <iso8601>', 'before this time')
      .option('--action <action>', 'e.g. kbs.resource, kbs.attest, admin.secret.put')
      .option('--verdict <verdict>', 'allow or deny')
      .option('--limit <n>', 'at most this many records (default 100, at most 1000)'),
  ).action(
    action(ctx, async (f: ClientFlags & { since?: string; until?: string; action?: string; verdict?: string; limit?: string }) => {
      if (f.verdict !== undefined && f.verdict !== 'allow' && f.verdict !== 'deny') throw inputError('USAGE', '--verdict must be allow or deny');
      if (f.limit !== undefined && !/^\d{1,4}$/.test(f.limit)) throw inputError('USAGE', '--limit must be a number');
      const q = new URLSearchParams();
      if (f.since) q.set('since', parseTime(f.since).toISOString());
      if (f.until) q.set('until', parseTime(f.until).toISOString());
      if (f.action) q.set('action', f.action);
      if (f.verdict) q.set('verdict', f.verdict);
      if (f.limit) q.set('limit', f.limit);
      const r = await api(f, 'GET', `/admin/v0/audit${q.size > 0 ? `?${q.toString()}` : ''}`);
      const recs = (r.body.records ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, records: recs }));
      else
        ctx.io.out(
          recs.length === 0
            ? '(no records)'
            : table([['TIME', 'VERDICT', 'ACTION', 'ACTOR', 'RESOURCE', 'RULE / PROBLEM'], ...recs.map((x) => [iso(x.at), String(x.verdict), String(x.action), String(x.actor), String(x.resource ?? '-'), [x.rule, x.problem].filter((v) => v !== undefined).map(String).join(' / ') || '-'])]),
        );
      return EXIT_OK;
    }),
  );

  registerBrokerFeatures(broker, ctx);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `--tpm-ak`: a fingerprint or TPM name as is (the broker validates it), or a file holding the AK. */
function akOption(v: string): string {
  if (/^[0-9a-fA-F]+$/.test(v) && !existsSync(v)) return v;
  const part = parseAkPart(readInput(v, '--tpm-ak file'), v);
  return akFingerprint(part.kind === 'tpm-public' ? part.public.key : part.kind === 'key' ? part.key : part.certificate.publicKey);
}

/**
 * `coffer broker volume|refvalues|trust`: provisioned volume keys, signed reference values and
 * trusted keys (docs/operations.md), all through the admin API.
 */
function registerBrokerFeatures(broker: Command, ctx: CliContext): void {
  const volume = broker.command('volume').description('per-VM volume (disk) keys, released only to a VM matching the identity they were provisioned for');
  clientOptions(
    volume
      .command('provision [id]')
      .description('make a 32-byte volume key for one VM identity (the key is never shown: only that VM receives it, at volumes/<id>/key)')
      .option('--identity <file>', 'the VM identity as JSON ({"snp": {"measurements": [...], "hostData": [...]}, "tdx": {...}, "tpm": {"pcrs": {...}, "ak": "<sha256>"}, "reference": "image"})')
      .option('--snp-measurement <hex>', 'accepted SEV-SNP launch measurement (repeatable)', collect)
      .option('--host-data <hex>', 'required SEV-SNP HOST_DATA (repeatable: any of them)', collect)
      .option('--tdx-mrtd <hex>', 'accepted TDX MRTD (repeatable)', collect)
      .option('--mrconfigid <hex>', 'required TDX MRCONFIGID (repeatable: any of them)', collect)
      .option('--pcr <bank:index=hex>', 'required TPM PCR value, e.g. sha256:7=ab.. (repeatable)', collect)
      .option('--tpm-ak <sha256|file>', "the VM's TPM attestation key: its fingerprint (coffer agent tpm-ak), TPM name, or a file holding it (PEM public key, TPM2B_PUBLIC); required with --pcr")
      .option('--tpm-shared', 'with --pcr and no --tpm-ak: any VM whose quote shows these PCR values (every VM of the image) gets the key')
      .option('--reference <image>', 'image id of signed reference values whose launch measurements are accepted')
      .option('--label <text>', 'a note to recognise the volume by')
      .option('--reprovision', 'replace the key of an existing volume: everything encrypted under the old key becomes unreadable'),
  ).action(
    action(ctx, async (id: string | undefined, f: ClientFlags & { identity?: string; snpMeasurement?: string[]; hostData?: string[]; tdxMrtd?: string[]; mrconfigid?: string[]; pcr?: string[]; tpmAk?: string; tpmShared?: boolean; reference?: string; label?: string; reprovision?: boolean }) => {
      const flagged = [f.snpMeasurement, f.hostData, f.tdxMrtd, f.mrconfigid, f.pcr, f.tpmAk, f.tpmShared, f.reference].some((v) => v !== undefined);
      if (f.identity !== undefined && flagged) throw inputError('USAGE', 'give the identity either as --identity FILE or as flags, not both');
      let identity: Record<string, unknown>;
      if (f.identity !== undefined) {
        try {
          identity = JSON.parse(readInput(f.identity, 'identity file').toString('utf8')) as Record<string, unknown>;
        } catch (e) {
          if (e instanceof CofferError) throw e;
          throw inputError('USAGE', `${f.identity} is not JSON`);
        }
      } else {
        identity = {};
        if (f.snpMeasurement || f.hostData) identity.snp = { ...(f.snpMeasurement ? { measurements: f.snpMeasurement } : {}), ...(f.hostData ? { hostData: f.hostData } : {}) };
        if (f.tdxMrtd || f.mrconfigid) identity.tdx = { ...(f.tdxMrtd ? { mrtd: f.tdxMrtd } : {}), ...(f.mrconfigid ? { mrConfigId: f.mrconfigid } : {}) };
        if (f.pcr) {
          const banks: Record<string, Record<string, string>> = {};
          for (const p of f.pcr) {
            const m = /^(sha1|sha256|sha384|sha512):(\d{1,2})=([0-9a-fA-F]+)$/.exec(p);
            if (!m) throw inputError('USAGE', `--pcr ${p} is not BANK:INDEX=HEX (e.g. sha256:7=ab...)`);
            (banks[m[1] as string] ??= {})[m[2] as string] = m[3] as string;
          }
          identity.tpm = { pcrs: banks, ...(f.tpmAk !== undefined ? { ak: akOption(f.tpmAk) } : {}), ...(f.tpmShared ? { shared: true } : {}) };
        } else if (f.tpmAk !== undefined || f.tpmShared) throw inputError('USAGE', '--tpm-ak and --tpm-shared go with --pcr');
        if (f.reference) identity.reference = f.reference;
        if (Object.keys(identity).length === 0) throw inputError('USAGE', 'give the VM identity: --identity FILE, or --snp-measurement, --tdx-mrtd, --pcr or --reference');
      }
      const r = await api(f, 'POST', '/admin/v0/volumes', { ...(id !== undefined ? { id } : {}), ...(f.label !== undefined ? { label: f.label } : {}), identity, ...(f.reprovision ? { reprovision: true } : {}) });
      if (f.json) ctx.io.out(toJson({ ok: true, volume: r.body }));
      else ctx.io.out(`${r.status === 201 ? 'provisioned' : 're-provisioned'} volume ${String(r.body.id)} (key version ${String(r.body.keyVersion)}): an attested VM matching its identity fetches ${String(r.body.path)}`);
      return EXIT_OK;
    }),
  );
  clientOptions(volume.command('list').description('list volumes (metadata only, never a key)')).action(
    action(ctx, async (f: ClientFlags) => {
      const r = await api(f, 'GET', '/admin/v0/volumes');
      const list = (r.body.volumes ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, volumes: list }));
      else ctx.io.out(list.length === 0 ? '(no volumes)' : table([['ID', 'STATE', 'KEY VERSION', 'UPDATED', 'BY', 'LABEL'], ...list.map((v) => [String(v.id), String(v.state), String(v.keyVersion), iso(v.updatedAt), String(v.updatedBy), String(v.label ?? '-')])]));
      return EXIT_OK;
    }),
  );
  clientOptions(volume.command('revoke <id>').description('revoke a volume: its key is erased and never released again (the data on the disk becomes unreadable)').option('--yes', 'confirm: this cannot be undone')).action(
    action(ctx, async (id: string, f: ClientFlags & { yes?: boolean }) => {
      if (!f.yes) throw inputError('USAGE', `revoking ${id} erases its key for good: the data on that disk becomes unreadable. Add --yes to confirm`);
      await api(f, 'DELETE', `/admin/v0/volumes/${encodeURIComponent(id)}`);
      if (f.json) ctx.io.out(toJson({ ok: true, revoked: id }));
      else ctx.io.out(`revoked volume ${id}: its key is erased and will never be released again`);
      return EXIT_OK;
    }),
  );

  const refvalues = broker.command('refvalues').description('signed reference values (coffer image output) that release policies refer to by image id');
  clientOptions(refvalues.command('put <name>').description('store a signed reference-value document (verified against the trusted reference-signer keys)').requiredOption('--file <jws>', 'the JWS file ("-" for standard input)')).action(
    action(ctx, async (name: string, f: ClientFlags & { file: string }) => {
      const jws = readInput(f.file, 'reference values file').toString('utf8').trim();
      const r = await api(f, 'PUT', `/admin/v0/reference-values/${encodeURIComponent(name)}`, { jws });
      if (f.json) ctx.io.out(toJson({ ok: true, referenceValues: r.body }));
      else ctx.io.out(`stored reference values ${name}: image ${String(r.body.imageId)} ${String(r.body.imageVersion)}, signed by ${String(r.body.signer)}`);
      return EXIT_OK;
    }),
  );
  clientOptions(refvalues.command('list').description('list reference-value documents')).action(
    action(ctx, async (f: ClientFlags) => {
      const r = await api(f, 'GET', '/admin/v0/reference-values');
      const list = (r.body.referenceValues ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, referenceValues: list }));
      else ctx.io.out(list.length === 0 ? '(no reference values)' : table([['NAME', 'IMAGE', 'VERSION', 'SIGNER', 'ACTIVE', 'UPDATED'], ...list.map((v) => [String(v.name), String(v.imageId), String(v.imageVersion), String(v.signer), v.active ? 'yes' : 'no (signer removed)', iso(v.updatedAt)])]));
      return EXIT_OK;
    }),
  );
  clientOptions(refvalues.command('rm <name>').description('delete a reference-value document')).action(
    action(ctx, async (name: string, f: ClientFlags) => {
      await api(f, 'DELETE', `/admin/v0/reference-values/${encodeURIComponent(name)}`);
      if (f.json) ctx.io.out(toJson({ ok: true, deleted: name }));
      else ctx.io.out(`deleted reference values ${name}`);
      return EXIT_OK;
    }),
  );

  const trust = broker.command('trust').description('trusted keys: reference-signer (reference values), tpm-ak (pinned TPM attestation keys), tpm-ak-root (AK certificate roots)');
  clientOptions(trust.command('add <purpose> <name>').description('trust a key for a purpose (admin, unscoped)').requiredOption('--key <file>', 'PEM public key or certificate, JWK, or base64 TPM2B_PUBLIC for tpm-ak')).action(
    action(ctx, async (purpose: string, name: string, f: ClientFlags & { key: string }) => {
      const raw = readInput(f.key, 'key file');
      const text = raw.subarray(0, 64).toString('latin1').includes('-----BEGIN') || raw[0] === 0x7b ? raw.toString('utf8') : raw.toString('base64');
      const r = await api(f, 'PUT', `/admin/v0/trusted-keys/${encodeURIComponent(purpose)}/${encodeURIComponent(name)}`, { key: text });
      if (f.json) ctx.io.out(toJson({ ok: true, key: r.body }));
      else ctx.io.out(`trusted ${String(r.body.description)} as ${purpose} ${name} (sha256 ${String(r.body.sha256)})`);
      return EXIT_OK;
    }),
  );
  clientOptions(trust.command('list').description('list trusted keys').option('--purpose <purpose>', 'only this purpose')).action(
    action(ctx, async (f: ClientFlags & { purpose?: string }) => {
      const r = await api(f, 'GET', `/admin/v0/trusted-keys${f.purpose ? `?purpose=${encodeURIComponent(f.purpose)}` : ''}`);
      const list = (r.body.keys ?? []) as Record<string, unknown>[];
      if (f.json) ctx.io.out(toJson({ ok: true, keys: list }));
      else ctx.io.out(list.length === 0 ? '(no trusted keys)' : table([['PURPOSE', 'NAME', 'KEY', 'SHA-256', 'ADDED'], ...list.map((k) => [String(k.purpose), String(k.name), String(k.description), String(k.sha256).slice(0, 16), iso(k.createdAt)])]));
      return EXIT_OK;
    }),
  );
  clientOptions(trust.command('rm <purpose> <name>').description('stop trusting a key (reference values only it signed are withdrawn)')).action(
    action(ctx, async (purpose: string, name: string, f: ClientFlags) => {
      await api(f, 'DELETE', `/admin/v0/trusted-keys/${encodeURIComponent(purpose)}/${encodeURIComponent(name)}`);
      if (f.json) ctx.io.out(toJson({ ok: true, deleted: `${purpose}/${name}` }));
      else ctx.io.out(`no longer trusting ${purpose} ${name}`);
      return EXIT_OK;
    }),
  );
}
