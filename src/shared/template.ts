/**
 * Instruction-tuning templates: text with one {question} and one {response} placeholder, checked as the
 * user types it (the Data page) and filled in by the engine (engine/data/template.ts tokenises the result).
 */

/**
 * The paper's training template. (Its code has a typo, '### nOutput:', from a lost backslash; this is the
 * template the paper describes and meant.)
 */
export const PAPER_TEMPLATE = '### Instruct: {question}\n ### Output: {response}';

export interface InstructionExample {
  question: string;
  response: string;
}

/** A template split around its placeholders: text = before + question + between + response + after. */
export interface InstructionTemplate {
  source: string;
  before: string;
  between: string;
  after: string;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

/**
 * Validates a template: exactly one {question}, then exactly one {response}, and no other {name}
 * placeholder (a typo such as {answer} would otherwise be trained on literally).
 */
export function parseTemplate(source: string): InstructionTemplate {
  const found = [...source.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)];
  const unknown = found.filter((m) => m[1] !== 'question' && m[1] !== 'response').map((m) => m[0]);
  if (unknown.length > 0) {
    throw new TemplateError(`Unknown placeholder ${unknown.join(', ')}: a template may only use {question} and {response}.`);
  }
  const q = found.filter((m) => m[1] === 'question');
  const r = found.filter((m) => m[1] === 'response');
  if (q.length !== 1) throw new TemplateError(`The template needs {question} exactly once; it has it ${q.length} times.`);
  if (r.length !== 1) throw new TemplateError(`The template needs {response} exactly once; it has it ${r.length} times.`);
  const qAt = q[0].index as number;
  const rAt = r[0].index as number;
  if (rAt < qAt) throw new TemplateError('{response} must come after {question}: the model reads the question first.');
  return {
    source,
    before: source.slice(0, qAt),
    between: source.slice(qAt + '{question}'.length, rAt),
    after: source.slice(rAt + '{response}'.length),
  };
}

export function renderTemplate(template: InstructionTemplate, example: InstructionExample): string {
  return template.before + example.question + template.between + example.response + template.after;
}

/** The text up to the response (what the model is given) and the rest (what it learns to write). */
export function splitPromptCompletion(template: InstructionTemplate, example: InstructionExample): { prompt: string; completion: string } {
  return { prompt: template.before + example.question + template.between, completion: example.response + template.after };
}
