// Test helper, bundled for the browser by test/helpers/browser.ts and served in place of the
// contribute page's unit Web Worker (dist/web/unit-worker.js): the same runUnit behind a gate, so a
// test holds a tab's units "running" for as long as it needs, whatever the machine's speed. Each unit
// says it is waiting, then waits until the page's gate keeper (an init script of the test) says the
// gate is open; from then on units run at once. Nothing of this is in the production bundle.
import { expose } from 'comlink'
import { builtinJobTypes } from '../../jobs/index.js'
import { runUnit, type RunTask } from '../../worker/run-unit.js'
import { GATE_CHANNEL, type GateMessage } from './gate-channel.js'

const channel = new BroadcastChannel(GATE_CHANNEL)
let opened = false
const waiting: (() => void)[] = []
channel.onmessage = (e: MessageEvent<GateMessage>) => {
  if (e.data !== 'open') return
  opened = true
  for (const go of waiting.splice(0)) go()
}

expose({
  async run(task: RunTask) {
    if (!opened) {
      const go = new Promise<void>((resolve) => waiting.push(resolve))
      channel.postMessage('waiting' satisfies GateMessage)
      await go
    }
    return runUnit(task, builtinJobTypes)
  },
})
