import { UploadError } from './problems';

export interface InvalidUtf8Line {
  /** 1-based line number. */
  line: number;
  /** 0-based byte offset of the first bad byte within that line. */
  byteInLine: number;
}

export interface DecodedText {
  /** The text, BOM removed; invalid sequences replaced by U+FFFD (those lines are reported, not used). */
  text: string;
  /** Lines holding bytes that are not UTF-8, in file order. Empty for a clean file. */
  invalidLines: InvalidUtf8Line[];
}

/**
 * Decodes an uploaded file as UTF-8. A clean file takes one fatal TextDecoder pass. A file with bad bytes
 * is decoded leniently so its good rows survive, and every line holding a bad sequence is located by a
 * validator that follows the same rules as the WHATWG decoder (no overlongs, no surrogates, <= U+10FFFF).
 */
export function decodeUtf8(bytes: Uint8Array): DecodedText {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new UploadError('The file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8 and upload it again.');
  }
  try {
    // TextDecoder drops a leading UTF-8 BOM itself.
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), invalidLines: [] };
  } catch {
    return { text: new TextDecoder('utf-8').decode(bytes), invalidLines: findInvalidUtf8Lines(bytes) };
  }
}

/** Every line (split at 0x0A, which never occurs inside a multi-byte sequence) with a bad UTF-8 sequence. */
export function findInvalidUtf8Lines(bytes: Uint8Array): InvalidUtf8Line[] {
  const out: InvalidUtf8Line[] = [];
  let line = 1;
  let lineStart = 0;
  let reportedLine = 0;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b === 0x0a) {
      line++;
      lineStart = ++i;
      continue;
    }
    const len = sequenceLength(bytes, i);
    if (len === 0) {
      if (reportedLine !== line) {
        out.push({ line, byteInLine: i - lineStart });
        reportedLine = line;
      }
      i++;
    } else {
      i += len;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at i, or 0 where the byte there cannot start one. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i];
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < bytes.length && bytes[i + k] >= lo && bytes[i + k] <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0; // no overlongs
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no UTF-16 surrogates
  if (b0 >= 0xe1 && b0 <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0; // <= U+10FFFF
  return 0;
}
