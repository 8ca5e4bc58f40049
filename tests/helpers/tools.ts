/**
 * Tests that need an external tool (dtc, QEMU, a cross compiler, root for loop devices) skip
 * only on a developer's machine that lacks it. In CI (`CI` set, where .ci/setup installed
 * everything) they always run, so a missing install step fails loudly instead of skipping.
 */
export function skipUnlessCi(available: boolean): boolean {
  return !available && !process.env.CI;
}
