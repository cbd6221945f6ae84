import { defineConfig } from 'vitest/config';
import type { Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { resolve } from 'node:path';

/**
 * The built app's Content-Security-Policy. Scripts and workers come from the app itself only;
 * 'wasm-unsafe-eval' lets hash-wasm (record checksums) compile WebAssembly, and nothing may eval
 * text. Downloads go to https anywhere (the Hub, its CDN, mirrors, share links) and to plain http on
 * this machine only (development servers); blob: is the page's own exports, read back. Inline
 * styles stay allowed: Svelte sets style attributes.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "connect-src 'self' blob: https: http://localhost:* http://127.0.0.1:*",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/**
 * Ships the policy with the build: as a <meta> in index.html (for any host), and as a header in
 * `_headers` (the format Netlify and Cloudflare Pages read), which also covers the worker: a worker's
 * policy comes from its own response, never from the page's <meta>. `frame-ancestors` only works as a
 * header. `npm run preview` sends the header too.
 */
function contentSecurityPolicy(): Plugin {
  return {
    name: 'content-security-policy',
    apply: 'build',
    transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CONTENT_SECURITY_POLICY }, injectTo: 'head-prepend' }],
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: '_headers', source: `/*\n  Content-Security-Policy: ${CONTENT_SECURITY_POLICY}; frame-ancestors 'none'\n` });
    },
  };
}

// Two builds share this file:
//  - the app (default): the Svelte page and its module worker, into dist/;
//  - `vite build --mode node`: the CLI and the benchmarks as single ES modules for Node, into .bench/,
//    with only Dawn's native `webgpu` binding left external so the bundle travels to a GPU machine alone.
// Shaders are imported as `?raw` strings everywhere, so they load identically in all of them and in vitest.
export default defineConfig(({ mode }) => {
  if (mode === 'node') {
    return {
      publicDir: false,
      build: {
        ssr: true,
        outDir: '.bench',
        emptyOutDir: false,
        target: 'node20',
        minify: false,
        sourcemap: false,
        rollupOptions: {
          input: {
            cli: resolve(import.meta.dirname, 'src/cli/main.ts'),
            bench: resolve(import.meta.dirname, 'test/bench/bench.ts'),
          },
          output: { format: 'es', entryFileNames: '[name].mjs' },
          external: ['webgpu', 'onnxruntime-node', 'sharp', /^node:/],
        },
      },
      ssr: { noExternal: true, external: ['webgpu', 'onnxruntime-node', 'sharp'] },
    };
  }
  return {
    plugins: [svelte(), contentSecurityPolicy()],
    worker: { format: 'es' },
    build: { target: 'es2022', sourcemap: true, chunkSizeWarningLimit: 4096 },
    server: { port: 5173 },
    preview: { port: 4173, headers: { 'Content-Security-Policy': `${CONTENT_SECURITY_POLICY}; frame-ancestors 'none'` } },
    test: {
      projects: [
        {
          extends: true,
          test: {
            name: 'unit',
            include: ['test/unit/**/*.test.ts', 'test/bench/**/*.test.ts'],
            environment: 'node',
            // Files run side by side on as few as 2 cores, one of them importing a 5.6 GB checkpoint:
            // a test that takes 0.4 s alone (835 KB streamed a byte at a time) has passed 5 s there.
            testTimeout: 30_000,
          },
        },
        {
          extends: true,
          test: {
            name: 'kernels',
            include: ['test/gpu/**/*.test.ts'],
            environment: 'node',
            // One Dawn instance per worker process; SwiftShader already uses every core.
            pool: 'forks',
            fileParallelism: false,
            // Generous: on 2 shared cores under other load a training-resume test has taken over 120 s
            // (about 20 s on a quiet machine); a verdict must not depend on the machine's load.
            testTimeout: 600_000,
            hookTimeout: 300_000,
          },
        },
        {
          extends: true,
          test: {
            name: 'e2e',
            include: ['test/e2e/**/*.test.ts'],
            environment: 'node',
            pool: 'forks',
            fileParallelism: false,
            testTimeout: 300_000,
            hookTimeout: 120_000,
          },
        },
        {
          // `npm run screenshots`: the README's pictures, made in the built app (not part of `npm test`).
          extends: true,
          test: {
            name: 'screenshots',
            include: ['test/screenshots/**/*.shots.ts'],
            environment: 'node',
            pool: 'forks',
            fileParallelism: false,
            testTimeout: 300_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});
