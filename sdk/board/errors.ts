import { CodedError } from '../util/errors';

export type BoardErrorCode = 'E_BOARD_UNKNOWN' | 'E_BOARD_INVALID';

export class BoardError extends CodedError<BoardErrorCode> {
  constructor(code: BoardErrorCode, message: string, hint: string) {
    super('BoardError', code, message, hint);
  }
}
