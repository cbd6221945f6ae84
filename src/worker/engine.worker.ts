/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { Engine } from '../engine/engine';
import { Session } from '../engine/session/session';
import { browserPlatform } from '../engine/platform/browser';
import type { EngineApi } from './api';
import { dataApi } from './data-api';
import { demoApi } from './demo-api';
import { evalApi } from './eval-api';
import { gpuApi } from './gpu-api';
import { modelApi } from './model-api';
import { trainApi } from './train-api';
import { adaptersApi } from './adapters-api';
import { inspectApi } from './inspect-api';
import { exportApi } from './export-api';
import { inferenceApi } from './inference-api';

// The worker is the only place the engine meets the browser: it builds the browser platform and
// exposes the engine to the page through comlink, one area at a time. All GPU work happens here,
// off the UI thread.
const engine = new Engine(browserPlatform());
const session = new Session(engine);

const api: EngineApi = {
  ...gpuApi(engine),
  ...dataApi(engine),
  ...modelApi(engine, session),
  ...evalApi(engine, session),
  ...demoApi(engine, session),
  ...trainApi(engine, session),
  ...adaptersApi(engine, session),
  ...inspectApi(engine, session),
  ...exportApi(engine, session),
  ...inferenceApi(engine, session),
};

Comlink.expose(api);
