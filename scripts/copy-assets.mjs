#!/usr/bin/env node
// Copies non-TypeScript assets (pinned root certificates) next to the compiled code in dist/.
import { cpSync, mkdirSync } from 'node:fs';

const root = new URL('..', import.meta.url);
mkdirSync(new URL('dist/pki/roots/', root), { recursive: true });
cpSync(new URL('src/pki/roots/', root), new URL('dist/pki/roots/', root), { recursive: true });
