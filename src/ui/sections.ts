import type { Component } from 'svelte';
import type { Section } from '../state/router.svelte';
import DataPage from './data/DataPage.svelte';
import DemoPage from './demo/DemoPage.svelte';
import EvaluatePage from './evaluate/EvaluatePage.svelte';
import ModelPage from './ModelPage.svelte';
import TrainPage from './train/TrainPage.svelte';
import AdaptersPage from './adapters/AdaptersPage.svelte';

/** The pages of the app, in navigation order. Each area adds its page here. */
export const PAGES: Array<{ section: Section; label: string; page: Component }> = [
  { section: 'model', label: 'Model', page: ModelPage },
  { section: 'data', label: 'Data', page: DataPage },
  { section: 'train', label: 'Train', page: TrainPage },
  { section: 'evaluate', label: 'Evaluate', page: EvaluatePage },
  { section: 'demo', label: 'Demo', page: DemoPage },
  { section: 'adapters', label: 'Adapters', page: AdaptersPage },
];
