import { RE2JS } from 're2js';
import { LORA_TARGETS, type LoraTarget } from '../../shared/lora';
import { AdapterError } from './errors';

/**
 * Which modules of the base model an adapter_config.json selects, with PEFT's rules
 * (peft.tuners.tuners_utils.check_target_module_exists and _maybe_include_all_linear_layers):
 *
 *  - `target_modules` as a string is a regular expression that must match a module's whole name
 *    (Python's `re.fullmatch`), except the string "all-linear" (any case), which means every linear
 *    layer but the output head;
 *  - as a list, a name is selected when it equals an entry or ends with "." + an entry; only then do
 *    `layers_to_transform` (and `layers_pattern`) restrict the layers, by the number after the layers
 *    module's name;
 *  - `exclude_modules` removes names by the same two rules.
 *
 * The names are those of transformers' PhiForCausalLM (`model.named_modules()`), for the model's real
 * number of layers. An adapter is untrusted input (a share link may carry one), so a pattern is never
 * handed to a backtracking engine: it must be at most MAX_PATTERN_CHARS long and is run by RE2's
 * linear-time matcher (re2js) against this bounded list of names, so its cost is bounded by
 * names x name length x pattern length whatever it says. Python syntax that RE2 has no linear-time
 * form of (backreferences, lookarounds) is refused with a message that says so.
 */

/** Longest target_modules / exclude_modules pattern accepted (a pattern listing every layer is far shorter). */
export const MAX_PATTERN_CHARS = 2000;

/** One module of PhiForCausalLM: its full name, and for the six adaptable linear layers, which. */
export interface PhiModule {
  name: string;
  layer: number | null;
  /** The adaptable linear layer this is (null: not one). */
  target: LoraTarget | null;
  /** A linear layer (the six, and lm_head). */
  linear: boolean;
}

/** The modules of a PhiForCausalLM with `layers` decoder layers, as `model.named_modules()` lists them (the root left out). */
export function phiModules(layers: number): PhiModule[] {
  const other = (name: string, linear = false): PhiModule => ({ name, layer: null, target: null, linear });
  const out: PhiModule[] = [other('model'), other('model.embed_tokens'), other('model.layers')];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    const mod = (suffix: string, target: LoraTarget | null = null): PhiModule => ({ name: `${p}.${suffix}`, layer: i, target, linear: target !== null });
    out.push(
      { name: p, layer: i, target: null, linear: false },
      mod('self_attn'),
      mod('self_attn.q_proj', 'q_proj'),
      mod('self_attn.k_proj', 'k_proj'),
      mod('self_attn.v_proj', 'v_proj'),
      mod('self_attn.dense', 'dense'),
      mod('mlp'),
      mod('mlp.activation_fn'),
      mod('mlp.fc1', 'fc1'),
      mod('mlp.fc2', 'fc2'),
      mod('input_layernorm'),
      mod('resid_dropout'),
    );
  }
  out.push(other('model.final_layernorm'), other('model.embed_dropout'), other('model.rotary_emb'), other('lm_head', true));
  return out;
}

/** target_modules or exclude_modules as adapter_config.json gives them. */
export type ModuleSelector = { kind: 'pattern'; pattern: string } | { kind: 'all-linear' } | { kind: 'names'; names: string[] };

/** Reads target_modules / exclude_modules (`field` names it in messages); null when absent. */
export function readModuleSelector(value: unknown, field: string, source: string): ModuleSelector | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') {
    if (value.toLowerCase() === 'all-linear' && field === 'target_modules') return { kind: 'all-linear' };
    compilePattern(value, field, source); // refuse a bad pattern as soon as the config is read
    return { kind: 'pattern', pattern: value };
  }
  if (Array.isArray(value)) {
    if (value.length > 10_000) throw new AdapterError(`${source}: ${field} lists ${value.length} names; at most 10,000 are accepted.`);
    const bad = value.findIndex((v) => typeof v !== 'string' || v.length === 0 || v.length > MAX_PATTERN_CHARS);
    if (bad >= 0) throw new AdapterError(`${source}: ${field}[${bad}] is not a module name (a non-empty string of at most ${MAX_PATTERN_CHARS} characters).`);
    return { kind: 'names', names: value as string[] };
  }
  throw new AdapterError(`${source}: ${field} must be a list of module names or a regular expression (a string), not ${typeof value}.`);
}

