// Schemas of the HTTP API: one definition per body, checked with ajv and published as OpenAPI.
export { check, fieldOf, MESSAGE_KEYWORD } from './check.js'
export { parseParams } from './params.js'
