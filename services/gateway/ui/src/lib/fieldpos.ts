// Where in a template's JSON or YAML text the API's 422 problems belong: a problem names a
// field ("steps[0].model"), found here in the document's syntax tree (JSON is YAML too).
import { isMap, isPair, isScalar, isSeq, parseDocument, type Node } from "yaml";

export interface FieldProblem {
  field: string;
  problem: string;
  line?: number | null;
}

export interface Located {
  field: string;
  problem: string;
  from: number;
  to: number;
  line: number; // 1-based
  exact: boolean; // the field itself was found (else the nearest enclosing one)
}

/** "steps[0].model" as a path of keys and indices. */
export function fieldPath(field: string): (string | number)[] {
  const parts: (string | number)[] = [];
  for (const token of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (token[2] !== undefined) parts.push(Number(token[2]));
    else if (token[1] !== undefined) parts.push(token[1]);
  }
  return parts;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === "\n") line++;
  return line;
}

function lineRange(text: string, line: number): [number, number] {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf("\n", start);
    if (next < 0) break;
    start = next + 1;
  }
  const end = text.indexOf("\n", start);
  return [start, end < 0 ? text.length : end];
}

function child(node: Node | null, key: string | number): { key: Node | null; value: Node | null } | null {
  if (typeof key === "number" && isSeq(node)) {
    const item = node.items[key];
    return item === undefined ? null : { key: null, value: item as Node };
  }
  if (isMap(node)) {
    for (const pair of node.items) {
      if (isPair(pair) && isScalar(pair.key) && String(pair.key.value) === String(key)) {
        return { key: pair.key as Node, value: (pair.value as Node) ?? null };
      }
    }
  }
  return null;
}

/** The text range of each problem: the named field's value, else its nearest ancestor's key. */
export function locate(text: string, problems: readonly FieldProblem[]): Located[] {
  const doc = parseDocument(text, { keepSourceTokens: false });
  return problems.map((p) => {
    if (p.line) {
      const [from, to] = lineRange(text, p.line);
      return { field: p.field, problem: p.problem, from, to, line: p.line, exact: true };
    }
    let node: Node | null = doc.contents as Node | null;
    let mark: [number, number] | null = node?.range ? [node.range[0], node.range[1]] : null;
    let exact = true;
    for (const key of fieldPath(p.field)) {
      const next = child(node, key);
      if (!next) {
        exact = false;
        break;
      }
      const at = next.value?.range ?? next.key?.range;
      node = next.value;
      if (at) mark = [at[0], at[1]];
      else if (next.key?.range) mark = [next.key.range[0], next.key.range[1]];
    }
    if (!exact && node && isMap(node) && node.items.length > 0) {
      // A missing key: mark the first key of the map that lacks it.
      const first = node.items[0];
      if (isPair(first) && isScalar(first.key) && first.key.range) {
        mark = [first.key.range[0], first.key.range[1]];
      }
    }
    const [from, to] = mark ?? [0, Math.min(text.length, 1)];
    return { field: p.field, problem: p.problem, from, to: Math.max(to, from), line: lineOf(text, from), exact };
  });
}

/** A template's text as the API body, or the syntax problem (with its line) that stops it. */
export function parseTemplate(text: string): { body: Record<string, unknown> } | { problem: FieldProblem } {
  const doc = parseDocument(text, { uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0]?.line ?? null;
    return { problem: { field: "body", problem: first.message.split("\n")[0] ?? "syntax error", line } };
  }
  const value: unknown = doc.toJS();
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { problem: { field: "body", problem: "the template must be a mapping with name and steps", line: 1 } };
  }
  const body = { ...(value as Record<string, unknown>) };
  delete body.plot_palette_template; // the marker of GET /templates/{id}/yaml
  return { body };
}
