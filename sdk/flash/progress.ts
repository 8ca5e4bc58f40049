/**
 * Showing a flash to a person or a program: a progress bar (bytes, serial rate, ETA) on a
 * terminal, one JSON object per line with `--json`, a few plain lines otherwise, and the
 * summary line with the effective throughput.
 */
import type { FlashEvent, FlashSummary } from './flasher';

export interface FlashReporter {
  event(e: FlashEvent): void;
  /** Clears a bar still on screen. */
  close(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The last line of a flash: what, where, how much, how fast. */
export function summaryLine(s: FlashSummary): string {
  const parts = [
    `flashed ${s.disk} to ${s.board} on ${s.port}: ${formatBytes(s.writtenBytes + s.unchangedBytes)} written and verified in ${formatDuration(s.elapsedMs)}`,
    `effective ${formatRate(s.effectiveBytesPerSecond)}`,
  ];
  if (s.unchangedBytes > 0) parts.push(`${formatBytes(s.unchangedBytes)} already on the board`);
  parts.push(s.sentBytes > 0 ? `${formatBytes(s.sentBytes)} sent over serial at ${formatRate(s.serialBytesPerSecond)}` : 'nothing needed sending');
  if (s.retries > 0) parts.push(`${s.retries} chunk ${s.retries === 1 ? 'retry' : 'retries'}`);
  const env = s.saved ? `environment saved (${s.env.join(', ')})` : s.envMode === 'check' && s.env.length > 0 ? `environment already in place (${s.env.join(', ')})` : '';
  const tail = [env, s.reset ? 'board reset' : 'board left at the prompt'].filter(Boolean).join(', ');
  return `${parts.join(', ')}; ${tail}`;
}

/** Lines worth printing whatever the output mode (not progress ticks). */
export function milestone(e: FlashEvent): string | undefined {
  switch (e.type) {
    case 'verified': {
      const b = e.slotB ? `, slot B ${e.slotB.name} ${e.slotB.version}` : ', slot B empty';
      return `verified ${e.disk} for ${e.board}: boot image ${formatBytes(e.bootImage.bytes)} signed by ${e.bootImage.keys.join(', ')}, slot A ${e.slotA.name} ${e.slotA.version} (security counter ${e.slotA.securityCounter})${b}`;
    }
    case 'planned':
      return `plan: ${e.chunks} chunks, ${formatBytes(e.dataBytes)} data (${formatBytes(e.gzBytes)} compressed), ${formatBytes(e.fillBytes)} fill made on the board`;
    case 'attached':
      return `attached to ${e.uboot} on ${e.port}${e.unzip ? ' (unzip: compressed transfers)' : ''}`;
    case 'digests':
      return e.available
        ? `checks: SHA-256 of storage computed by the board (imxtract, ${e.targets} ranges and chunks)`
        : 'checks: this U-Boot cannot compute SHA-256 of storage (no imxtract with FIT hashes): nothing is skipped as unchanged, the final pass uses CRC-32';
    case 'retry':
      return `retry: chunk ${e.index} at 0x${e.offset.toString(16)}, attempt ${e.attempt} failed (${e.code}): ${e.message}`;
    case 'env':
      return e.action === 'checked' ? `environment: ${e.name} already set as the board file needs (it cannot be saved on this board)` : undefined;
    case 'saved':
      return 'environment saved';
    case 'reset':
      return 'board reset';
    default:
      return undefined;
  }
}

/** One JSON object per line, every event (progress is already throttled by the flasher). */
export function jsonReporter(write: (line: string) => void): FlashReporter {
  return {
    event: (e) => write(JSON.stringify(e)),
    close: () => undefined,
  };
}

/** Milestones only: logs and CI. */
export function plainReporter(write: (line: string) => void): FlashReporter {
  return {
    event: (e) => {
      const line = milestone(e);
      if (line) write(line);
    },
    close: () => undefined,
  };
}

interface BarStream {
  write(text: string): unknown;
  columns?: number;
}

/** A bar redrawn in place on a terminal, with milestone lines printed above it. */
export function ttyReporter(stream: BarStream): FlashReporter {
  let shown = false;
  let last: Extract<FlashEvent, { type: 'progress' }> | undefined;
  let drawnAt = 0;
  const clear = (): void => {
    if (shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  const draw = (): void => {
    if (!last) return;
    const p = last;
    const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - 70));
    const fraction = p.totalBytes > 0 ? Math.min(1, p.doneBytes / p.totalBytes) : 0;
    const filled = Math.round(fraction * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const what = p.phase === 'verify' ? 'verify' : 'write ';
    const sent = p.sendTotal > 0 ? `  sent ${formatBytes(p.sentBytes)}/${formatBytes(p.sendTotal)}` : '';
    const rate = p.serialBytesPerSecond > 0 ? `  ${formatRate(p.serialBytesPerSecond)}` : '';
    const eta = p.etaMs !== null ? `  ETA ${formatDuration(p.etaMs)}` : '';
    stream.write(`\r\x1b[2K${what} ${bar} ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(p.doneBytes)}/${formatBytes(p.totalBytes)}${sent}${rate}${eta}`);
    shown = true;
    drawnAt = Date.now();
  };
  return {
    event: (e) => {
      if (e.type === 'progress') {
        last = e;
        if (Date.now() - drawnAt >= 100) draw();
        return;
      }
      const line = milestone(e);
      if (line) {
        clear();
        stream.write(line + '\n');
        draw();
      }
    },
    close: clear,
  };
}
