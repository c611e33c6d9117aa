import { useEffect, useRef } from "preact/hooks";

/** Run `tick` now and every `ms` while `active` (and the tab is visible); stop on unmount. */
export function usePoll(tick: () => Promise<unknown> | void, ms: number, active: boolean): void {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    if (!active) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (stopped) return;
      if (document.visibilityState !== "hidden") {
        try {
          await latest.current();
        } catch {
          // the next tick tries again; the page shows the last error itself
        }
      }
      if (!stopped) timer = setTimeout(run, ms);
    };
    timer = setTimeout(run, ms);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [ms, active]);
}
