// A small typed event emitter that runs in Node and browsers (no `node:events`).

export type EventMap = Record<string, unknown[]>
type Listener<A extends unknown[]> = (...args: A) => void

export class Emitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<(...args: unknown[]) => void>>()

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener as unknown as (...args: unknown[]) => void)
    return this
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    this.#listeners.get(event)?.delete(listener as unknown as (...args: unknown[]) => void)
    return this
  }

  once<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const wrapped = (...args: E[K]): void => {
      this.off(event, wrapped)
      listener(...args)
    }
    return this.on(event, wrapped)
  }

  emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const set = this.#listeners.get(event)
    if (set === undefined || set.size === 0) return false
    for (const l of [...set]) l(...args)
    return true
  }
}
