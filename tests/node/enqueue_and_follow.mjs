// A Node service beside the Python workers: subscribes to a run's events with ioredis, then adds
// the run's job with npm bullmq, leaving out jobId and every option, and prints each event it
// receives (one JSON payload a line) until the terminal one. Used by test_node_interop.py.
//
//   node enqueue_and_follow.mjs REDIS_URL KEY_PREFIX RUN_ID
import { Queue } from "bullmq";
import Redis from "ioredis";

const [redisUrl, keyPrefix, runId] = process.argv.slice(2);
const TERMINAL = new Set(["RunFinished", "RunFailed", "RunCancelled"]);
const DEADLINE_MS = 30_000;

const subscriber = new Redis(redisUrl, { lazyConnect: true });
const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
const queue = new Queue(`${keyPrefix}-runs`, { prefix: keyPrefix, connection });
const deadline = setTimeout(() => {
  console.error(`no terminal event within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);

let lastSeq = 0;
const done = new Promise((resolve) => {
  subscriber.on("message", (_channel, payload) => {
    const event = JSON.parse(payload);
    if (event.seq <= lastSeq) return; // at-least-once on the wire: dedupe by seq
    lastSeq = event.seq;
    console.log(payload);
    if (TERMINAL.has(event.type)) resolve();
  });
});

await subscriber.connect();
await subscriber.subscribe(`${keyPrefix}:run:${runId}:events`);
const job = await queue.add("run", { run_id: runId });
console.log(JSON.stringify({ job_id: job.id }));
await done;
clearTimeout(deadline);
await queue.close();
await connection.quit();
subscriber.disconnect();
