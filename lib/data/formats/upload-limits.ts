// What an upload may unpack to. The API's body limit (TRAINYARD_MAX_UPLOAD_BYTES) bounds the bytes
// that arrive; containers (an .npz, a multipart body) hold more than one file, and a zip inflates,
// so their readers are handed the same limit and apply it to what they unpack.
import { DomainError } from "../../errors.ts";

export interface UploadLimits {
  /** Most bytes an upload may hold once decompressed and unpacked (all its files together). */
  maxBytes: number;
}

/** 64 MiB, the default of TRAINYARD_MAX_UPLOAD_BYTES. */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxBytes: 64 * 1024 * 1024 };

/** 413: what the upload holds (or says it holds) is more than the limit. */
export class UploadTooLargeError extends DomainError {
  constructor(message: string) {
    super(message, 413, "Payload too large");
  }
}
