import { describe, expect, it } from "vitest";
import { leadingRecords } from "./seeds";

describe("the leading records of a seed file", () => {
  it("reads JSONL lines, skipping blank ones", () => {
    const text = '{"a": 1}\n\n{"a": 2}\n{"a": 3}\n';
    expect(leadingRecords("s.jsonl", text, 2)).toEqual([{ a: 1 }, { a: 2 }]);
  });
  it("reads a JSON array", () => {
    expect(leadingRecords("s.json", '[{"a": 1}, {"a": 2}]', 5)).toEqual([{ a: 1 }, { a: 2 }]);
  });
  it("reads CSV rows by their header, quotes included", () => {
    const text = '\uFEFFproduct,note\n"a, b",x\nc,"say ""hi"""\n';
    expect(leadingRecords("s.csv", text, 5)).toEqual([
      { product: "a, b", note: "x" },
      { product: "c", note: 'say "hi"' },
    ]);
  });
  it("refuses a .json file that is no array", () => {
    expect(() => leadingRecords("s.json", '{"a": 1}', 5)).toThrow(/array/);
  });
});
