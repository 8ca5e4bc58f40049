import type { Command } from '../command';
import { boardsList, boardsShow } from './boards';
import { inspect } from './inspect';
import { keysInit } from './keys';
import { sign } from './sign';
import { verify } from './verify';

export const COMMANDS: Command[] = [keysInit, sign, inspect, verify, boardsList, boardsShow];
