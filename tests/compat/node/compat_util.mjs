// Client-independent helpers shared by the node:test suites (platformatic.test.mjs,
// kafkats.test.mjs): bounded polling and checks of received messages.
import assert from 'node:assert/strict'

export const WAIT_TIMEOUT_MS = 10000

/** Polls `predicate` until it is truthy or `timeoutMs` passes; returns its last value. */
export async function waitUntil (predicate, timeoutMs = WAIT_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await predicate()
    if (result || Date.now() >= deadline) return result
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** Sorted copy of `values`: for set-like comparisons. */
export function sorted (values) {
  return [...values].sort()
}

/** The values of `received` messages, sorted. */
export function byValue (received) {
  return sorted(received.map(m => m.value))
}

/**
 * Checks messages read back from a `partitions`-partition topic: every key stayed on one
 * partition, and each partition's offsets arrived in order from 0 with no gap.
 */
export function assertKeysStayAndOffsetsDense (received, partitions) {
  const partitionOfKey = new Map()
  for (const m of received) {
    if (!partitionOfKey.has(m.key)) partitionOfKey.set(m.key, m.partition)
    assert.equal(m.partition, partitionOfKey.get(m.key), `key ${m.key} on two partitions`)
  }
  for (let p = 0; p < partitions; p++) {
    const offsets = received.filter(m => m.partition === p).map(m => m.offset)
    assert.deepEqual(offsets, offsets.map((_, i) => BigInt(i)), `partition ${p} offsets`)
  }
}
