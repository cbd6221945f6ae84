import type { DataApi } from './data-api';
import type { DemoApi } from './demo-api';
import type { EvalApi } from './eval-api';
import type { GpuApi } from './gpu-api';
import type { ModelApi } from './model-api';
import type { TrainApi } from './train-api';
import type { AdaptersApi } from './adapters-api';
import type { InspectApi } from './inspect-api';
import type { ExportApi } from './export-api';
import type { InferenceApi } from './inference-api';

/**
 * What the engine worker exposes through comlink: one interface per area of the app, each
 * implemented in its own module (src/worker/<area>-api.ts) and composed in engine.worker.ts.
 * The UI only ever sees this type.
 */
export type EngineApi = GpuApi & DataApi & ModelApi & EvalApi & DemoApi & TrainApi & AdaptersApi & ExportApi & InspectApi & InferenceApi;

export type { GpuApi, LayernormCheckInput, LayernormCheckOutput } from './gpu-api';
