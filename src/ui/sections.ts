import type { Component } from 'svelte';
import type { Section } from '../state/router.svelte';
import DataPage from './data/DataPage.svelte';
import ModelPage from './ModelPage.svelte';

/** The pages of the app, in navigation order. Each area adds its page here. */
export const PAGES: Array<{ section: Section; label: string; page: Component }> = [
  { section: 'model', label: 'Model', page: ModelPage },
  { section: 'data', label: 'Data', page: DataPage },
];
