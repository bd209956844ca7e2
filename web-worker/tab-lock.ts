// One contributing tab per browser profile. Tabs of a profile share one identity (IndexedDB) and the
// coordinator counts an identity as one worker: it even takes back, at a work request, the leases the
// requester does not list as held, so two tabs computing at once would undo each other's work. A Web
// Lock lets one tab contribute; another one waits and takes over when the first closes.

/** Resolves with a function that releases the lock, once this tab holds it. */
export function acquireTabLock(
  locks: LockManager | undefined,
  name: string,
  onWaiting: () => void,
): Promise<() => void> {
  // Without the Web Locks API (old browsers), every tab contributes.
  if (locks === undefined) return Promise.resolve(() => {})
  return new Promise((resolve, reject) => {
    const hold = (lock: Lock | null): Promise<void> | undefined =>
      lock === null ? undefined : new Promise<void>((release) => resolve(() => release()))
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (lock !== null) return hold(lock)
        onWaiting()
        locks.request(name, hold).catch(reject)
        return undefined
      })
      .catch(reject)
  })
}
