// The deployment's trust parameters (store/trust-scripts.ts) as the coordinator's tuning sets them.
import type { CoordinatorTuning } from './options.js'
import type { TrustParams } from './store/store.js'

export function trustParamsOf(tuning: CoordinatorTuning): TrustParams {
  return {
    saboteurFraction: tuning.saboteurFraction,
    vouchedCredibility: tuning.vouchedCredibility,
    anchorCredibility: tuning.anchorCredibility,
    unanchoredGroup: tuning.unanchoredGroup,
    minCredibility: tuning.defaultMinCredibility,
    spotCheckRate: tuning.defaultSpotCheckRate,
  }
}
