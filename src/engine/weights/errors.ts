/**
 * Errors of the weights pipeline. Each carries a machine-readable `code` (what the UI switches on),
 * and, where known, the file and tensor it concerns, so that a message names exactly what was wrong.
 */

export type SafetensorsErrorCode =
  /** The stream ended inside the 8-byte length, the header or the tensor data. */
  | 'truncated'
  /** The header length is zero, absurd (over the cap) or runs past the end of the file. */
  | 'header-length'
  /** The header is not UTF-8 JSON, or not a JSON object. */
  | 'header-json'
  /** An entry lacks dtype/shape/data_offsets or has values of the wrong kind. */
  | 'header-entry'
  /** __metadata__ is not an object of strings. */
  | 'metadata'
  | 'unknown-dtype'
  /** shape × dtype size differs from the data_offsets span. */
  | 'size-mismatch'
  /** data_offsets point outside the data area or end before they start. */
  | 'offsets-out-of-range'
  /** Two tensors share bytes. */
  | 'offsets-overlap'
  /** Bytes between tensors (or after the last one) belong to no tensor. */
  | 'offsets-gap'
  /** The file is longer than header + data. */
  | 'trailing-data'
  /** model.safetensors.index.json is malformed. */
  | 'index-json'
  /** A tensor of the index is absent from its shard, sits in another shard, or a shard holds an unlisted tensor. */
  | 'index-mismatch'
  /** A tensor asked for by name is not in the file. */
  | 'tensor-absent';

export type CheckpointErrorCode =
  /** config.json is not for PhiForCausalLM (model_type "phi"), e.g. the old MixFormer layout. */
  | 'unsupported-model'
  /** config.json is for Phi but a value is missing, malformed or outside what the engine supports. */
  | 'config-invalid'
  /** A tensor the configuration requires is missing. */
  | 'tensor-missing'
  /** The checkpoint holds a tensor the Phi layout does not know. */
  | 'tensor-unexpected'
  | 'tensor-shape'
  /** A parameter is stored in a dtype the engine cannot convert (integers, booleans, fp8). */
  | 'tensor-dtype'
  /** A weight holds NaN or an infinity, or does not fit in F16 when kept as F16. */
  | 'tensor-values'
  /** Files given for a local import do not make a checkpoint (no config.json, no weights...). */
  | 'files-incomplete';

export type HubErrorCode =
  /** 404: the repository, revision or file does not exist. */
  | 'not-found'
  /** 401/403: the repository is gated or private; this app downloads anonymously. */
  | 'unauthorized'
  /** 429 that outlasted the retries. */
  | 'rate-limited'
  /** Another HTTP status that is not worth retrying, or 5xx that outlasted the retries. */
  | 'http'
  /** The connection failed or dropped, and retries did not get past it. */
  | 'network'
  /** No answer at all: offline, a wrong address, a server that is down or refuses this page (CORS). */
  | 'unreachable'
  /** The URL redirects in a loop, endlessly or somewhere fetch cannot follow: retrying cannot help. */
  | 'redirects'
  /** The server's answer does not fit the request or the file (wrong Content-Range, size, short body). */
  | 'bad-response'
  /** The file kept changing on the server (ETag) while being downloaded. */
  | 'changed'
  /** The caller aborted the download (pause). */
  | 'aborted';

export class WeightsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(message);
    this.name = 'WeightsError';
  }
}

export class SafetensorsError extends WeightsError {
  declare readonly code: SafetensorsErrorCode;
  constructor(code: SafetensorsErrorCode, file: string, message: string, tensor?: string) {
    super(code, `${file}${tensor ? ` (tensor ${tensor})` : ''}: ${message}`, file, tensor);
    this.name = 'SafetensorsError';
  }
}

export class CheckpointError extends WeightsError {
  declare readonly code: CheckpointErrorCode;
  constructor(code: CheckpointErrorCode, message: string, file?: string, tensor?: string) {
    super(code, message, file, tensor);
    this.name = 'CheckpointError';
  }
}

export class HubError extends WeightsError {
  declare readonly code: HubErrorCode;
  constructor(
    code: HubErrorCode,
    message: string,
    file?: string,
    /** The HTTP status when there was one. */
    readonly status?: number,
  ) {
    super(code, message, file);
    this.name = 'HubError';
  }
}
