/**
 * What the build injects into a duktape-es5 bundle for globals the engine lacks (esbuild
 * `inject`, sdk/build/bundle.ts): each free use of one of these names becomes a use of this
 * module's export, and the module is left out of bundles that use none. Nothing is added to the
 * engine's global object.
 */
export { SignetPromise as Promise } from './promise';
export { setTimeout, setInterval, setImmediate, clearTimeout, clearInterval, clearImmediate } from './timers';
export { queueJob as queueMicrotask } from './jobs';
