import type { Engine } from '../engine/engine';
import {
  AdapterInspection,
  type ContrastRequest,
  type ContrastUpdate,
  type InspectProgress,
  type IntrudersRequest,
  type SpectraRequest,
} from '../engine/session/inspection';
import type { IntruderResult } from '../engine/inspect/intruders';
import type { UpdateCell } from '../engine/inspect/spectra';
import type { Session } from '../engine/session/session';

export type { UpdateCell, UpdateSpectrum } from '../engine/inspect/spectra';
export type { IntruderResult, IntruderSettings } from '../engine/inspect/intruders';
export type { ContrastDirection } from '../engine/inspect/contrastive';

export type {
  ContrastRequest,
  ContrastSampleView,
  ContrastTokenView,
  ContrastUpdate,
  InspectProgress,
  IntrudersRequest,
  SpectraRequest,
} from '../engine/session/inspection';

/**
 * The Inspect view's side of the worker: comlink's face of the engine's AdapterInspection
 * (engine/session/inspection.ts): update spectra, intruder dimensions and contrastive generation. Each
 * long call has a jobId: progress arrives through its callback after every module or token, and
 * cancelInspect(jobId) stops it at the next one.
 */
export interface InspectApi {
  inspectSpectra(request: SpectraRequest, onProgress?: (p: InspectProgress<UpdateCell>) => void): Promise<UpdateCell[]>;
  inspectIntruders(request: IntrudersRequest, onProgress?: (p: InspectProgress<IntruderResult>) => void): Promise<IntruderResult[]>;
  runContrast(request: ContrastRequest, onUpdate?: (u: ContrastUpdate) => void): Promise<ContrastUpdate>;
  cancelInspect(jobId: string): Promise<void>;
}

export function inspectApi(_engine: Pick<Engine, 'platform'>, session: Session): InspectApi {
  const w = new AdapterInspection(session);
  return {
    inspectSpectra: (request, onProgress) => w.spectra(request, onProgress),
    inspectIntruders: (request, onProgress) => w.intruders(request, onProgress),
    runContrast: (request, onUpdate) => w.contrast(request, onUpdate),
    cancelInspect: async (jobId) => w.cancel(jobId),
  };
}
