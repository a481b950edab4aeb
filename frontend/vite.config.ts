/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The built client is served at `/` by `collab serve` (COLLAB_STATIC_DIR) and by the
// nginx gateway, and always talks to its own origin, so assets use absolute `/` paths.
const backend = process.env.COLLAB_DEV_BACKEND ?? 'http://127.0.0.1:8000';

export default defineConfig({
  base: '/',
  plugins: [react()],
  server: {
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      // `ws: true` is required for the WebSocket upgrade to be proxied.
      '/ws': { target: backend, ws: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // The note page's chunk holds CodeMirror and the grammars Markdown embeds (HTML, CSS,
    // JavaScript); it loads only when a note is opened, so its size does not delay sign-in.
    chunkSizeWarningLimit: 700,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
