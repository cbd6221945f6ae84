/** The paper's two adapters for Phi-2, one click each on the Adapters and Evaluate pages. */
export const PAPER_ADAPTERS = [
  {
    repo: 'ChunB1/phi-2_OpenOrca_cot_only',
    label: 'Instruction-tuned (paper)',
    description: 'Phi-2 + LoRA instruction-tuned on OpenOrca chain-of-thought rows.',
  },
  {
    repo: 'ChunB1/phi-2_OpenOrca_cot_only_symbol',
    label: 'Instruction- then symbol-tuned (paper)',
    description: 'The instruction adapter, symbol-tuned further on remapped classification prompts.',
  },
] as const;
