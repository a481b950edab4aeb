/**
 * What the page says about the idle hand-off and edit requests (protocol.md, "Idle
 * hand-off"): pure text built from what the session knows, unit-tested.
 */
import type { UserBrief } from '../api/types';
import { DisconnectedError, ProtocolError } from './socket';

/** Whole seconds left until `deadline` (clock time), never negative. */
export function secondsLeft(deadline: number, now: number): number {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

/** The warning shown to a holder who has not typed for a while. */
export function idleWarningText(next: string | null): string {
  return `You have not typed for a while: the write token will be handed to ${next ?? 'the next person in line'}.`;
}

/** Shown to the holder after an idle hand-off. */
export function idleLossText(next: string | null, idleSeconds: number | null): string {
  const after = idleSeconds !== null ? ` after ${idleSeconds} s idle` : ' because you were idle';
  return `The token was handed to ${next ?? 'the next person in line'}${after}.`;
}

/** "bob would like to edit", "bob and carol would like to edit", ... */
export function editRequestText(from: readonly UserBrief[]): string {
  const names = from.map((u) => u.name);
  const who = names.length <= 1 ? (names[0] ?? 'Someone') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  return `${who} would like to edit`;
}

/** The answer to this tab's `request`. */
export function askResultText(holder: UserBrief | null): string {
  return holder ? `${holder.name} was asked to hand over the token.` : 'Nobody holds the token now: it is yours soon.';
}

/** Why a `request` was refused, fit to show a person. */
export function askErrorText(err: unknown): string {
  if (err instanceof ProtocolError) {
    if (err.code === 'rate_limited') {
      const ms = err.reply.retry_after_ms;
      const wait = typeof ms === 'number' ? ` in ${Math.max(1, Math.ceil(ms / 1000))} s` : ' in a few seconds';
      return `You asked a moment ago: you can ask again${wait}.`;
    }
    if (err.code === 'forbidden') return 'You may not edit this note.';
    if (err.code === 'bad_request') return 'This server does not pass requests on to the writer.';
    return `Could not ask: ${err.message || err.code}.`;
  }
  if (err instanceof DisconnectedError) return 'Could not ask: not connected.';
  return 'Could not ask: unexpected error.';
}
