// A piscina task: run one unit of a built-in job type (the runtime-neutral runUnit).
import { runUnit } from './run-unit.js'

export default runUnit
