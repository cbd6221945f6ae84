/**
 * Compiled compute pipelines, cached by shader name and override constants: one pipeline serves every
 * shape because shapes travel as uniforms. Shader modules are cached separately by name.
 */

export type OverrideConstants = Record<string, number>;

export interface ShaderSource {
  /** A stable name, the file's: 'layernorm.fwd'. */
  name: string;
  code: string;
  entryPoint?: string;
}

export class PipelineCache {
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.pipelines.size;
  }

  get(shader: ShaderSource, constants: OverrideConstants = {}): GPUComputePipeline {
    const entryPoint = shader.entryPoint ?? 'main';
    const key = `${shader.name}:${entryPoint}:${JSON.stringify(constants, Object.keys(constants).sort())}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      pipeline = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module: this.module(shader), entryPoint, constants },
      });
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  private module(shader: ShaderSource): GPUShaderModule {
    let mod = this.modules.get(shader.name);
    if (!mod) {
      mod = this.device.createShaderModule({ label: shader.name, code: shader.code });
      this.modules.set(shader.name, mod);
    }
    return mod;
  }
}
