export { buildBoardKernel, KERNEL_FRAGMENT } from './board';
export { buildKernel, KERNEL_ARCH, type KernelBuild, type KernelBuildInput } from './build';
export { checkFinalConfig, configSha256, countOptionsSet, mergeFragments, parseDotConfig, parseFragment, type FragmentOption } from './config';
export { KernelError, type KernelErrorCode } from './errors';
