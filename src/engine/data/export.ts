import { type InstructionExample, PAPER_TEMPLATE, parseTemplate, renderTemplate, splitPromptCompletion } from '../../shared/template';

/**
 * A prepared training set as JSONL for Hugging Face TRL (SFTTrainer) and PEFT scripts:
 *
 *   'text'               {"text": "<template applied>"} per line: TRL's "language modeling" dataset type;
 *                        the loss covers every token, as the paper trained.
 *   'prompt-completion'  {"prompt": "...### Output: ", "completion": "<response>"} per line: TRL's
 *                        "prompt-completion" type; SFTTrainer then computes the loss on the completion only
 *                        (its completion_only_loss default), the same as lossOn 'response' here.
 *
 * prompt + completion is exactly the 'text' form, so both train on the same characters.
 */
export type TrlJsonlKind = 'text' | 'prompt-completion';

export function toTrlJsonl(examples: readonly InstructionExample[], kind: TrlJsonlKind, templateSource: string = PAPER_TEMPLATE): string {
  const template = parseTemplate(templateSource);
  let out = '';
  for (const example of examples) {
    const record = kind === 'text' ? { text: renderTemplate(template, example) } : splitPromptCompletion(template, example);
    // JSON.stringify escapes newlines and quotes; U+2028/U+2029 are escaped too because Python's
    // str.splitlines() would break a line there.
    out += `${JSON.stringify(record).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')}\n`;
  }
  return out;
}
