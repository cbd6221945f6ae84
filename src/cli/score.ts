import { scoreVerdicts, type AnswerContext } from '../engine/eval/scoring';

/**
 * `score --in FILE.jsonl`: scores generations with the evaluation's two automatic verdicts
 * (src/engine/eval/scoring.ts) and prints every input row back as JSONL with booleans `correct` (the
 * answer verdict, the default) and `strict` added. Rows need string `target` and `generation` fields;
 * an optional string `prompt` (as the model saw it inside the `Instruct:` wrapper) and string array
 * `labels` let the answer verdict recognise a restated query and the candidate labels. Other fields pass
 * through. A summary goes to stderr when the host gives one, so stdout stays pure JSONL.
 */

export interface ScoreIo {
  readFile(path: string): Promise<string> | string;
  stdout(text: string): void;
  stderr?(text: string): void;
}

export const SCORE_USAGE =
  'usage: score --in FILE.jsonl   (rows with "target" and "generation", optionally "prompt" and "labels"; prints each row with "correct" (answer verdict) and "strict" added)';

export class CliUsageError extends Error {
  override name = 'CliUsageError';
}

export async function scoreCommand(args: string[], io: ScoreIo): Promise<{ rows: number; correct: number; strict: number }> {
  let inPath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--in') {
      inPath = args[++i];
      if (inPath === undefined || inPath.startsWith('--')) throw new CliUsageError(`--in needs a file path\n${SCORE_USAGE}`);
    } else if (a.startsWith('--in=')) {
      inPath = a.slice('--in='.length);
    } else if (a === '--help' || a === '-h') {
      io.stdout(`${SCORE_USAGE}\n`);
      return { rows: 0, correct: 0, strict: 0 };
    } else {
      throw new CliUsageError(`unknown argument "${a}"\n${SCORE_USAGE}`);
    }
  }
  if (!inPath) throw new CliUsageError(`missing --in FILE.jsonl\n${SCORE_USAGE}`);
  const text = await io.readFile(inPath);

  // Every row is checked before anything is printed, so a bad file gives all its errors and no partial output.
  const rows: Array<Record<string, unknown>> = [];
  const errors: string[] = [];
  text.split('\n').forEach((line, k) => {
    if (line.trim() === '') return;
    const where = `${inPath} line ${k + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      errors.push(`${where}: malformed JSON (${(err as Error).message})`);
      return;
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      errors.push(`${where}: expected a JSON object`);
      return;
    }
    const r = row as Record<string, unknown>;
    for (const field of ['target', 'generation']) {
      if (typeof r[field] !== 'string') errors.push(`${where}: "${field}" must be a string, found ${r[field] === undefined ? 'nothing' : JSON.stringify(r[field])}`);
    }
    if (r.prompt !== undefined && typeof r.prompt !== 'string') errors.push(`${where}: "prompt" must be a string when given, found ${JSON.stringify(r.prompt)}`);
    if (r.labels !== undefined && !(Array.isArray(r.labels) && r.labels.every((l) => typeof l === 'string'))) {
      errors.push(`${where}: "labels" must be an array of strings when given, found ${JSON.stringify(r.labels)}`);
    }
    rows.push(r);
  });
  if (errors.length > 0) throw new Error(`${errors.length} bad row${errors.length === 1 ? '' : 's'}:\n${errors.join('\n')}`);

  let correct = 0;
  let strict = 0;
  let out = '';
  for (const r of rows) {
    const context: AnswerContext = {};
    if (typeof r.prompt === 'string') context.prompt = r.prompt;
    if (Array.isArray(r.labels)) context.labels = r.labels as string[];
    const verdicts = scoreVerdicts(r.generation as string, r.target as string, context);
    if (verdicts.answer.correct) correct++;
    if (verdicts.strict.correct) strict++;
    out += `${JSON.stringify({ ...r, correct: verdicts.answer.correct, strict: verdicts.strict.correct })}\n`;
  }
  io.stdout(out);
  const pct = (n: number) => (rows.length ? ((100 * n) / rows.length).toFixed(1) : '0.0');
  io.stderr?.(`scored ${rows.length} rows: ${correct} correct by the answer verdict (${pct(correct)}%), ${strict} by the strict one (${pct(strict)}%)\n`);
  return { rows: rows.length, correct, strict };
}
