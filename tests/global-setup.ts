/** Once per test run: make sure the CLI bundle (dist/signet.mjs) matches the sources. */
// @ts-expect-error — a plain .mjs helper without types
import { bundleCli } from '../sdk/cli/bundle.mjs';

export default async function setup(): Promise<void> {
  await bundleCli();
}
