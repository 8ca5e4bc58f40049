import type { Command } from '../command';
import { boardsList, boardsShow } from './boards';
import { build, init } from './build';
import { disk, fit, run } from './disk';
import { flash, serialConsole } from './flash';
import { inspect } from './inspect';
import { kernelBuild, xenBuild } from './kernel';
import { keysInit } from './keys';
import { sign } from './sign';
import { tcb } from './tcb';
import { verify } from './verify';
import { server, serverAudit, serverKeys } from './server';
import { publish } from './publish';
import { rolloutCreate, rolloutPause, rolloutPromote, rolloutResume, rolloutStatus } from './rollout';
import { deviceEnroll, deviceList, deviceProvision, deviceRevoke, deviceSimulate } from './device';
import { keysNew } from './keys-new';
import { rootNew, rootPush, rootSign, rootVerify } from './root';
import { targetsResign } from './targets';
import { mirrorSync } from './mirror';

export const COMMANDS: Command[] = [init, keysInit, build, sign, inspect, verify, tcb, boardsList, boardsShow, kernelBuild, xenBuild, fit, disk, run, flash, serialConsole,
  server, serverKeys, serverAudit, publish, rolloutCreate, rolloutStatus, rolloutPause, rolloutResume, rolloutPromote, deviceEnroll, deviceRevoke, deviceList, deviceSimulate, deviceProvision,
  keysNew, rootNew, rootSign, rootVerify, rootPush, targetsResign, mirrorSync];
