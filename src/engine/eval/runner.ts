/**
 * The evaluation runner, in the order it works:
 *
 *   prepare.ts     items -> model inputs and tokens, checked against the model before any GPU work
 *   run.ts         prepared items -> generations in batches, verdicts, candidate scores; resumable
 *   candidates.ts  log-likelihoods of candidate labels sharing a prompt (rank classification)
 *   throughput.ts  workloads, measured rates and time estimates (the RTX 4090 estimate's method)
 *   user-datasets.ts  saved datasets as items
 *
 * This module gathers their public names for the worker and the tests.
 */
export * from './prepare';
export * from './run';
export * from './candidates';
export * from './throughput';
export * from './user-datasets';
