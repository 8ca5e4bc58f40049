/**
 * What may be typed to U-Boot's shell for a variable: its name, and a value inside single quotes
 * (no quote, no line end, no NUL, no Ctrl-C or CAN, which the console driver uses to abandon a
 * line or a transfer; at most 512 characters). No imports, so the board schema checks board
 * files against the same rules the console driver enforces.
 */
export const UBOOT_VARIABLE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
export const UBOOT_QUOTABLE = /^[^'\r\n\0\x03\x18]{0,512}$/;

/** True when `text` can go inside `'...'` on a U-Boot command line. */
export function isQuotable(text: string): boolean {
  return UBOOT_QUOTABLE.test(text);
}
