import { ADAPTER_CONFIG } from '../adapters/files';
import { encodeGgufAdapter, ggufFileName, type GgufAdapterType } from '../adapters/gguf';
import { modelCard, type EvaluationSummary } from '../adapters/model-card';
import { AdapterError } from '../adapters/peft';
import { HUB_BASE_URL, PHI2_REPO, PHI2_REVISION } from '../../shared/hub';
import { checkRepoName, configForHub, publishAdapter, type PublishProgress, type PublishResult } from '../adapters/publish';
import { AdapterStore, type AdapterInfo } from '../adapters/store';
import type { Engine } from '../engine';
import { ResultsStore } from '../eval/results-store';
import type { Session } from './session';
import { clusterRunZip, type ClusterRun } from '../export/cluster-run';
import { parsePhiConfig } from '../weights/config';
import { PHI2_CONFIG_JSON } from '../../shared/presets';
import type { ExportedFile } from './adapters';
import { UserDataStore, type TrainingExample } from '../store/datasets';
import { DEMO_ROWS } from '../train/demo-set';
import { trainConfigOf } from '../train/plan';
import { planProblems, type TrainPlan } from '../../shared/train-plan';

/**
 * Getting work out of the browser, where others use it: a GGUF LoRA adapter for llama.cpp and Ollama,
 * a model repository on the Hugging Face Hub, and a training run as a folder that runs on a cluster.
 * Errors are thrown with messages that say what to do.
 */

export interface PublishRequest {
  token: string;
  /** "name" (under the token's user) or "owner/name". */
  repo: string;
  private: boolean;
  /** The Hub id of the base model, for the card and adapter_config.json. */
  baseModel: string;
  hubBaseUrl?: string;
}

/** The base model as the card and adapter_config.json name it: a Hub id, owner/name. */
function baseModelId(text: string): string {
  const id = text.trim();
  const { owner } = checkRepoName(id);
  if (!owner) throw new AdapterError(`The base model must be a Hub model id, owner/name (such as microsoft/phi-2), not "${id}".`);
  return id;
}

export class Exports {
  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  private async adapters(): Promise<AdapterStore> {
    return AdapterStore.over(await this.session.store());
  }

  async gguf(id: string, type: GgufAdapterType): Promise<ExportedFile & { tensors: number; alpha: number }> {
    const store = await this.adapters();
    const info = await store.get(id);
    const { bytes, summary } = encodeGgufAdapter(await store.files(id), { type, name: info.name });
    return { fileName: ggufFileName(info.id, type), blob: new Blob([bytes as BlobPart], { type: 'application/octet-stream' }), tensors: summary.tensors.length, alpha: summary.alpha };
  }

  /** Complete evaluation runs of this adapter, as the card reports them. */
  private async evaluations(info: AdapterInfo): Promise<EvaluationSummary[]> {
    const runs = await new ResultsStore(await this.session.store()).list().catch(() => []);
    return runs
      .filter((r) => r.status === 'complete' && (r.adapter === info.id || r.adapter === info.name))
      .map((r) => ({
        suite: r.suite,
        startedAt: r.startedAt,
        itemCount: r.itemCount,
        correct: r.answer,
        formats: r.cells.filter((c) => c.dataset === 'all').map((c) => ({ suite: c.suite, format: c.format, correct: c.answer, total: c.total })),
      }));
  }

  async card(id: string, request: Pick<PublishRequest, 'repo' | 'baseModel'>): Promise<string> {
    const info = await (await this.adapters()).get(id);
    const origin = info.origin;
    return modelCard({
      repo: request.repo,
      name: info.name,
      baseModel: baseModelId(request.baseModel),
      settings: info.settings,
      training: origin.kind === 'training' && origin.training ? { ...origin.training, dataset: origin.dataset } : null,
      evaluations: await this.evaluations(info),
    });
  }

  private publishing: AbortController | null = null;

