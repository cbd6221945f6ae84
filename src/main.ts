import { mount } from 'svelte';
import App from './ui/App.svelte';
import './ui/app.css';
import { engine } from './worker/client';

mount(App, { target: document.getElementById('app')! });

// The typed engine remote, reachable from the console and from the end-to-end tests.
(globalThis as { phi2?: unknown }).phi2 = engine();

// Offline app shell, in production builds only (the dev server's modules are not cacheable assets).
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  navigator.serviceWorker.register(`${import.meta.env.BASE_URL}sw.js`).catch((err) => console.warn('service worker not registered:', err));
}
