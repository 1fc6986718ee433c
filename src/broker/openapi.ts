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

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Coffer key broker', version, description: 'KBS attestation protocol (RCAR) and the admin API. Protocol: docs/protocol.md.' },
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'admin token coffer_<id>_<secret>' }, kbsSession: { type: 'apiKey', in: 'cookie', name: 'kbs-session-id' }, attestationToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (EAR, ES384)' } },
      responses: {
        Problem: {
          description: `RFC 7807 problem; type is one of ${Object.keys(PROBLEMS).map((p) => `${PROBLEM_BASE}${p}`).join(', ')}`,
          content: { 'application/problem+json': { schema: { type: 'object', required: ['type', 'title', 'status', 'detail', 'code'], properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, rule: { type: 'string' } } } } },
        },
      },
    },
    paths: {
      '/kbs/v0/auth': { post: { summary: 'Start a session: get a nonce and the kbs-session-id cookie', requestBody: json({ type: 'object', required: ['version', 'tee'], properties: { version: { type: 'string' }, tee: { type: 'string', enum: ['snp'] }, 'extra-params': {} } }), responses: { '200': { description: 'challenge', headers: { 'Set-Cookie': { schema: { type: 'string' } } }, ...json({ type: 'object', properties: { nonce: { type: 'string' }, 'extra-params': {} } }) }, ...std } } },
      '/kbs/v0/attest': { post: { summary: 'Present evidence bound to the nonce and a tee-pubkey; get an EAR token', security: [{ kbsSession: [] }], requestBody: json({ type: 'object', required: ['runtime-data', 'tee-evidence'], properties: { 'runtime-data': { type: 'object', required: ['nonce', 'tee-pubkey'] }, 'tee-evidence': {} } }), responses: { '200': { description: 'EAR token', ...json({ type: 'object', properties: { token: { type: 'string' } } }) }, ...std } } },
      '/kbs/v0/resource/{repository}/{type}/{tag}': { get: { summary: 'Fetch a secret as a flattened JWE to the tee-pubkey', security: [{ kbsSession: [] }, { attestationToken: [] }], parameters: resourceParams, responses: { '200': { description: 'flattened JWE', content: { 'application/jose+json': { schema: { type: 'object' } } } }, ...std } } },
      '/.well-known/jwks.json': { get: { summary: 'Keys that verify the attestation tokens', responses: { '200': { description: 'JWKS', ...json({ type: 'object' }) } } } },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'alive' } } } },
      '/readyz': { get: { summary: 'Readiness (the store answers)', responses: { '200': { description: 'ready' }, '503': problemRef } } },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } } },
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
    },
  };
}
