import { describe, expect, it } from "vitest";
import { attemptText, stillAwaited } from "./deliveries";

const delivery = (id: string, status: "pending" | "delivered" | "failed", attempt_count: number) => ({
  id,
  status,
  attempt_count,
});

describe("the deliveries the page waits for", () => {
  it("waits for a test-send the list does not show yet", () => {
    expect(stillAwaited({ a: 1 }, [])).toEqual({ a: 1 });
  });
  it("waits while a delivery is pending", () => {
    expect(stillAwaited({ a: 1 }, [delivery("a", "pending", 1)])).toEqual({ a: 1 });
  });
  it("stops waiting once it is delivered or failed", () => {
    expect(stillAwaited({ a: 1, b: 1 }, [delivery("a", "delivered", 1), delivery("b", "failed", 4)])).toEqual({});
  });
  it("waits for a re-send until the delivery has one attempt more", () => {
    expect(stillAwaited({ a: 2 }, [delivery("a", "delivered", 1)])).toEqual({ a: 2 });
    expect(stillAwaited({ a: 2 }, [delivery("a", "delivered", 2)])).toEqual({});
  });
});

describe("an attempt in words", () => {
  it("names the answer and its latency", () => {
    expect(attemptText({ attempt: 1, status_code: 200, latency_ms: 35, error: null })).toBe("HTTP 200 in 35 ms");
  });
  it("names the error of an attempt with no answer", () => {
    expect(attemptText({ attempt: 2, status_code: null, latency_ms: 3000, error: "timed out" })).toBe(
      "no answer after 3000 ms: timed out",
    );
  });
  it("names the error of an answer that is not a success", () => {
    expect(attemptText({ attempt: 1, status_code: 500, latency_ms: 4, error: "HTTP 500" })).toBe(
      "HTTP 500 in 4 ms: HTTP 500",
    );
  });
});