/** Where Python's `re` and RE2 spell the same thing differently: \Z is RE2's \z; {,n} is {0,n}. */
function toRe2Syntax(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      out += !inClass && next === 'Z' ? '\\z' : c + next;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal in both dialects.
      if (pattern[i + 1] === '^') out += pattern[++i];
      if (pattern[i + 1] === ']') out += pattern[++i];
      continue;
    }
    if (c === '{' && pattern[i + 1] === ',') {
      const m = /^\{,(\d+)\}/.exec(pattern.slice(i));
      if (m) {
        out += `{0,${m[1]}}`;
        i += m[0].length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** A pattern compiled for full matches, or an AdapterError that says what is wrong with it. */
export function compilePattern(pattern: string, field: string, source: string): RE2JS {
  if (pattern.length > MAX_PATTERN_CHARS) {
    throw new AdapterError(`${source}: the ${field} pattern is ${pattern.length} characters long; at most ${MAX_PATTERN_CHARS} are accepted.`);
  }
  try {
    return RE2JS.compile(toRe2Syntax(pattern));
  } catch (err) {
    const detail = (err as Error).message.replace(/^error parsing regexp: /, '');
    const lookaround = /\(\?<?[=!]/.test(pattern);
    const backreference = /\\[1-9]|\(\?P=/.test(pattern);
    const why = lookaround
      ? 'it uses a lookahead or lookbehind, which has no linear-time form, so it is not run here'
      : backreference
        ? 'it uses a backreference, which has no linear-time form, so it is not run here'
        : `it is not a valid regular expression (${detail})`;
    throw new AdapterError(
      `${source}: ${field} is the pattern ${JSON.stringify(pattern.length > 120 ? `${pattern.slice(0, 120)}…` : pattern)}, but ${why}. ` +
        'List the module names instead (e.g. ["q_proj", "v_proj"]).',
    );
  }
}

/** PEFT's list rule: the name itself, or a name ending in "." + entry. */
function matchesName(names: readonly string[], key: string): boolean {
  return names.some((n) => key === n || key.endsWith(`.${n}`));
}

/** The layer number in a module name as PEFT finds it: after `layers_pattern`, or after any module name. */
function layerIndexOf(key: string, layersPattern: readonly string[]): number | null {
  if (!layersPattern.length) {
    const m = /^.*\.[^.]*\.(\d+)\./.exec(key);
    return m ? Number(m[1]) : null;
  }
  for (const p of layersPattern) {
    const at = key.lastIndexOf(`.${p}.`);
    if (at < 0) continue;
    const m = /^(\d+)\./.exec(key.slice(at + p.length + 2));
    if (m) return Number(m[1]);
  }
  return null;
}

export interface SelectionRules {
  target: ModuleSelector;
  exclude: ModuleSelector | null;
  /** layers_to_transform (a list; an int is a one-element list), applied to list selectors only, as PEFT does. */
  layersToTransform: number[] | null;
  layersPattern: string[];
}

/** The modules of a Phi with `layers` layers that PEFT would adapt under these rules. */
export function selectModules(rules: SelectionRules, layers: number, source: string): PhiModule[] {
  const modules = phiModules(layers);
  const exclude = rules.exclude;
  const excluded =
    exclude === null
      ? () => false
      : exclude.kind === 'pattern'
        ? ((re) => (m: PhiModule) => re.matches(m.name))(compilePattern(exclude.pattern, 'exclude_modules', source))
        : exclude.kind === 'names'
          ? (m: PhiModule) => matchesName(exclude.names, m.name)
          : () => false;
  const target = rules.target;
  let selected: (m: PhiModule) => boolean;
  if (target.kind === 'all-linear') {
    // Every linear layer except the output embedding (lm_head), as _maybe_include_all_linear_layers does.
    selected = (m) => m.target !== null;
  } else if (target.kind === 'pattern') {
    const re = compilePattern(target.pattern, 'target_modules', source);
    selected = (m) => re.matches(m.name);
  } else {
    const layerSet = rules.layersToTransform && rules.layersToTransform.length ? new Set(rules.layersToTransform) : null;
    selected = (m) => {
      if (!matchesName(target.names, m.name)) return false;
      if (!layerSet) return true;
      const index = layerIndexOf(m.name, rules.layersPattern);
      return index !== null && layerSet.has(index);
    };
  }
  return modules.filter((m) => !excluded(m) && selected(m));
}

/**
 * The selection as this engine applies it: a set of target layers on a set of decoder layers. What PEFT
 * would select but this engine cannot apply (lm_head, embeddings, a LayerNorm, a selection that is not
 * the same targets on every chosen layer) is refused, naming it.
 */
export function resolveSelection(rules: SelectionRules, layers: number, source: string): { targets: LoraTarget[]; layers: number[] | 'all' } {
  const chosen = selectModules(rules, layers, source);
  const what = rules.target.kind === 'pattern' ? `the target_modules pattern ${JSON.stringify(rules.target.pattern)}` : 'target_modules';
  const foreign = chosen.filter((m) => m.target === null);
  if (foreign.length) {
    const names = foreign.slice(0, 3).map((m) => m.name).join(', ') + (foreign.length > 3 ? ` and ${foreign.length - 3} more` : '');
    throw new AdapterError(
      `${source}: ${what} selects ${names}, which ${foreign.length === 1 ? 'is not one' : 'are not'} of the linear layers LoRA can adapt here ` +
        `(${LORA_TARGETS.join(', ')} of each decoder layer).`,
    );
  }
  if (!chosen.length) {
    const listed = rules.target.kind === 'names' ? ` ${JSON.stringify(rules.target.names.slice(0, 8))}` : '';
    throw new AdapterError(
      `${source}: ${what}${listed} selects none of the layers of this Phi model (${LORA_TARGETS.join(', ')} in each of its ${layers} layers). ` +
        'This adapter was made for another model architecture.',
    );
  }
  const targets = LORA_TARGETS.filter((t) => chosen.some((m) => m.target === t));
  const layerList = [...new Set(chosen.map((m) => m.layer!))].sort((a, b) => a - b);
  if (chosen.length !== targets.length * layerList.length) {
    const missing: string[] = [];
    const have = new Set(chosen.map((m) => m.name));
    for (const m of phiModules(layers)) {
      if (m.target && targets.includes(m.target) && layerList.includes(m.layer!) && !have.has(m.name)) missing.push(m.name);
    }
    throw new AdapterError(
      `${source}: ${what} selects different layers in different blocks (for instance not ${missing[0]}); ` +
        'this engine applies one set of target layers to every adapted block.',
    );
  }
  return { targets, layers: layerList.length === layers ? 'all' : layerList };
}
