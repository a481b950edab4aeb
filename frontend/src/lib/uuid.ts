/**
 * A random (version 4) UUID for edit `op` ids. `crypto.randomUUID` exists only in secure
 * contexts (https or localhost), but the gateway may serve the client over plain http on an
 * intranet name, so this builds the UUID from `crypto.getRandomValues`, which works everywhere.
 */
export function uuid4(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
