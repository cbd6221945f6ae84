import type { LoadedModel } from './session';
import { UserDataStore, type TrainingExample } from '../store/datasets';
import { DEMO_ROWS } from '../train/demo-set';
import { tokenizeTrainingRows, type TrainingExamples } from '../train/examples';
import type { TrainPlan } from '../../shared/train-plan';
import { TrainProblemError, type TrainEvent } from './training-events';

/** A run's examples and the name of the dataset they came from. */
export interface PreparedData extends TrainingExamples {
  name: string;
}

/**
 * The first step of a run's data path: the plan's rows, from the built-in demo set or a dataset saved on
 * the Data page, tokenised with the loaded model's tokenizer. Fails with what to change when nothing is
 * left to train on.
 */
export async function prepareTrainingData(
  indexedDB: IDBFactory,
  plan: TrainPlan,
  loaded: Pick<LoadedModel, 'tokenizer' | 'dims'>,
  emit: (e: TrainEvent) => void,
): Promise<PreparedData> {
  let rows: readonly TrainingExample[];
  let name: string;
  let answerLast = false;
  if (plan.data.kind === 'demo') {
    rows = DEMO_ROWS;
    name = 'Demo set (built in)';
  } else {
    let store: UserDataStore;
    try {
      store = await UserDataStore.open(indexedDB);
    } catch (err) {
      throw new TrainProblemError({ code: 'data', title: 'The saved datasets could not be opened', message: (err as Error).message });
    }
    try {
      const info = await store.info(plan.data.id);
      name = info.name;
      // A symbol-tuning prompt ends with its answer: cut at the maximum length, it would teach nothing.
      answerLast = info.kind === 'symbol-tuning';
      rows = await store.rows(plan.data.id);
    } catch (err) {
      throw new TrainProblemError({ code: 'data', title: 'The dataset could not be read', message: `${(err as Error).message} Choose another dataset on this page.` });
    } finally {
      store.close();
    }
  }
  const eos = plan.appendEos ? (loaded.tokenizer.eosTokenId ?? loaded.dims.eosTokenId ?? undefined) : undefined;
  const data = await tokenizeTrainingRows(rows, loaded.tokenizer, {
    maxLength: plan.maxLength,
    lossOn: plan.lossOn,
    eosTokenId: eos,
    answerLast,
    onProgress: (done, total) => emit({ kind: 'phase', phase: 'tokenizing', message: `Tokenising ${name}`, done, total }),
  });
  if (!data.examples.length) {
    const { skipped } = data;
    throw new TrainProblemError({
      code: 'data',
      title: 'Nothing to train on',
      message: skipped.answerCut
        ? `The maximum length of ${plan.maxLength} tokens would cut the answer off ${skipped.answerCut} of the ${rows.length} symbol-tuning prompts of ${name}, and the rest have nothing to learn from: raise the maximum length, or prepare the prompts again at this length on the Data page.`
        : `None of the ${rows.length} rows of ${name} has a token to learn from at ${plan.maxLength} tokens` +
          (plan.lossOn === 'response' ? ' with the loss on the response only (the prompts fill the length): raise the maximum length or train on every token.' : '.'),
    });
  }
  return { ...data, name };
}
