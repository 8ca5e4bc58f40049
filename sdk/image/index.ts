export * from './errors';
export * from './format';
export * from './manifest';
export * from './verify';
export type { ImageCrypto } from './crypto';
