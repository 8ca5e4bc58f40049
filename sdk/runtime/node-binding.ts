/**
 * The event-loop binding (binding.ts) on Node, over node:net, node:dgram and Node's timers, so
 * the runtime's net, dgram and http (the same code, parser included) run under Node too: tests
 * and the Node side of differential runs. Found with process.getBuiltinModule (Node ≥ 20.16);
 * null anywhere else, which on a device is never consulted (the host's binding comes first).
 */
import type { UvAddress, UvBinding, UvHandler } from './binding';

interface NodeProcess {
  getBuiltinModule?(name: string): unknown;
}
declare const process: NodeProcess | undefined;

/* The few members of Node's modules used here. */
interface NodeSocket {
  on(event: string, f: (...a: any[]) => void): unknown;
  write(b: Uint8Array, cb: (e?: Error | null) => void): boolean;
  end(cb?: () => void): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  setNoDelay(on: boolean): unknown;
  address(): UvAddress;
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  writableLength: number;
  ref(): unknown;
  unref(): unknown;
}
interface NodeServer {
  on(event: string, f: (...a: any[]) => void): unknown;
  listen(o: { port: number; host: string; backlog: number }): unknown;
  close(): unknown;
  address(): UvAddress;
  ref(): unknown;
  unref(): unknown;
}
interface NodeNet {
  createServer(o: { allowHalfOpen: boolean; pauseOnConnect: boolean }): NodeServer;
  connect(o: { port: number; host: string; allowHalfOpen: boolean }): NodeSocket;
}
interface NodeDgramSocket {
  on(event: string, f: (...a: any[]) => void): unknown;
  bind(port: number, host: string): unknown;
  send(b: Uint8Array, port: number, host: string, cb: (e: Error | null) => void): unknown;
  close(): unknown;
  address(): UvAddress;
  ref(): unknown;
  unref(): unknown;
}
interface NodeDgram {
  createSocket(type: string): NodeDgramSocket;
}
interface NodeTimer {
  ref(): unknown;
  unref(): unknown;
}
interface NodeTimers {
  setTimeout(f: () => void, ms: number): NodeTimer;
  setInterval(f: () => void, ms: number): NodeTimer;
  clearTimeout(t: NodeTimer): void;
  clearInterval(t: NodeTimer): void;
}

type Entry =
  | { kind: 'timer'; handler: UvHandler; timer: NodeTimer; repeat: boolean }
  | { kind: 'tcp'; handler: UvHandler | undefined; socket: NodeSocket }
  | { kind: 'server'; handler: UvHandler; server: NodeServer }
  | { kind: 'udp'; handler: UvHandler; socket: NodeDgramSocket };

function errorArgs(e: unknown): [string, string] {
  const err = e as { code?: string; message?: string };
  return [String(err && err.code ? err.code : 'EIO'), String(err && err.message ? err.message : e)];
}

function numericHost(host: string): string {
  if (!/^[0-9.]+$/.test(host) && host.indexOf(':') < 0) {
    throw new TypeError("'" + host + "' is not a numeric IPv4 or IPv6 address");
  }
  return host;
}

