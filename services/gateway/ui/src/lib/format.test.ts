import { describe, expect, it } from "vitest";
import { budgetLevel, dayRange, duration, eachDay, percentOf, sortJobs, usd } from "./format";

describe("the budget bar's colour", () => {
  it("is the usual colour below 75 % spent", () => {
    expect(budgetLevel(0)).toBe("ok");
    expect(budgetLevel(74.99)).toBe("ok");
  });
  it("turns yellow at 75 %", () => {
    expect(budgetLevel(75)).toBe("warn");
    expect(budgetLevel(89.99)).toBe("warn");
  });
  it("turns orange at 90 %", () => {
    expect(budgetLevel(90)).toBe("high");
    expect(budgetLevel(100)).toBe("high");
  });
  it("reads percent spent from exact decimal strings, within 0..100", () => {
    expect(percentOf("0.75", "1")).toBe(75);
    expect(percentOf("3", "2")).toBe(100);
    expect(percentOf("1", "0")).toBe(0);
  });
});

describe("money and durations", () => {
  it("shows cents, and two significant digits below a cent", () => {
    expect(usd("12.5")).toBe("$12.50");
    expect(usd("0.000123456")).toBe("$0.00012");
    expect(usd("0")).toBe("$0.00");
    expect(usd(null)).toBe("–");
  });
  it("writes durations in hours, minutes and seconds", () => {
    expect(duration(42)).toBe("42 s");
    expect(duration(185)).toBe("3 min 05 s");
    expect(duration(3720)).toBe("1 h 02 min");
    expect(duration(null)).toBe("–");
  });
});

describe("sorting jobs", () => {
  const jobs = [
    { id: "a", status: "COMPLETED" as const, created_at: "2026-01-01T00:00:00Z", cost_usd: "5" },
    { id: "b", status: "RUNNING" as const, created_at: "2026-01-03T00:00:00Z", cost_usd: "1" },
    { id: "c", status: "FAILED" as const, created_at: "2026-01-02T00:00:00Z", cost_usd: "9" },
  ];
  it("puts the newest first", () => {
    expect(sortJobs(jobs, "created").map((j) => j.id)).toEqual(["b", "c", "a"]);
  });
  it("puts the dearest first", () => {
    expect(sortJobs(jobs, "cost").map((j) => j.id)).toEqual(["c", "a", "b"]);
  });
  it("puts running jobs first, finished ones last", () => {
    expect(sortJobs(jobs, "status").map((j) => j.id)).toEqual(["b", "c", "a"]);
  });
});

describe("usage periods", () => {
  it("spans the last N UTC days, today included", () => {
    expect(dayRange(7, new Date("2026-03-10T15:00:00Z"))).toEqual({ from: "2026-03-04", to: "2026-03-10" });
    expect(eachDay("2026-02-27", "2026-03-02")).toEqual([
      "2026-02-27",
      "2026-02-28",
      "2026-03-01",
      "2026-03-02",
    ]);
  });
});
