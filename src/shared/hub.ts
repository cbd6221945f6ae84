/**
 * Where the model comes from by default: the Hugging Face Hub, and Phi-2 at the commit the engine is
 * built and tested against. Plain values, for the Model page's form as for the engine's downloads.
 */

export const PHI2_REPO = 'microsoft/phi-2';
/**
 * Pinned: the commit of microsoft/phi-2 this engine is built and tested against (the transformers
 * "phi" layout, two F16 shards). A moving branch such as "main" could change under a resumed download.
 */
export const PHI2_REVISION = 'ef382358ec9e382308935a992d908de099b64c23';
export const HUB_BASE_URL = 'https://huggingface.co';

/** A repository at a revision on a Hub server (the Hub itself, a mirror, a local test server). */
export interface HubSettings {
  repo: string;
  revision: string;
  baseUrl: string;
}

export const DEFAULT_HUB_SETTINGS: HubSettings = { repo: PHI2_REPO, revision: PHI2_REVISION, baseUrl: HUB_BASE_URL };
