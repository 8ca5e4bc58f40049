import type { Command } from '../command';
import { boardsList, boardsShow } from './boards';
import { build, init } from './build';
import { inspect } from './inspect';
import { keysInit } from './keys';
import { sign } from './sign';
import { tcb } from './tcb';
import { verify } from './verify';

export const COMMANDS: Command[] = [init, keysInit, build, sign, inspect, verify, tcb, boardsList, boardsShow];
