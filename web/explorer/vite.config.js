import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { defineConfig } from 'vite';
import { buildInfo, darkSkyHips, neutraliseRemoteUrls } from './plugins/offline.js';

const root = dirname(fileURLToPath(import.meta.url));
// The built bundle is committed inside the Python package, so a fresh clone serves the explorer
// without npm (see README.md).
const outDir = resolve(root, '../../src/spherex_archive/web/explorer');

export default defineConfig({
  root,
  base: '/applications/spherex/',
  plugins: [neutraliseRemoteUrls(), darkSkyHips(), buildInfo(root, outDir)],
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    assetsInlineLimit: 0,
    // Aladin Lite carries its WebAssembly core inline (~2 MB): one lazily loaded chunk.
    chunkSizeWarningLimit: 3000,
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` against a running archive: `spherex-archive serve` on port 8000.
    proxy: Object.fromEntries(
      ['/applications/spherex/api', '/coverage', '/datalink', '/soda', '/api', '/results', '/ibe'].map(
        (p) => [p, 'http://127.0.0.1:8000'],
      ),
    ),
  },
});
