import { describe, expect, it } from "vitest";
import { fieldPath, locate, parseTemplate } from "./fieldpos";

const JSON_TEXT = `{
  "name": "t",
  "steps": [
    {"id": "q", "model": "nope.model", "prompt": "Hi {{ x }}"},
    {"id": "a", "model": "amazon.nova-micro-v1:0"}
  ]
}`;

const YAML_TEXT = `name: t
steps:
  - id: q
    model: nope.model
    prompt: Hi {{ x }}
`;

describe("where a problem's field is", () => {
  it("splits the API's field names into keys and indices", () => {
    expect(fieldPath("steps[0].model")).toEqual(["steps", 0, "model"]);
    expect(fieldPath("name")).toEqual(["name"]);
  });
  it("finds a field's value in JSON", () => {
    const [at] = locate(JSON_TEXT, [{ field: "steps[0].model", problem: "unknown model" }]);
    expect(JSON_TEXT.slice(at!.from, at!.to)).toBe('"nope.model"');
    expect(at!.line).toBe(4);
    expect(at!.exact).toBe(true);
  });
  it("finds a field's value in YAML", () => {
    const [at] = locate(YAML_TEXT, [{ field: "steps[0].model", problem: "unknown model" }]);
    expect(YAML_TEXT.slice(at!.from, at!.to)).toBe("nope.model");
    expect(at!.line).toBe(4);
  });
  it("marks the object that lacks a missing field", () => {
    const [at] = locate(JSON_TEXT, [{ field: "steps[1].prompt", problem: "Field required" }]);
    expect(at!.exact).toBe(false);
    expect(at!.line).toBe(5);
  });
  it("uses the line a problem gives", () => {
    const [at] = locate(YAML_TEXT, [{ field: "body", problem: "syntax", line: 3 }]);
    expect(YAML_TEXT.slice(at!.from, at!.to)).toBe("  - id: q");
  });
});

describe("reading a template's text", () => {
  it("reads JSON and YAML alike, without the export's marker", () => {
    const parsed = parseTemplate(`plot_palette_template: 1\n${YAML_TEXT}`);
    expect("body" in parsed && parsed.body).toEqual({
      name: "t",
      steps: [{ id: "q", model: "nope.model", prompt: "Hi {{ x }}" }],
    });
  });
  it("names the line of a syntax error", () => {
    const parsed = parseTemplate('{\n  "name": "t",\n  "steps": [\n}');
    expect("problem" in parsed && parsed.problem.line).toBeGreaterThan(1);
  });
});