export function nodeBinding(): UvBinding | null {
  const p = typeof process !== 'undefined' ? process : undefined;
  if (!p || typeof p.getBuiltinModule !== 'function') return null;
  const net = p.getBuiltinModule('node:net') as NodeNet;
  const dgram = p.getBuiltinModule('node:dgram') as NodeDgram;
  const timers = p.getBuiltinModule('node:timers') as NodeTimers;
  const handles: Record<number, Entry> = {};
  let next = 1;
  const add = (e: Entry): number => {
    const id = next++;
    handles[id] = e;
    return id;
  };
  const get = (id: number): Entry => {
    const e = handles[id];
    if (!e) throw new TypeError('uv: invalid or closed handle ' + id);
    return e;
  };
  const emit = (id: number, event: string, a?: unknown, b?: unknown, c?: unknown): void => {
    const e = handles[id];
    const h = e ? e.handler : undefined;
    if (event === 'close') delete handles[id];
    if (h) h(event, a, b, c);
  };
  const wireSocket = (id: number, s: NodeSocket): void => {
    s.on('data', (d: Uint8Array) => emit(id, 'data', new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    s.on('end', () => emit(id, 'end'));
    s.on('error', (e: unknown) => {
      const [code, msg] = errorArgs(e);
      const entry = handles[id];
      if (entry && entry.kind === 'tcp' && (entry as { connecting?: boolean }).connecting) return;
      emit(id, 'error', code, msg);
    });
    s.on('close', () => emit(id, 'close'));
  };
  const addr = (a: UvAddress | string | null): UvAddress => (a && typeof a === 'object' ? { address: a.address, port: a.port, family: a.family } : { address: '', port: 0, family: '' });

  return {
    timerStart(handler, timeoutMs, repeatMs) {
      const repeat = repeatMs > 0;
      let id = 0;
      const timer = repeat
        ? timers.setInterval(() => emit(id, 'timeout'), repeatMs)
        : timers.setTimeout(() => {
            emit(id, 'timeout');
            emit(id, 'close');
          }, timeoutMs);
      id = add({ kind: 'timer', handler, timer, repeat });
      return id;
    },
    tcpListen(handler, host, port, backlog) {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
      const id = add({ kind: 'server', handler, server });
      server.on('connection', (s: NodeSocket) => {
        const cid = add({ kind: 'tcp', handler: undefined, socket: s });
        wireSocket(cid, s);
        emit(id, 'connection', cid);
      });
      server.on('listening', () => emit(id, 'listening'));
      server.on('error', (e: unknown) => {
        const [code, msg] = errorArgs(e);
        emit(id, 'error', code, msg);
      });
      server.on('close', () => emit(id, 'close'));
      server.listen({ port, host: numericHost(host), backlog: backlog > 0 ? backlog : 128 });
      return id;
    },
    tcpConnect(handler, host, port) {
      const s = net.connect({ port, host: numericHost(host), allowHalfOpen: true });
      s.pause();
      const entry = { kind: 'tcp' as const, handler, socket: s, connecting: true };
      const id = add(entry);
      wireSocket(id, s);
      s.on('connect', () => {
        entry.connecting = false;
        emit(id, 'connect');
      });
      s.on('error', (e: unknown) => {
        if (!entry.connecting) return;
        entry.connecting = false;
        const [code, msg] = errorArgs(e);
        emit(id, 'connect', code, msg);
      });
      return id;
    },
    setHandler(id, handler) {
      (get(id) as { handler: UvHandler | undefined }).handler = handler;
    },
    readStart(id) {
      const e = get(id);
      if (e.kind === 'tcp') e.socket.resume();
    },
    readStop(id) {
      const e = get(id);
      if (e.kind === 'tcp') e.socket.pause();
    },
    write(id, bytes) {
      const e = get(id);
      if (e.kind !== 'tcp') throw new TypeError('uv: not a TCP connection');
      const copy = new Uint8Array(bytes.length);
      copy.set(bytes);
      e.socket.write(copy, (err) => {
        if (err) {
          const [code, msg] = errorArgs(err);
          emit(id, 'written', code, msg);
        } else emit(id, 'written');
      });
      return e.socket.writableLength;
    },
    shutdown(id) {
      const e = get(id);
      if (e.kind === 'tcp') e.socket.end(() => emit(id, 'shutdown'));
    },
    setNoDelay(id, on) {
      const e = get(id);
      if (e.kind === 'tcp') e.socket.setNoDelay(on);
    },
    address(id) {
      const e = get(id);
      if (e.kind === 'tcp') return addr(e.socket.address());
      if (e.kind === 'server') return addr(e.server.address());
      if (e.kind === 'udp') return addr(e.socket.address());
      throw new TypeError('uv: a timer has no address');
    },
    remoteAddress(id) {
      const e = get(id);
      if (e.kind !== 'tcp') throw new TypeError('uv: not a TCP connection');
      return { address: e.socket.remoteAddress || '', port: e.socket.remotePort || 0, family: e.socket.remoteFamily || '' };
    },
    udpBind(handler, host, port) {
      const h = numericHost(host);
      const socket = dgram.createSocket(h.indexOf(':') >= 0 ? 'udp6' : 'udp4');
      const id = add({ kind: 'udp', handler, socket });
      socket.on('message', (m: Uint8Array, r: { address: string; port: number }) => emit(id, 'message', new Uint8Array(m.buffer, m.byteOffset, m.byteLength), r.address, r.port));
      socket.on('listening', () => emit(id, 'listening'));
      socket.on('error', (e: unknown) => {
        const [code, msg] = errorArgs(e);
        emit(id, 'error', code, msg);
      });
      socket.on('close', () => emit(id, 'close'));
      socket.bind(port, h);
      return id;
    },
    udpSend(id, bytes, host, port) {
      const e = get(id);
      if (e.kind !== 'udp') throw new TypeError('uv: not a UDP socket');
      const copy = new Uint8Array(bytes.length);
      copy.set(bytes);
      e.socket.send(copy, port, numericHost(host), (err) => {
        if (err) {
          const [code, msg] = errorArgs(err);
          emit(id, 'sent', code, msg);
        } else emit(id, 'sent');
      });
    },
    close(id) {
      const e = handles[id];
      if (!e || (e as { closing?: boolean }).closing) return;
      (e as { closing?: boolean }).closing = true;
      if (e.kind === 'timer') {
        if (e.repeat) timers.clearInterval(e.timer);
        else timers.clearTimeout(e.timer);
        emit(id, 'close');
      } else if (e.kind === 'tcp') e.socket.destroy();
      else if (e.kind === 'server') e.server.close();
      else e.socket.close();
    },
    ref(id, on) {
      const e = get(id);
      const target = e.kind === 'timer' ? e.timer : e.kind === 'server' ? e.server : e.socket;
      if (on) target.ref();
      else target.unref();
    },
    now() {
      return Date.now();
    },
    run() {
      return false; // Node runs its own loop
    },
    closeAll() {
      for (const k in handles) {
        const e = handles[k as unknown as number]!;
        (e as { handler?: UvHandler }).handler = undefined;
        this.close(Number(k));
      }
    },
    asyncListen: true,
  } as UvBinding;
}
