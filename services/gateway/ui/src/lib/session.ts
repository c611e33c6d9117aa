// The signed-in user: a bearer token kept in this browser's local storage.
import { useEffect, useState } from "preact/hooks";

export type SignedInWith = "dev" | "oidc" | "token";

export interface Session {
  token: string;
  user: string;
  expiresAt: number; // ms since the epoch
  via: SignedInWith;
}

const KEY = "palette.session";
const listeners = new Set<() => void>();
let current: Session | null = read();

function read(): Session | null {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Session;
    return value.expiresAt > Date.now() ? value : null;
  } catch {
    return null;
  }
}

/** The current session, or null when signed out or the token has expired. */
export function session(): Session | null {
  if (current && current.expiresAt <= Date.now()) setSession(null);
  return current;
}

export function setSession(value: Session | null): void {
  current = value;
  if (value) localStorage.setItem(KEY, JSON.stringify(value));
  else localStorage.removeItem(KEY);
  listeners.forEach((listener) => listener());
}

export function useSession(): Session | null {
  const [value, setValue] = useState(session());
  useEffect(() => {
    const listener = () => setValue(session());
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }, []);
  return value;
}

/** The claims of a JWT, read without verifying it (the gateway verifies). */
export function claims(token: string): Record<string, unknown> {
  const part = token.split(".")[1];
  if (!part) throw new Error("not a JWT: it has no payload");
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof value !== "object" || value === null) throw new Error("not a JWT: bad payload");
  return value as Record<string, unknown>;
}

/** A session for a pasted token: its user and expiry come from its claims. */
export function tokenSession(token: string, via: SignedInWith = "token"): Session {
  const body = claims(token.trim());
  const sub = body.sub;
  const exp = body.exp;
  if (typeof sub !== "string" || !sub) throw new Error("the token has no sub (user) claim");
  if (typeof exp !== "number") throw new Error("the token has no exp claim");
  if (exp * 1000 <= Date.now()) throw new Error("the token has expired");
  return { token: token.trim(), user: sub, expiresAt: exp * 1000, via };
}
