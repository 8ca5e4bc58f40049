import { confirm, log } from 'signet/runtime';

log('hello from signet');
confirm();
