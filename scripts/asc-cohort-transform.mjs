// An AssemblyScript transform: asc's --importMemory imports "env"."memory"; Cohort's ABI wants the
// memory from "cohort". This renames the import after compiling (the module is otherwise unchanged).
import { Transform } from 'assemblyscript/transform'

export default class CohortMemory extends Transform {
  afterCompile(module) {
    const memory = module.getMemoryInfo('0')
    if (memory.module !== 'env' || memory.base !== 'memory') return
    module.addMemoryImport('0', 'cohort', 'memory', memory.shared)
  }
}
