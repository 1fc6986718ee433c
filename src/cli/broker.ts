import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import { DEFAULT_PORT, ROLES, SqliteStore, brokerPaths, createToken, parseListen, prefixPath, resourcePath, startBroker, type Role, type RunningBroker } from '../broker/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { readInput, parseTime } from './files.js';

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
  json?: boolean;
}

interface ServeFlags extends HomeFlags {
  kek?: string;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  allowInsecureHttp?: boolean;
  attestationPolicy?: string;
  logLevel?: string;
}

interface ClientFlags extends HomeFlags {
  url?: string;
  tokenFile?: string;
  ca?: string;
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
  const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      url,
      {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
        timeout: 30_000,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => reject(inputError('BROKER_UNREACHABLE', `cannot reach the broker at ${base.origin}: ${e.code ?? e.message}`)));
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
      .option('--kek <path>', 'key-encryption key file, 32 bytes, mode 0600 (default <home>/kek.key; created on first start)')
      .option('--listen <host:port>', 'address to listen on', `127.0.0.1:${DEFAULT_PORT}`)
      .option('--tls-cert <file>', 'TLS certificate chain (PEM)')
      .option('--tls-key <file>', 'TLS private key (PEM, mode 0600)')
      .option('--allow-insecure-http', 'serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)')
      .option('--attestation-policy <file>', 'policy every attestation must pass before a token is issued (default: verified, no debug, no migration)')
      .option('--log-level <level>', 'log level (default info); logs are JSON on standard error'),
  ).action(
    action(ctx, async (f: ServeFlags) => {
      if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw inputError('USAGE', '--tls-cert and --tls-key go together');
      const { host, port } = parseListen(f.listen);
      const paths = brokerPaths({ ...(f.home ? { home: f.home } : {}), ...(f.db ? { db: f.db } : {}), ...(f.kek ? { kek: f.kek } : {}) });
      const running = await startBroker({
        paths,
        host,
        port,
        ...(f.tlsCert && f.tlsKey ? { tls: { certFile: f.tlsCert, keyFile: f.tlsKey } } : {}),
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
        ctx.io.out(toJson({ ok: true, url: running.url, db: paths.db, kek: paths.kek, earKey: paths.earKey, adminTokenFile: running.created.adminToken ? paths.adminTokenFile : undefined, created: running.created }));
        return EXIT_OK;
      }
      const lines = [
        `coffer broker listening on ${running.url}  (KBS: ${running.url}/kbs/v0, admin: ${running.url}/admin/v0, API: ${running.url}/openapi.json)`,
        `  store ${paths.db}${running.created.kek ? `; new KEK ${paths.kek} (0600: back it up — without it no secret can be read)` : `; KEK ${paths.kek}`}`,
      ];
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

  const token = broker.command('token').description('admin bearer tokens');
  common(
    token
      .command('create')
      .description('create an admin token directly in the database (bootstrap; the token is shown once)')
      .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
      .option('--scope <prefix>', 'limit the token to a path prefix, e.g. team-a')
      .option('--label <text>', 'a note to recognise the token by')
      .option('--home <dir>', 'broker home (default $COFFER_HOME or ./.coffer)')
      .option('--db <path>', 'SQLite database (default <home>/broker.db)'),
  ).action(
    action(ctx, async (f: HomeFlags & { role: string; scope?: string; label?: string }) => {
      if (!(ROLES as readonly string[]).includes(f.role)) throw inputError('USAGE', `--role must be one of ${ROLES.join(', ')}`);
      const scope = f.scope !== undefined ? prefixPath(f.scope) : undefined;
      const store = await SqliteStore.open(homeOf(f).db);
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
}
