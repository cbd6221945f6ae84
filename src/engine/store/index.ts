/** The app's IndexedDB store: schema (./schema.ts documents it), the store, its errors. */
export { StoreError, isQuotaError, type StoreErrorCode } from './errors';
export {
  DB_NAME,
  DB_VERSION,
  STORES,
  upgradeSchema,
  type ModelManifest,
  type ModelSource,
  type StoredFileState,
  type TensorEntry,
  type TensorRecord,
  type TokenizerFiles,
} from './schema';
export { WeightStore, type StorageUsage, type StoreOpenOptions } from './store';
export { RecordChecksums, describeChecksum, type RecordChecksum } from './record-checksum';
