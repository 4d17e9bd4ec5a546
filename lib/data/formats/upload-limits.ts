// What an upload may unpack to. The API's body limit (TRAINYARD_MAX_UPLOAD_BYTES) bounds the bytes
// that arrive; containers (an .npz, a multipart body) hold more than one file, and a zip inflates,
// so their readers are handed the same limit and apply it to what they unpack.
import { DomainError } from "../../errors.ts";

export interface UploadLimits {
  /** Most bytes an upload may hold once decompressed and unpacked (all its files together). */
  maxBytes: number;
  /**
   * Formats that stream (CSV, TSV, NDJSON, image zips) are spooled to a file and read from there a
   * part at a time, so they may be far larger than what fits in memory: the most bytes such a file
   * may hold (TRAINYARD_MAX_DATASET_BYTES), and for an image zip, what its images may decompress to.
   */
  maxFileBytes: number;
  /** Where streamed uploads are spooled while they are read (TRAINYARD_UPLOAD_DIR; default the system's temp dir). */
  spoolDir?: string;
}

/** The defaults of TRAINYARD_MAX_UPLOAD_BYTES (64 MiB) and TRAINYARD_MAX_DATASET_BYTES (2 GiB). */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxBytes: 64 * 1024 * 1024, maxFileBytes: 2 * 1024 * 1024 * 1024 };

/** 413: what the upload holds (or says it holds) is more than the limit. */
export class UploadTooLargeError extends DomainError {
  constructor(message: string) {
    super(message, 413, "Payload too large");
  }
}
