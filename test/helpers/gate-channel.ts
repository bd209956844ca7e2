// Test helper: the BroadcastChannel between a contribute page's gate keeper and its gated unit Web
// Workers (test/helpers/gated-unit-worker.ts). Workers post `waiting` as a unit reaches the gate;
// the keeper posts `open` when the test opens it, and again to any unit that arrives after.
export const GATE_CHANNEL = 'cohort-test-unit-gate'

export type GateMessage = 'waiting' | 'open'
