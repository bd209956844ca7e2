// The volunteer's policy for the worker daemon: idle detection, throttling, checkpoints, status.
export { createCheckpointStore, type CheckpointStore, type SavedCheckpoint } from './checkpoint-store.js'
export type { DaemonGuest, HeldView, SavedUnit } from './guest-hooks.js'
export { createGuest, type Guest, type GuestInit } from './guest.js'
export {
  createIdleMonitor,
  pauseReason,
  type IdleMonitor,
  type IdleMonitorInit,
  type MachineSample,
  type PauseReason,
} from './monitor.js'
export {
  DEFAULT_POLICY,
  parsePolicyLayer,
  parseWindow,
  policyThreads,
  resolvePolicy,
  type GuestPolicy,
  type PolicyLayer,
  type RunMode,
} from './options.js'
export { admitUnits, DEADLINE_SHARE, type PlanInput } from './planner.js'
export {
  createCpuProbe,
  createMachineProbes,
  ProbeUnavailableError,
  type BatteryState,
  type MachineProbes,
} from './probes.js'
export { sendControl, ControlCommandError } from './control-client.js'
export { checkControlSocket, controlSocketPath, UnsafeControlPathError } from './control-path.js'
export {
  CONTROL_VERSION,
  MAX_CONTROL_LINE,
  ControlProtocolError,
  parseControlReply,
  parseControlRequest,
  type ControlCommand,
  type ControlReply,
  type ControlRequest,
} from './control-protocol.js'
export { startControlSocket, type ControlSocket, type ControlTarget } from './control-socket.js'
export { createRunControl, wireTask, type RunControl, type RunHooks } from './run-control.js'
export { restoreUnits, type RestoredUnit } from './restore.js'
export {
  formatStatus,
  readStatus,
  statusPath,
  writeStatus,
  type UnitStatus,
  type WorkerStatus,
} from './status.js'
