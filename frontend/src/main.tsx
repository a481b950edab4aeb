import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Api } from './api/http';
import { App } from './App';
import { AuthStore } from './auth/authStore';
import './styles.css';

const api = new Api(() => auth.token());
const auth: AuthStore = new AuthStore(api);

const root = document.getElementById('root');
if (!root) throw new Error('#root is missing from index.html');
createRoot(root).render(
  <StrictMode>
    <App services={{ api, auth }} />
  </StrictMode>,
);
