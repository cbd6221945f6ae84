import { parseSafetensors } from '../weights/safetensors';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from './files';
import { writeGguf, type GgmlFloatType, type GgufTensor, type GgufValue } from './gguf-file';
import { LORA_TARGETS, peftModulePath, type LoraSettings, type LoraTarget } from '../../shared/lora';
import { readAdapterConfigJson } from './config-json';
import { AdapterError, parseAdapterConfig } from './peft';

/**
 * A PEFT LoRA adapter for a Phi model as a GGUF LoRA adapter, the file llama.cpp's own
 * convert_lora_to_gguf.py writes for it, so that `llama-cli -m phi-2.gguf --lora adapter.gguf` and
 * Ollama's `ADAPTER` load it. Where each rule comes from (llama.cpp's repository):
 *
 * - Metadata, in the converter's order. `general.architecture` "phi2": GGUFWriter adds it first, and
 *   PhiForCausalLM maps to MODEL_ARCH.PHI2 (Phi2Model in convert_hf_to_gguf.py; its name in
 *   gguf-py/gguf/constants.py MODEL_ARCH_NAMES). Then LoraModel.set_type: `general.type` "adapter"
 *   (GGUFType.ADAPTER) and `adapter.type` "lora"; ModelBase.prepare_metadata's `general.name`; then
 *   LoraModel.set_gguf_parameters: `adapter.lora.alpha` as FLOAT32; last `general.quantization_version`
 *   UINT32 2 (GGML_QUANT_VERSION). The converter replaces Phi2Model.set_gguf_parameters, so none of the
 *   model's hyperparameters are written.
 * - The loader (src/llama-adapter.cpp, llama_adapter_lora_init_impl) requires general.type "adapter",
 *   general.architecture equal to the model's, adapter.type "lora"; reads adapter.lora.alpha (0 when
 *   absent); pairs tensors by the suffixes ".lora_a" and ".lora_b" on the base tensor's name.
 * - Tensor names: the PEFT name minus "base_model.model." and ".lora_A/.lora_B" (get_base_tensor_name),
 *   mapped by gguf-py/gguf/tensor_mapping.py to the GGUF names of constants.py TENSOR_NAMES:
 *   self_attn.q_proj/k_proj/v_proj -> blk.N.attn_q/attn_k/attn_v, self_attn.dense -> blk.N.attn_output
 *   ("# phi2"), mlp.fc1 -> blk.N.ffn_up, mlp.fc2 -> blk.N.ffn_down ("# phi2"); then ".weight.lora_a" and
 *   ".weight.lora_b" appended (LoraModel.modify_tensors).
 * - Shapes: lora_A [r, in] and lora_B [out, r] are written as they are (numpy order), so ggml's dims
 *   are a: [in, r], b: [r, out]. The loader checks model.ne[0] == a.ne[0], model.ne[1] == b.ne[1] and
 *   a.ne[1] == b.ne[0] ("lora_a tensor is not transposed" otherwise).
 * - Scale: llama_adapter_lora_weight::get_scale (src/llama-adapter.h) is alpha / rank with rank =
 *   b.ne[0] = r. rsLoRA scales by alpha / sqrt(r) (PEFT's use_rslora), which the converter ignores; we
 *   write alpha * sqrt(r) instead so llama.cpp's alpha / r is exactly rsLoRA's scale.
 * - Types: with --outtype f32 every tensor is F32, with f16 every 2-D tensor whose name ends in
 *   ".weight", ".lora_a" or ".lora_b" is F16 (ModelBase.prepare_tensors); F16 rounds to nearest even as
 *   numpy's astype(float16) does.
 * - Order: the converter walks the adapter as safetensors' load_file returns it, by name (byte order),
 *   yielding lora_a then lora_b of each module (LoraModel.get_tensors); we write that same order.
 */

export type GgufAdapterType = 'f32' | 'f16';

/** GGUF's name of each Phi target's weight (tensor_mapping.py, constants.py TENSOR_NAMES). */
export const GGUF_TARGET_NAMES: Record<LoraTarget, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  dense: 'attn_output',
  fc1: 'ffn_up',
  fc2: 'ffn_down',
};

/** llama.cpp's architecture name for PhiForCausalLM (Phi-1, Phi-1.5 and Phi-2 alike). */
export const GGUF_PHI_ARCHITECTURE = 'phi2';

export function ggufTensorBase(layer: number, target: LoraTarget): string {
  return `blk.${layer}.${GGUF_TARGET_NAMES[target]}.weight`;
}

/** The adapter.lora.alpha that makes llama.cpp's scale (alpha / r) equal this adapter's scaling. */
export function ggufLoraAlpha(s: Pick<LoraSettings, 'r' | 'alpha' | 'useRslora'>): number {
  return s.useRslora ? s.alpha * Math.sqrt(s.r) : s.alpha;
}

export interface GgufAdapterOptions {
  type?: GgufAdapterType;
  /** general.name; the converter takes it from the adapter's model card or folder. */
  name?: string;
}

