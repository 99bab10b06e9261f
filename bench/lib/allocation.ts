import { Session } from 'node:inspector/promises';

interface SamplingNode {
  selfSize: number;
  children: SamplingNode[];
}

/**
 * Bytes allocated per iteration of `work`, garbage included: V8's sampling heap profiler with
 * collected objects kept in the count, over `n` sequential iterations. Unlike CPU time this does
 * not move with a busy machine, so it shows what a change does to the garbage (and so to the
 * collector's share of the CPU) even where the timings are noise. Sampled (every 256 bytes on
 * average): expect a few percent of scatter.
 */
export async function allocatedPerIteration(
  n: number,
  work: (i: number) => Promise<void> | void,
): Promise<number> {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    for (let i = 0; i < n; i++) await work(i);
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
      profile: { head: SamplingNode };
    };
    return totalSize(profile.head) / n;
  } finally {
    session.disconnect();
  }
}

function totalSize(node: SamplingNode): number {
  let sum = node.selfSize;
  for (const child of node.children) sum += totalSize(child);
  return sum;
}
