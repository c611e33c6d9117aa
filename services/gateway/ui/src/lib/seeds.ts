// The first records of a seed file chosen in the browser: the preview's seed and more seeds.
import Papa from "papaparse";

export type Seed = Record<string, unknown>;

const HEAD_BYTES = 1024 * 1024;
const WHOLE_JSON_BYTES = 20 * 1024 * 1024;

function isRecord(value: unknown): value is Seed {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Up to `limit` leading records of a seed file's text, by its name (.json, .jsonl, .csv). */
export function leadingRecords(name: string, text: string, limit: number): Seed[] {
  const lower = name.toLowerCase();
  const body = text.replace(/^\uFEFF/, "");
  if (lower.endsWith(".csv")) {
    const parsed = Papa.parse<Seed>(body, { header: true, skipEmptyLines: true, preview: limit });
    return parsed.data.filter(isRecord);
  }
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) {
    const out: Seed[] = [];
    for (const line of body.split("\n")) {
      if (out.length >= limit) break;
      if (!line.trim()) continue;
      const value: unknown = JSON.parse(line);
      if (isRecord(value)) out.push(value);
    }
    return out;
  }
  const value: unknown = JSON.parse(body);
  if (!Array.isArray(value)) throw new Error("a .json seed file must hold an array of records");
  return value.filter(isRecord).slice(0, limit);
}

/** The leading records of a File (its head for CSV and JSONL, the whole of a JSON array). */
export async function fileRecords(file: File, limit: number): Promise<Seed[]> {
  const whole = file.name.toLowerCase().endsWith(".json");
  if (whole && file.size > WHOLE_JSON_BYTES) {
    throw new Error("the estimate reads a .json file whole: use JSONL for files this large");
  }
  const slice = whole ? file : file.slice(0, HEAD_BYTES);
  let text = await slice.text();
  if (!whole && file.size > HEAD_BYTES) text = text.slice(0, text.lastIndexOf("\n") + 1);
  return leadingRecords(file.name, text, limit);
}
