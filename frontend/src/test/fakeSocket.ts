/**
 * A scripted stand-in for the browser WebSocket, so the socket and note state machines can
 * be driven frame by frame under fake timers.
 */
import type { LeaseInfo, WelcomeMsg } from '../api/types';
import { CollabSocket, type SocketLike } from '../realtime/socket';

// Frames are loosely typed on purpose: tests inspect whatever the client sent.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;

export class FakeWebSocket implements SocketLike {
  readyState = 0;
  sent: Frame[] = [];
  closedWith: number | null = null;
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(code = 1000): void {
    this.readyState = 3;
    this.closedWith = code;
  }

  // --- test side -----------------------------------------------------------------------
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }

  receive(msg: Frame): void {
    this.onmessage?.({ data: JSON.stringify(msg) } as MessageEvent);
  }

  serverClose(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }

  ofType(type: string): Frame[] {
    return this.sent.filter((m) => m.type === type);
  }

  last(type: string): Frame {
    const found = this.ofType(type).at(-1);
    if (!found) throw new Error(`no ${type} frame was sent; sent: ${this.sent.map((m) => m.type).join(', ')}`);
    return found;
  }

  /** Answer the last request of `type` with a reply echoing its rid. */
  reply(type: string, msg: Frame): void {
    this.receive({ ...msg, rid: this.last(type).rid });
  }
}

export interface Harness {
  socket: CollabSocket;
  sockets: FakeWebSocket[];
  current: () => FakeWebSocket;
  /** Open the current socket and answer its hello with a welcome. */
  connect: (extra?: Partial<WelcomeMsg>) => FakeWebSocket;
}

export const ME = { id: 'u-alice', name: 'Alice', role: 'user' as const };
export const BOB = { id: 'u-bob', name: 'Bob', role: 'user' as const };

export function welcome(extra: Partial<WelcomeMsg> = {}): WelcomeMsg {
  return {
    type: 'welcome',
    protocol: 1,
    session: 's-1',
    user: ME,
    server: 'r1',
    heartbeat_ms: 1000,
    lease_ttl_ms: 3000,
    resumed: false,
    leases: [] as LeaseInfo[],
    ...extra,
  };
}

export function harness(): Harness {
  const sockets: FakeWebSocket[] = [];
  const socket = new CollabSocket({
    url: 'ws://test/ws',
    getToken: () => 'jwt-token',
    createSocket: (url) => {
      const ws = new FakeWebSocket(url);
      sockets.push(ws);
      return ws;
    },
    random: () => 0.5,
  });
  const current = () => {
    const ws = sockets.at(-1);
    if (!ws) throw new Error('no socket yet');
    return ws;
  };
  return {
    socket,
    sockets,
    current,
    connect: (extra) => {
      const ws = current();
      ws.open();
      ws.receive(welcome(extra));
      return ws;
    },
  };
}
