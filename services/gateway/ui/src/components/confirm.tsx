import type { ComponentChildren, RefObject } from "preact";

/** A modal asking before something is deleted for good; "keep" has the focus. */
export function ConfirmDialog({
  dialog,
  title,
  keep,
  yes,
  onYes,
  children,
}: {
  dialog: RefObject<HTMLDialogElement>;
  title: string;
  keep: string;
  yes: string;
  onYes: () => void;
  children: ComponentChildren;
}) {
  return (
    <dialog ref={dialog} aria-labelledby="confirm-title" data-testid="confirm-delete">
      <article>
        <h2 id="confirm-title">{title}</h2>
        {children}
        <footer>
          <button type="button" class="secondary" onClick={() => dialog.current?.close()} autoFocus>
            {keep}
          </button>
          <button type="button" class="contrast" data-testid="confirm-delete-yes" onClick={onYes}>
            {yes}
          </button>
        </footer>
      </article>
    </dialog>
  );
}
