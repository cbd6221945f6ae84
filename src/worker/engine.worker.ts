/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { Engine } from '../engine/engine';
import { browserPlatform } from '../engine/platform/browser';
import type { EngineApi } from './api';
import { gpuApi } from './gpu-api';

// The worker is the only place the engine meets the browser: it builds the browser platform and
// exposes the engine to the page through comlink, one area at a time. All GPU work happens here,
// off the UI thread.
const engine = new Engine(browserPlatform());

const api: EngineApi = {
  ...gpuApi(engine),
};

Comlink.expose(api);
