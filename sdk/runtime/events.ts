/** A minimal Node-style EventEmitter: on/once/off/emit. An 'error' nobody listens to is thrown. */
type Listener = (...args: any[]) => void;

export class EventEmitter {
  private listeners: Record<string, Listener[]> = {};

  on(event: string, listener: Listener): this {
    (this.listeners[event] || (this.listeners[event] = [])).push(listener);
    return this;
  }

  addListener(event: string, listener: Listener): this {
    return this.on(event, listener);
  }

  once(event: string, listener: Listener): this {
    const self = this;
    const wrapped = function (this: unknown, ...args: unknown[]) {
      self.off(event, wrapped);
      listener.apply(this, args);
    };
    (wrapped as { listener?: Listener }).listener = listener;
    return this.on(event, wrapped);
  }

  off(event: string, listener: Listener): this {
    const list = this.listeners[event];
    if (!list) return this;
    for (let i = 0; i < list.length; i++) {
      if (list[i] === listener || (list[i] as { listener?: Listener }).listener === listener) {
        list.splice(i, 1);
        break;
      }
    }
    return this;
  }

  removeListener(event: string, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: string): this {
    if (event === undefined) this.listeners = {};
    else delete this.listeners[event];
    return this;
  }

  listenerCount(event: string): number {
    const list = this.listeners[event];
    return list ? list.length : 0;
  }

  emit(event: string, ...args: unknown[]): boolean {
    const list = this.listeners[event];
    if (!list || list.length === 0) {
      if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error('unhandled error event: ' + String(args[0]));
      return false;
    }
    const copy = list.slice();
    for (let i = 0; i < copy.length; i++) copy[i].apply(this, args);
    return true;
  }
}