  async publish(id: string, request: PublishRequest, onProgress?: (p: PublishProgress) => void): Promise<PublishResult> {
    if (this.publishing) throw new AdapterError('Another adapter is being published; wait for it or cancel it.');
    const controller = new AbortController();
    this.publishing = controller;
    try {
      const store = await this.adapters();
      const baseModel = baseModelId(request.baseModel);
      const files = await store.files(id);
      const card = await this.card(id, { repo: request.repo, baseModel });
      return await publishAdapter({ ...files, [ADAPTER_CONFIG]: configForHub(files[ADAPTER_CONFIG], baseModel) }, card, {
        hubUrl: request.hubBaseUrl ?? HUB_BASE_URL,
        token: request.token,
        repo: request.repo,
        private: request.private,
        signal: controller.signal,
        onProgress,
      });
    } finally {
      if (this.publishing === controller) this.publishing = null;
    }
  }

  cancelPublish(): void {
    this.publishing?.abort();
  }

  /** The plan's rows as the Train page reads them, and whether their answers come last (symbol tuning). */
  private async rowsOf(plan: TrainPlan): Promise<{ rows: readonly TrainingExample[]; answerLast: boolean }> {
    if (plan.data.kind === 'demo') return { rows: DEMO_ROWS, answerLast: false };
    const store = await UserDataStore.open(this.engine.platform.indexedDB);
    try {
      const info = await store.info(plan.data.id);
      return { rows: await store.rows(plan.data.id), answerLast: info.kind === 'symbol-tuning' };
    } finally {
      store.close();
    }
  }

  /** The base model the run trains: the loaded one (its Hub repository and revision), else Phi-2 as pinned here. */
  private async base(): Promise<{ repo: string; revision: string | null; residDropout: number; maxPositions: number; layers: number; hidden: number; intermediate: number; heads: number; vocab: number }> {
    const loaded = this.session.loaded;
    if (!loaded) {
      const c = parsePhiConfig(PHI2_CONFIG_JSON);
      return { repo: PHI2_REPO, revision: PHI2_REVISION, residDropout: c.residPdrop, maxPositions: c.maxPositions, layers: c.numLayers, hidden: c.hiddenSize, intermediate: c.intermediateSize, heads: c.numHeads, vocab: c.vocabSize };
    }
    const d = loaded.dims;
    const dims = { residDropout: d.residDropout, maxPositions: d.maxPositions, layers: d.layers, hidden: d.hidden, intermediate: d.intermediate, heads: d.heads, vocab: d.vocab };
    const manifest = await (await this.session.store()).getModel(loaded.id).catch(() => undefined);
    if (manifest?.source.kind === 'hub') return { repo: manifest.source.repo, revision: manifest.source.revision, ...dims };
    // Local files: the Hub id their config.json names, when it names one.
    const named = typeof manifest?.config._name_or_path === 'string' ? manifest.config._name_or_path : '';
    return { repo: /^[\w.-]+\/[\w.-]+$/.test(named) ? named : PHI2_REPO, revision: null, ...dims };
  }

  async clusterRun(plan: TrainPlan): Promise<ExportedFile & { rows: number; baseModel: string }> {
    const base = await this.base();
    const model = { shape: { vocab: base.vocab, hidden: base.hidden, intermediate: base.intermediate, layers: base.layers, heads: base.heads }, maxPositions: base.maxPositions };
    const problems = planProblems(plan, model);
    if (problems.length) throw new Error(`Some settings need changing first: ${problems.join(' ')}`);
    const { rows, answerLast } = await this.rowsOf(plan);
    if (!rows.length) throw new Error('The chosen dataset has no rows: choose another on this page.');
    const initAdapter = plan.baseAdapterId ? await (await this.adapters()).files(plan.baseAdapterId) : null;
    const run: ClusterRun = {
      name: plan.name,
      baseModel: base.repo,
      baseRevision: base.revision,
      config: trainConfigOf(plan, rows.length, base.residDropout),
      length: plan.length,
      lossOn: plan.lossOn,
      appendEos: plan.appendEos,
      dropRowsCutByMaxLength: answerLast,
      rows,
      initAdapter,
    };
    const folder = `${plan.name.trim().replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'run'}-cluster`;
    const zip = clusterRunZip(run, folder);
    return { fileName: `${folder}.zip`, blob: new Blob([zip as BlobPart], { type: 'application/zip' }), rows: rows.length, baseModel: base.repo };
  }
}
