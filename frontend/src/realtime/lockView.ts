/** What the lock banner says and offers, derived from a note's state (pure, unit-tested). */
import type { User } from '../api/types';
import type { NoteState } from './noteSession';

export type LockAction = 'acquire' | 'wait' | 'ask' | 'release' | 'leave-line' | 'revoke';

export interface LockView {
  tone: 'mine' | 'free' | 'busy' | 'pending';
  text: string;
  actions: LockAction[];
  /** The holder a waiter can ask for the token (`ask`). */
  holder?: string;
}

export function ordinal(n: number): string {
  const rem100 = n % 100;
  if (rem100 >= 11 && rem100 <= 13) return `${n}th`;
  const suffix = { 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th';
  return `${n}${suffix}`;
}

export function lockView(state: NoteState, me: User): LockView {
  const canWrite = state.access === 'write' || state.access === 'admin';
  const canRevoke = state.access === 'admin';
  const lock = state.lock;
  switch (state.role) {
    case 'holder':
      return {
        tone: 'mine',
        text: state.writable
          ? 'You are editing'
          : 'You are editing - paused until the server confirms your token (your text is kept)',
        actions: ['release'],
      };
    case 'catching-up':
      return { tone: 'mine', text: 'You are editing - catching up with the latest text', actions: ['release'] };
    case 'releasing':
      return { tone: 'pending', text: 'Saving your last changes, then releasing the token', actions: [] };
    case 'acquiring':
      return { tone: 'pending', text: 'Asking for the write token…', actions: [] };
    case 'waiting': {
      const holder = lock ? (lock.holder.id === me.id ? 'You (in another tab)' : lock.holder.name) : 'Someone';
      const place = state.queuePosition ? ` - you are ${ordinal(state.queuePosition)} in line` : ' - you are in line';
      const text = `${holder} ${lock?.holder.id === me.id ? 'are' : 'is'} editing${place}`;
      // Someone else holds it: they can be asked to hand it over (protocol.md, "Idle hand-off").
      if (lock && lock.holder.id !== me.id) {
        return { tone: 'busy', text, actions: ['ask', 'leave-line'], holder: lock.holder.name };
      }
      return { tone: 'busy', text, actions: ['leave-line'] };
    }
    case 'none':
      break;
  }
  if (!lock) {
    return canWrite
      ? { tone: 'free', text: 'Free - start editing', actions: ['acquire'] }
      : { tone: 'free', text: 'Free - nobody is editing (you can only view this note)', actions: [] };
  }
  const actions: LockAction[] = [];
  if (canWrite) actions.push('wait');
  if (canRevoke) actions.push('revoke');
  const waiting = lock.queue.length > 0 ? ` (${lock.queue.length} waiting)` : '';
  if (lock.holder.id === me.id) {
    return { tone: 'busy', text: `You are editing in another tab or window${waiting}`, actions };
  }
  return { tone: 'busy', text: `${lock.holder.name} is editing${waiting}`, actions };
}
