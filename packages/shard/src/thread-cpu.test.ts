import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { cpuSeconds, osThreadId, threadCpuSeconds } from './thread-cpu.ts';

describe.runIf(existsSync('/proc/thread-self'))('per-thread CPU from /proc', () => {
  it('names the calling thread and reads the CPU a busy thread used', async () => {
    // The main thread's id is the process id.
    expect(osThreadId()).toBe(process.pid);
    // A worker that does a fixed amount of work (~0.15 s of CPU here, however the machine schedules it), then reports its own id and waits to be read.
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads');
      const { readlinkSync } = require('node:fs');
      let x = 0;
      for (let i = 0; i < 1e8; i++) x = (x + i) | 0;
      parentPort.postMessage(x === 0.5 ? 0 : Number(readlinkSync('/proc/thread-self').split('/').at(-1)));
      setTimeout(() => {}, 10_000);`, { eval: true });
    try {
      const tid = await new Promise<number>((resolve, reject) => worker.once('message', resolve).once('error', reject));
      expect(tid).not.toBe(process.pid);
      // A fresh idle thread has used a few ms; this one, the work. The whole process counts it too.
      const busy = threadCpuSeconds(tid)!;
      expect(busy).toBeGreaterThan(0.05);
      expect(cpuSeconds(process.pid)!).toBeGreaterThanOrEqual(busy + threadCpuSeconds(process.pid)! - 0.02);
    } finally {
      await worker.terminate();
    }
  });

  it('answers undefined for a thread or process that does not exist', () => {
    expect(threadCpuSeconds(2 ** 30)).toBeUndefined();
    expect(cpuSeconds(2 ** 30)).toBeUndefined();
  });
});
