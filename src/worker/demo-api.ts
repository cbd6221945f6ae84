import type { Engine } from '../engine/engine';
import { DemoWorkspace, type DemoDataset, type DemoPrompt, type DemoPromptRequest, type DemoResult, type DemoRunRequest, type DemoUpdate } from '../engine/session/demo';
import type { Session } from '../engine/session/session';

export type { DemoDataset, DemoPrompt, DemoPromptRequest, DemoResult, DemoRunRequest, DemoSymbols, DemoUpdate } from '../engine/session/demo';

/**
 * The Demo page's side of the worker: comlink's face of the engine's DemoWorkspace (engine/session/demo.ts),
 * which builds one live 8-shot prompt from a bundled pool, then streams a generation from it on the base
 * model or an adapter, token by token, with the sampling the page asks for.
 */
export interface DemoApi {
  /** The bundled classification pools the demo draws from. */
  demoDatasets(dataUrl: string): Promise<DemoDataset[]>;
  /** An 8-shot prompt (4 exemplars per class by default), exactly as an evaluation would build it. */
  buildDemoPrompt(request: DemoPromptRequest): Promise<DemoPrompt>;
  /** Tokens of the text the model would get, or null when no model (so no tokenizer) is loaded. */
  demoTokenCount(prompt: string, wrapper: 'paper' | 'none'): Promise<number | null>;
  /** Generates from a prompt, calling onUpdate with the text so far after each token; resolves when done or cancelled. */
  runDemo(request: DemoRunRequest, onUpdate?: (update: DemoUpdate) => void): Promise<DemoResult>;
  /** Stops a running generation at the next token; runDemo resolves with what was generated. */
  cancelDemo(jobId: string): Promise<void>;
}

export function demoApi(engine: Pick<Engine, 'platform'>, session: Session): DemoApi {
  const w = new DemoWorkspace(engine, session);
  return {
    demoDatasets: (dataUrl) => w.datasets(dataUrl),
    buildDemoPrompt: (request) => w.buildPrompt(request),
    demoTokenCount: async (prompt, wrapper) => w.tokenCount(prompt, wrapper),
    runDemo: (request, onUpdate) => w.run(request, onUpdate),
    cancelDemo: async (jobId) => w.cancel(jobId),
  };
}
