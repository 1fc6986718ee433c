import { PROBLEMS, PROBLEM_BASE } from './problem.js';

/**
 * The broker's OpenAPI 3.1 document, written by hand (the routes are few and their bodies are
 * checked with zod, not JSON Schema). A test checks that it lists every route the server has.
 */
const problemRef = { $ref: '#/components/responses/Problem' };
const std = { '4XX': problemRef, '5XX': problemRef };
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const resourceParams = ['repository', 'type', 'tag'].map((n) => ({ name: n, in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$' } }));
const prefixParam = [{ name: 'prefix', in: 'path', required: true, description: 'one to three path segments, e.g. team-a or team-a/key', schema: { type: 'string' } }];
const admin = [{ bearerAuth: [] }];
const roles = (r: string) => `Roles: ${r}.`;
const hex = { type: 'string', pattern: '^[0-9a-fA-F]+$' };
const hexList = { type: 'array', items: hex };
const volumeRequest = {
  type: 'object',
  required: ['identity'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$', description: 'default: vol-<16 hex>' },
    label: { type: 'string', maxLength: 100 },
    reprovision: { type: 'boolean', description: 'replace the key of an existing volume (required to do so)' },
    identity: {
      type: 'object',
      description: 'at least one measurement: snp.measurements, tdx.mrtd or tdx.rtmrs, tpm.pcrs or reference; hostData / mrConfigId narrow it',
      properties: {
        snp: { type: 'object', properties: { measurements: hexList, hostData: hexList } },
        tdx: { type: 'object', properties: { mrtd: hexList, mrConfigId: hexList, rtmrs: { type: 'object' } } },
        tpm: {
          type: 'object',
          required: ['pcrs'],
          description: 'ak is required unless shared: true (every VM booted from one image has the same PCR values; per VM means per attestation key)',
          properties: {
            pcrs: { type: 'object', description: '{"sha256": {"7": "hex"}}' },
            ak: { type: 'string', description: "SHA-256 of the VM's AK public key (SubjectPublicKeyInfo DER, hex; coffer agent tpm-ak prints it) or its TPM name (000b...)" },
            shared: { type: 'boolean', description: 'release to any VM whose quote shows these PCR values' },
          },
        },
        reference: { type: 'string', description: 'image id of stored signed reference values' },
      },
    },
  },
};
const volumeMeta = { type: 'object', properties: { id: { type: 'string' }, path: { type: 'string' }, label: { type: 'string' }, state: { enum: ['active', 'revoked'] }, keyVersion: { type: 'integer' }, identity: { type: 'string' }, policyText: { type: 'string' }, policySha256: { type: 'string' } } };
const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }];
const nameParam = [{ name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$' } }];
const purposes = ['reference-signer', 'tpm-ak', 'tpm-ak-root'];
const trustParams = [{ name: 'purpose', in: 'path', required: true, schema: { type: 'string', enum: purposes } }, ...nameParam];

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Coffer key broker', version, description: 'KBS attestation protocol (RCAR) and the admin API. Protocol: docs/protocol.md.' },
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'admin token coffer_<id>_<secret>' }, kbsSession: { type: 'apiKey', in: 'cookie', name: 'kbs-session-id' }, attestationToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (EAR, ES384)' }, consoleSession: { type: 'apiKey', in: 'cookie', name: 'coffer-console' } },
      responses: {
        Problem: {
          description: `RFC 7807 problem; type is one of ${Object.keys(PROBLEMS).map((p) => `${PROBLEM_BASE}${p}`).join(', ')}`,
          content: { 'application/problem+json': { schema: { type: 'object', required: ['type', 'title', 'status', 'detail', 'code'], properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, rule: { type: 'string' } } } } },
        },
      },
    },
    paths: {
      '/kbs/v0/auth': { post: { summary: 'Start a session: get a nonce and the kbs-session-id cookie', requestBody: json({ type: 'object', required: ['version', 'tee'], properties: { version: { type: 'string' }, tee: { type: 'string', enum: ['snp', 'tpm', 'tdx'] }, 'extra-params': {} } }), responses: { '200': { description: 'challenge', headers: { 'Set-Cookie': { schema: { type: 'string' } } }, ...json({ type: 'object', properties: { nonce: { type: 'string' }, 'extra-params': {} } }) }, ...std } } },
      '/kbs/v0/attest': { post: { summary: 'Present evidence bound to the nonce and a tee-pubkey; get an EAR token', security: [{ kbsSession: [] }], requestBody: json({ type: 'object', required: ['runtime-data', 'tee-evidence'], properties: { 'runtime-data': { type: 'object', required: ['nonce', 'tee-pubkey'] }, 'tee-evidence': {} } }), responses: { '200': { description: 'EAR token', ...json({ type: 'object', properties: { token: { type: 'string' } } }) }, ...std } } },
      '/kbs/v0/resource/{repository}/{type}/{tag}': { get: { summary: 'Fetch a secret as a flattened JWE to the tee-pubkey', security: [{ kbsSession: [] }, { attestationToken: [] }], parameters: resourceParams, responses: { '200': { description: 'flattened JWE', content: { 'application/jose+json': { schema: { type: 'object' } } } }, ...std } } },
      '/kbs/v0/volume-initialized': {
        post: {
          summary: 'Report that the volume whose key this session was released is formatted (first boot); idempotent',
          description: 'Only the session (cookie or EAR token) that was released volumes/<volume>/key at this key version may report it. Later key releases carry "coffer.volume": {"initialized": true} in the JWE protected header.',
          security: [{ kbsSession: [] }, { attestationToken: [] }],
          requestBody: json({ type: 'object', additionalProperties: false, required: ['volume', 'keyVersion'], properties: { volume: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$' }, keyVersion: { type: 'integer', minimum: 1 } } }),
          responses: { '200': { description: 'recorded (changed: false when it already was)', ...json({ type: 'object', properties: { volume: { type: 'string' }, keyVersion: { type: 'integer' }, initializedAt: { type: 'string', format: 'date-time' }, changed: { type: 'boolean' } } }) }, ...std },
        },
      },
      '/.well-known/jwks.json': { get: { summary: 'Keys that verify the attestation tokens', responses: { '200': { description: 'JWKS', ...json({ type: 'object' }) } } } },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'alive' } } } },
      '/readyz': { get: { summary: 'Readiness (the store answers)', responses: { '200': { description: 'ready' }, '503': problemRef } } },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics (text exposition format); labels are route templates, statuses, tees and problem types only', description: roles('admin, auditor (unscoped tokens only)'), security: admin, responses: { '200': { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } }, ...std } } },
      '/admin/v0/secrets': { get: { summary: 'List secrets (metadata only)', description: roles('admin, provisioner, auditor'), security: admin, parameters: [{ name: 'prefix', in: 'query', schema: { type: 'string' } }], responses: { '200': { description: 'metadata' }, ...std } } },
      '/admin/v0/secrets/{repository}/{type}/{tag}': {
        put: { summary: 'Create or replace a secret (write-only)', description: roles('admin, provisioner'), security: admin, parameters: resourceParams, requestBody: json({ type: 'object', required: ['value'], properties: { value: { type: 'string', description: 'base64, at most 64 KiB decoded' } } }), responses: { '200': { description: 'metadata of the stored secret' }, ...std } },
        get: { summary: 'Secret metadata (never the value)', description: roles('admin, provisioner, auditor'), security: admin, parameters: resourceParams, responses: { '200': { description: 'metadata' }, ...std } },
        delete: { summary: 'Delete a secret', description: roles('admin, provisioner'), security: admin, parameters: resourceParams, responses: { '204': { description: 'deleted' }, ...std } },
      },
      '/admin/v0/policies': { get: { summary: 'List release policies', description: roles('admin, provisioner, auditor'), security: admin, responses: { '200': { description: 'policies' }, ...std } } },
      '/admin/v0/policies/{prefix}': {
        put: { summary: 'Set the release policy of a path prefix (appraisal policy language, YAML or JSON text)', description: roles('admin, provisioner'), security: admin, parameters: prefixParam, requestBody: json({ type: 'object', required: ['policy'], properties: { policy: { type: 'string' } } }), responses: { '200': { description: 'stored' }, ...std } },
        get: { summary: 'Get a release policy', description: roles('admin, provisioner, auditor'), security: admin, parameters: prefixParam, responses: { '200': { description: 'policy' }, ...std } },
        delete: { summary: 'Delete a release policy', description: roles('admin, provisioner'), security: admin, parameters: prefixParam, responses: { '204': { description: 'deleted' }, ...std } },
      },
      '/admin/v0/audit': { get: { summary: 'Query the audit log', description: roles('admin, auditor'), security: admin, parameters: ['since', 'until', 'action', 'verdict', 'actor', 'limit', 'after'].map((n) => ({ name: n, in: 'query', schema: { type: 'string' } })), responses: { '200': { description: 'records' }, ...std } } },
      '/admin/v0/tokens': {
        post: { summary: 'Create an admin token (shown once)', description: roles('admin'), security: admin, requestBody: json({ type: 'object', required: ['role'], properties: { role: { enum: ['admin', 'auditor', 'provisioner'] }, scope: { type: 'string' }, label: { type: 'string' } } }), responses: { '201': { description: 'token' }, ...std } },
        get: { summary: 'List admin tokens (never their secrets)', description: roles('admin'), security: admin, responses: { '200': { description: 'tokens' }, ...std } },
      },
      '/admin/v0/tokens/{id}': { delete: { summary: 'Revoke an admin token', description: roles('admin'), security: admin, parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'revoked' }, ...std } } },
      '/admin/v0/volumes': {
        post: {
          summary: 'Provision a per-VM volume key (32 random bytes, never returned) bound to a VM identity; with reprovision: true, replace the key of an existing volume (data under the old key becomes unreadable)',
          description: `${roles('admin, provisioner')} The key is released only to an attested VM matching the identity, at volumes/<id>/key. See docs/operations.md.`,
          security: admin,
          requestBody: json(volumeRequest),
          responses: { '201': { description: 'provisioned (metadata)', ...json(volumeMeta) }, '200': { description: 're-provisioned (metadata, keyVersion + 1)', ...json(volumeMeta) }, ...std },
        },
        get: { summary: 'List volumes (metadata only, never a key)', description: roles('admin, provisioner, auditor'), security: admin, responses: { '200': { description: 'volumes', ...json({ type: 'object', properties: { volumes: { type: 'array', items: volumeMeta } } }) }, ...std } },
      },
      '/admin/v0/volumes/{id}': {
        get: { summary: 'Volume metadata', description: roles('admin, provisioner, auditor'), security: admin, parameters: idParam, responses: { '200': { description: 'metadata', ...json(volumeMeta) }, ...std } },
        delete: { summary: 'Revoke a volume: its key is erased and never released again; the id is never reused', description: roles('admin, provisioner'), security: admin, parameters: idParam, responses: { '204': { description: 'revoked' }, ...std } },
      },
      '/admin/v0/trusted-keys': { get: { summary: 'List trusted keys (reference-value signers, pinned TPM AKs, TPM AK roots)', description: roles('admin, provisioner, auditor'), security: admin, parameters: [{ name: 'purpose', in: 'query', schema: { type: 'string', enum: purposes } }], responses: { '200': { description: 'keys' }, ...std } } },
      '/admin/v0/trusted-keys/{purpose}/{name}': {
        put: { summary: 'Trust a key for a purpose (creates or replaces)', description: roles('admin (unscoped)'), security: admin, parameters: trustParams, requestBody: json({ type: 'object', required: ['key'], properties: { key: { type: 'string', description: 'reference-signer: PEM or JWK (Ed25519, ECDSA P-384); tpm-ak: PEM public key or base64 TPM2B_PUBLIC/TPMT_PUBLIC; tpm-ak-root: PEM CA certificate' } } }), responses: { '200': { description: 'trusted' }, ...std } },
        delete: { summary: 'Stop trusting a key (reference values only it signed are withdrawn)', description: roles('admin (unscoped)'), security: admin, parameters: trustParams, responses: { '204': { description: 'removed' }, ...std } },
      },
      '/admin/v0/reference-values': { get: { summary: 'List signed reference-value documents (active: still verifies with a trusted signer)', description: roles('admin, provisioner, auditor'), security: admin, responses: { '200': { description: 'documents' }, ...std } } },
      '/admin/v0/reference-values/{name}': {
        put: { summary: 'Store a signed reference-value document (JWS, docs/reference-values.md), verified against the trusted reference-signer keys; policies refer to it by image id', description: roles('admin, provisioner (unscoped)'), security: admin, parameters: nameParam, requestBody: json({ type: 'object', required: ['jws'], properties: { jws: { type: 'string', description: 'compact JWS, typ coffer-reference-values+jws, ES384 or EdDSA' } } }), responses: { '200': { description: 'stored' }, '422': problemRef, ...std } },
        get: { summary: 'A reference-value document (metadata and, when active, its values)', description: roles('admin, provisioner, auditor'), security: admin, parameters: nameParam, responses: { '200': { description: 'document' }, ...std } },
        delete: { summary: 'Delete a reference-value document', description: roles('admin, provisioner (unscoped)'), security: admin, parameters: nameParam, responses: { '204': { description: 'deleted' }, ...std } },
      },
      ...consolePaths(),
    },
  };
}

