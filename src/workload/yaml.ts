import { LineCounter, parseAllDocuments, isMap, isSeq, isPair, isScalar, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { inputError } from '../errors.js';

/**
 * YAML with line-accurate positions: every value a rule or a schema error speaks about can be
 * traced back to the line and column of the file the user wrote (the same approach as the
 * appraisal policy parser, over multi-document streams).
 */

export interface Pos {
  line: number;
  column: number;
}

export type Path = readonly (string | number)[];

export interface YamlDoc {
  /** The document as plain data. */
  value: unknown;
  source: string;
  /** Line and column of the node at a path (the key's position when `key` is set). */
  pos(path: Path, key?: boolean): Pos;
}

const MAX_BYTES = 4 * 1024 * 1024;

function nodeAt(doc: Document, path: Path, key: boolean): YamlNode | undefined {
  let node: unknown = doc.contents;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return node as YamlNode;
      if (last && key) return pair.key as YamlNode;
      node = pair.value ?? pair.key;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) return node as YamlNode;
      node = item;
    } else {
      return node as YamlNode | undefined;
    }
  }
  return node as YamlNode | undefined;
}

/**
 * Parses every document of a YAML stream (JSON is YAML). A syntax error, a duplicate key or a
 * document that is not a mapping is a CofferError `code` (exit 2) at its line and column.
 */
export function parseYamlDocuments(text: string, source: string, code: string): YamlDoc[] {
  if (Buffer.byteLength(text, 'utf8') > MAX_BYTES) throw inputError(code, `${source}: larger than ${MAX_BYTES} bytes`);
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) throw inputError(code, `${source}:1:1: not a YAML document`);
  const out: YamlDoc[] = [];
  for (const doc of docs) {
    const e = doc.errors[0];
    if (e) {
      const p = e.linePos?.[0];
      throw inputError(code, `${p ? `${source}:${p.line}:${p.col}` : source}: ${e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'not valid YAML'}`, { line: p?.line, column: p?.col });
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw inputError(code, `${source}: ${(err as Error).message.split('\n')[0] ?? 'unreadable YAML'}`);
    }
    // An empty document (a trailing `---`) is no workload; skip it as kubectl does.
    if (value === null || value === undefined) continue;
    const pos = (path: Path, key = false): Pos => {
      const node = nodeAt(doc, path, key);
      const p = lc.linePos(node?.range?.[0] ?? 0);
      return { line: p.line, column: p.col };
    };
    if (typeof value !== 'object' || Array.isArray(value)) {
      const p = pos([]);
      throw inputError(code, `${source}:${p.line}:${p.column}: a document must be a mapping`);
    }
    out.push({ value, source, pos });
  }
  if (out.length === 0) throw inputError(code, `${source}:1:1: the file holds no YAML document`);
  return out;
}

export interface FieldError extends Pos {
  field: string;
  message: string;
}

/** zod issues as positioned errors (unknown keys at the key, the rest at the value). */
export function schemaErrors(doc: YamlDoc, issues: readonly z.core.$ZodIssue[], prefix: Path = []): FieldError[] {
  const dotted = (p: readonly PropertyKey[]) => p.map(String).join('.') || '(top level)';
  const errors = issues.flatMap((issue) => {
    const path = [...prefix, ...(issue.path as (string | number)[])];
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ ...doc.pos([...path, k], true), field: dotted([...path, k]), message: 'unknown field' }));
    }
    const missing = issue.code === 'invalid_type' && issue.message.includes('received undefined');
    return [{ ...doc.pos(path), field: dotted(path), message: missing ? 'required field is missing' : issue.message }];
  });
  errors.sort((a, b) => a.line - b.line || a.column - b.column);
  return errors;
}

/** Throws the first of `errors` as one line, with all of them in details. */
export function throwFieldErrors(code: string, source: string, errors: readonly FieldError[]): never {
  const first = errors[0] as FieldError;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : '';
  throw inputError(code, `${source}:${first.line}:${first.column}: ${first.field}: ${first.message}${more}`, { errors });
}
