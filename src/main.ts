import { mount } from 'svelte';
import App from './ui/App.svelte';
import './ui/app.css';
import { engine } from './worker/client';

mount(App, { target: document.getElementById('app')! });

// The typed engine remote, reachable from the console and from the end-to-end tests.
(globalThis as { phi2?: unknown }).phi2 = engine();
