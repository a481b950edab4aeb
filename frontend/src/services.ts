/** The app-wide objects, shared through React context. */
import { createContext, useContext } from 'react';
import type { Api } from './api/http';
import type { AuthStore } from './auth/authStore';
import type { CollabSocket } from './realtime/socket';

export interface Services {
  api: Api;
  auth: AuthStore;
}

export const ServicesContext = createContext<Services | null>(null);
export const SocketContext = createContext<CollabSocket | null>(null);

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error('ServicesContext missing');
  return s;
}

export function useSocket(): CollabSocket {
  const s = useContext(SocketContext);
  if (!s) throw new Error('SocketContext missing');
  return s;
}
