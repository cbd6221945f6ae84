import type { TrainingExample } from '../store/datasets';

// The Train page's built-in dataset (also what the cluster export writes for a run that uses it).

const PROMPT = (q: string) => `### Instruct: ${q}\n ### Output: `;

/**
 * A few instruction rows in the paper's template, for trying the page without preparing data first.
 * Far too small to teach Phi-2 anything useful; enough to see the loss fall.
 */
export const DEMO_ROWS: readonly TrainingExample[] = [
  ['What is 7 plus 5?', '7 plus 5 is 12.'],
  ['Name the largest planet in the solar system.', 'Jupiter is the largest planet in the solar system.'],
  ['Is the sentence "I loved every minute of it" positive or negative?', 'The sentence is positive.'],
  ['Translate "good morning" into French.', '"Good morning" in French is "bonjour".'],
  ['What is the opposite of "ancient"?', 'The opposite of "ancient" is "modern".'],
  ['How many days are there in a leap year?', 'A leap year has 366 days.'],
  ['Give the plural of "mouse".', 'The plural of "mouse" is "mice".'],
  ['What is 9 times 6?', '9 times 6 is 54.'],
  ['Which gas do plants take in for photosynthesis?', 'Plants take in carbon dioxide for photosynthesis.'],
  ['Is the sentence "The service was slow and rude" positive or negative?', 'The sentence is negative.'],
  ['What is the capital of Japan?', 'The capital of Japan is Tokyo.'],
  ['Sort these numbers from smallest to largest: 8, 3, 5.', 'From smallest to largest: 3, 5, 8.'],
  ['What does a thermometer measure?', 'A thermometer measures temperature.'],
  ['Complete the sequence: 2, 4, 6, 8, ...', 'The next number is 10.'],
  ['How many sides does a hexagon have?', 'A hexagon has six sides.'],
  ['What is water made of?', 'Water is made of hydrogen and oxygen.'],
].map(([q, a]) => ({ prompt: PROMPT(q), completion: a }));

export const DEMO_DESCRIPTION = `${DEMO_ROWS.length} short question-and-answer rows in the paper's template (built in)`;
