import { PHI1_5_CONFIG_JSON, PHI1_CONFIG_JSON, PHI2_CONFIG_JSON } from './config';
import { PHI2_REPO, PHI2_REVISION } from './hub';

/**
 * The Phi models the Model page offers: the same architecture (PhiForCausalLM, transformers' "phi"
 * layout) at two sizes. Their config.json is known here, so their sizes and GPU memory are shown
 * before anything is downloaded.
 */

export type PhiPresetId = 'phi-2' | 'phi-1_5' | 'phi-1';

export interface PhiPreset {
  id: PhiPresetId;
  label: string;
  repo: string;
  /**
   * Phi-2 is pinned to the commit the engine is tested against. Phi-1.5 and Phi-1 follow main (their
   * transformers-layout files since January 2024); a file that changes under a resumed download is
   * fetched again from the start (its ETag differs).
   */
  revision: string;
  /** Parameters, as the model cards state them. */
  parameters: string;
  note: string;
  config: Record<string, unknown>;
}

export const PHI_PRESETS: readonly PhiPreset[] = [
  {
    id: 'phi-2',
    label: 'Phi-2',
    repo: PHI2_REPO,
    revision: PHI2_REVISION,
    parameters: '2.7B',
    note: "The paper's model: 32 layers of 2560, heads of 80.",
    config: PHI2_CONFIG_JSON,
  },
  {
    id: 'phi-1_5',
    label: 'Phi-1.5',
    repo: 'microsoft/phi-1_5',
    revision: 'main',
    parameters: '1.3B',
    note: 'Common-sense reasoning and text: 24 layers of 2048, heads of 64; F16 weights.',
    config: PHI1_5_CONFIG_JSON,
  },
  {
    id: 'phi-1',
    label: 'Phi-1',
    repo: 'microsoft/phi-1',
    revision: 'main',
    parameters: '1.3B',
    note: 'Python code: the shape of Phi-1.5; published in F32 (twice the download), stored here as int8 or F16.',
    config: PHI1_CONFIG_JSON,
  },
];

/** The preset a repository and revision are, or null. */
export function presetOf(repo: string, revision: string): PhiPreset | null {
  return PHI_PRESETS.find((p) => p.repo === repo.trim() && p.revision === revision.trim()) ?? null;
}