export interface GgufAdapterSummary {
  settings: LoraSettings;
  baseModel: string | null;
  /** GGUF tensor names, in file order. */
  tensors: string[];
  alpha: number;
}

interface ModuleTensors {
  layer: number;
  target: LoraTarget;
  a: string;
  b: string;
}

/** Every adapted module's two PEFT tensor names, checked against the config: all present, nothing else. */
function modulesOf(settings: LoraSettings, names: ReadonlySet<string>): ModuleTensors[] {
  const layerOf = /^base_model\.model\.model\.layers\.(\d+)\./;
  const present = [...names].map((n) => layerOf.exec(n)).filter((m) => m !== null);
  const layers = settings.layers === 'all' ? [...new Set(present.map((m) => Number(m[1])))].sort((x, y) => x - y) : [...settings.layers].sort((x, y) => x - y);
  const modules: ModuleTensors[] = [];
  const used = new Set<string>();
  const find = (base: string, which: 'A' | 'B'): string => {
    const name = [`${base}.lora_${which}.weight`, `${base}.lora_${which}.default.weight`].find((n) => names.has(n));
    if (!name) throw new AdapterError(`${ADAPTER_WEIGHTS} lacks ${base}.lora_${which}.weight, which ${ADAPTER_CONFIG} targets.`);
    used.add(name);
    return name;
  };
  for (const layer of layers) {
    for (const target of LORA_TARGETS.filter((t) => settings.targets.includes(t))) {
      const base = peftModulePath(layer, target);
      modules.push({ layer, target, a: find(base, 'A'), b: find(base, 'B') });
    }
  }
  const stray = [...names].filter((n) => !used.has(n));
  if (stray.length) {
    throw new AdapterError(
      `${ADAPTER_WEIGHTS} has tensors that ${ADAPTER_CONFIG} does not describe as LoRA weights of Phi's linear layers: ` +
        `${stray.slice(0, 3).join(', ')}${stray.length > 3 ? ` and ${stray.length - 3} more` : ''}. llama.cpp adapters hold lora_a/lora_b pairs only.`,
    );
  }
  if (!modules.length) throw new AdapterError(`${ADAPTER_WEIGHTS} holds no LoRA weights.`);
  return modules;
}

/** The adapter's two files as one GGUF LoRA adapter file, plus what went into it. */
export function encodeGgufAdapter(files: AdapterFiles, options: GgufAdapterOptions = {}): { bytes: Uint8Array; summary: GgufAdapterSummary } {
  const type: GgmlFloatType = (options.type ?? 'f32') === 'f16' ? 'F16' : 'F32';
  const { baseModel, ...settings } = parseAdapterConfig(readAdapterConfigJson(files[ADAPTER_CONFIG], ADAPTER_CONFIG));
  const file = parseSafetensors(files[ADAPTER_WEIGHTS], ADAPTER_WEIGHTS);
  const infos = new Map(file.header.tensors.map((t) => [t.name, t]));
  const modules = modulesOf(settings, new Set(infos.keys()));

  const tensors: Array<GgufTensor & { peft: string }> = [];
  for (const m of modules) {
    const a = infos.get(m.a)!;
    const b = infos.get(m.b)!;
    if (a.shape.length !== 2 || a.shape[0] !== settings.r) throw new AdapterError(`${m.a} has shape [${a.shape}]; lora_A must be [r = ${settings.r}, in_features].`);
    if (b.shape.length !== 2 || b.shape[1] !== settings.r) throw new AdapterError(`${m.b} has shape [${b.shape}]; lora_B must be [out_features, r = ${settings.r}].`);
    const base = ggufTensorBase(m.layer, m.target);
    tensors.push({ peft: m.a, name: `${base}.lora_a`, shape: a.shape, type, data: file.float32(m.a) });
    tensors.push({ peft: m.b, name: `${base}.lora_b`, shape: b.shape, type, data: file.float32(m.b) });
  }
  // The converter's order: PEFT names sorted bytewise (lora_A sorts before lora_B of the same module).
  tensors.sort((x, y) => (x.peft < y.peft ? -1 : x.peft > y.peft ? 1 : 0));

  const alpha = ggufLoraAlpha(settings);
  const name = options.name?.trim() || (baseModel ? `${baseModel.split('/').pop()}-lora` : 'lora-adapter');
  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: GGUF_PHI_ARCHITECTURE }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['general.name', { type: 'string', value: name }],
    ['adapter.lora.alpha', { type: 'float32', value: alpha }],
    ['general.quantization_version', { type: 'uint32', value: 2 }],
  ];
  const bytes = writeGguf(metadata, tensors);
  return { bytes, summary: { settings, baseModel, tensors: tensors.map((t) => t.name), alpha } };
}

/** The file name an exported adapter gets: its id and the tensor type. */
export function ggufFileName(id: string, type: GgufAdapterType): string {
  return `${id}-${type.toUpperCase()}-LoRA.gguf`;
}
