// A JSON or YAML editor (CodeMirror 6) that shows the API's problems at the fields they name.
import { json } from "@codemirror/lang-json";
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { Compartment, EditorState } from "@codemirror/state";
import { EditorView, basicSetup } from "codemirror";
import { useEffect, useRef } from "preact/hooks";
import type { Located } from "../lib/fieldpos";

export type Language = "json" | "yaml";

interface Props {
  value: string;
  language: Language;
  problems: Located[];
  label: string;
  onChange(value: string): void;
  onView?(view: EditorView): void;
}

export function CodeEditor({ value, language, problems, label, onChange, onView }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const lang = useRef(new Compartment());
  const change = useRef(onChange);
  change.current = onChange;

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          basicSetup,
          lintGutter(),
          lang.current.of(language === "json" ? json() : yaml()),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "aria-label": label }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) change.current(update.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = editor;
    onView?.(editor);
    return () => editor.destroy();
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (editor && editor.state.doc.toString() !== value) {
      editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: value } });
    }
  }, [value]);

  useEffect(() => {
    view.current?.dispatch({
      effects: lang.current.reconfigure(language === "json" ? json() : yaml()),
    });
  }, [language]);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const length = editor.state.doc.length;
    const diagnostics: Diagnostic[] = problems.map((p) => ({
      from: Math.min(p.from, length),
      to: Math.min(Math.max(p.to, p.from + 1), length),
      severity: "error",
      message: `${p.field}: ${p.problem}`,
    }));
    editor.dispatch(setDiagnostics(editor.state, diagnostics));
  }, [problems]);

  return <div class="code-editor" ref={host} data-testid="template-editor" />;
}

/** Put the caret on a problem's field and scroll to it. */
export function reveal(editor: EditorView | null, at: Located): void {
  if (!editor) return;
  const anchor = Math.min(at.from, editor.state.doc.length);
  editor.dispatch({ selection: { anchor }, scrollIntoView: true });
  editor.focus();
}