/**
 * The web console (docs/console.md): its pages, and the JSON endpoints they call with the session
 * cookie. Every change needs the x-coffer-csrf header and a same-origin request.
 */
function consolePaths(): Record<string, unknown> {
  const session = [{ consoleSession: [] }];
  const get = (summary: string, who = 'admin, auditor', parameters: unknown[] = []) => ({ get: { summary, description: roles(who), security: session, parameters, responses: { '200': { description: 'ok' }, ...std } } });
  const q = (...names: string[]) => names.map((n) => ({ name: n, in: 'query', schema: { type: 'string' } }));
  const change = { 'x-coffer-csrf': 'required' };
  return {
    '/console': { get: { summary: 'Redirects to /console/', responses: { '302': { description: 'to /console/' } } } },
    '/console/{prefix}': { get: { summary: 'The console app (index.html and its assets), strict CSP', parameters: prefixParam, responses: { '200': { description: 'file' }, '404': problemRef } } },
    '/console/api/login': { post: { summary: 'Sign in with an admin or auditor token: sets the coffer-console session cookie, returns the CSRF token', requestBody: json({ type: 'object', required: ['token'], properties: { token: { type: 'string' } } }), responses: { '200': { description: 'session' }, ...std } } },
    '/console/api/logout': { post: { summary: 'End the session', security: session, ...change, responses: { '204': { description: 'signed out' }, ...std } } },
    '/console/api/session': get('The session: role, token id, CSRF token, expiry'),
    '/console/api/overview': get('Attestations, releases and refusals per hour, by verdict and platform', 'admin, auditor', q('hours')),
    '/console/api/attestations': get('Attestation attempts, newest first', 'admin, auditor', q('since', 'until', 'verdict', 'platform', 'limit')),
    '/console/api/attestations/{id}': get('One attestation with its trust report', 'admin, auditor', [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]),
    '/console/api/secrets': get('Secrets and volumes (metadata only) with their release policies'),
    '/console/api/policies': get('Release policies and the attestation policy in use'),
    '/console/api/policy': {
      ...get('A release policy', 'admin, auditor', q('prefix')),
      put: { summary: 'Set a release policy (as PUT /admin/v0/policies/{prefix})', description: roles('admin'), security: session, ...change, parameters: q('prefix'), requestBody: json({ type: 'object', required: ['policy'], properties: { policy: { type: 'string' } } }), responses: { '200': { description: 'stored' }, ...std } },
    },
    '/console/api/policy-test': { post: { summary: 'Evaluate a draft policy against the claims of recent attestations (stores nothing)', description: roles('admin, auditor'), security: session, ...change, requestBody: json({ type: 'object', required: ['policy'], properties: { policy: { type: 'string' }, limit: { type: 'integer' } } }), responses: { '200': { description: 'results' }, ...std } } },
    '/console/api/references': get('Signed reference-value documents'),
    '/console/api/audit': get('The audit log', 'admin, auditor', q('since', 'until', 'action', 'verdict', 'actor', 'limit', 'after')),
    '/console/api/audit.csv': get('The audit log as CSV', 'admin, auditor', q('since', 'until', 'action', 'verdict', 'actor', 'limit', 'after')),
  };
}
