/** Text the server did not accept, kept visible so it is never lost silently. */
import { useState } from 'react';
import type { Draft } from '../realtime/noteSession';

export interface DraftPanelProps {
  draft: Draft;
  canRestore: boolean;
  onRestore: () => void;
  onDismiss: () => void;
}

export function DraftPanel({ draft, canRestore, onRestore, onDismiss }: DraftPanelProps) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(draft.text);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <section className="draft" aria-labelledby="draft-title" data-testid="draft">
      <h2 id="draft-title">Your unsaved text</h2>
      <p role="alert">{draft.reason} It was not saved; it is kept here so you can copy or restore it.</p>
      <label htmlFor="draft-text" className="visually-hidden">
        Unsaved text
      </label>
      <textarea id="draft-text" readOnly value={draft.text} rows={6} />
      <div className="actions">
        <button type="button" onClick={copy}>
          {copied ? 'Copied' : 'Copy text'}
        </button>
        <button type="button" onClick={onRestore} disabled={!canRestore} title={canRestore ? '' : 'Start editing first'}>
          Put back into the editor
        </button>
        <button
          type="button"
          className="danger"
          onClick={() => {
            if (window.confirm('Discard your unsaved text for good?')) onDismiss();
          }}
        >
          Discard
        </button>
      </div>
    </section>
  );
}
