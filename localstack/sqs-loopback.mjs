// Starts fauxqs bound to loopback only. fauxqs's own CLI hard-codes 0.0.0.0;
// its exported buildApp lets us choose the address, so the SQS emulator
// follows the project's "everything listens on 127.0.0.1" rule.
//
// With FAUXQS_STATE_FILE set, the queues and their messages outlive a
// restart, as they outlive an outage of the real (durable) SQS: the state is
// written on SIGTERM/SIGINT and read back at startup. Only SQS state is kept;
// fauxqs's SNS and S3 stores start empty.
import { readFile, open, rename, unlink } from "node:fs/promises";
import { buildApp } from "fauxqs";
// The package's exports map blocks deep bare imports; this is the same module
// instance app.js imports, so the store built here is the one buildApp uses.
import { SqsStore } from "./node_modules/fauxqs/dist/sqs/sqsStore.js";
import { INVALID_MESSAGE_BODY_CHAR } from "./node_modules/fauxqs/dist/sqs/sqsTypes.js";

// fauxqs checks a body one UTF-16 unit at a time, so it refuses every
// character beyond U+FFFF (an emoji), which SQS takes: its allowed set is
// #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
// Its SendMessage and SendMessageBatch share this one RegExp object, so
// recompiling it in place (Annex B's RegExp.prototype.compile) with code
// point semantics makes the emulator refuse what SQS refuses, no more.
INVALID_MESSAGE_BODY_CHAR.compile("[^\\x09\\x0A\\x0D\\x20-\\uD7FF\\uE000-\\uFFFD\\u{10000}-\\u{10FFFF}]", "u");

const STATE_VERSION = 1;

const port = Number.parseInt(process.env.FAUXQS_PORT ?? "4566", 10);
const host = process.env.FAUXQS_HOST_BIND ?? "127.0.0.1";
const stateFile = process.env.FAUXQS_STATE_FILE || undefined;

const fail = (msg) => {
  console.error(`fauxqs: ${msg}`);
  process.exit(1);
};

// loadState returns the saved state, or undefined when there is none yet. A
// file that exists but cannot be read or parsed is fatal: starting empty
// would silently lose every message the caller expects to find.
async function loadState(file) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (err.code === "ENOENT") return undefined;
    fail(`cannot read state file ${file}: ${err.message}`);
  }
  let state;
  try {
    state = JSON.parse(text);
  } catch (err) {
    fail(`state file ${file} is corrupt (not JSON: ${err.message.replace(/\s+/g, " ")}); delete it to start empty`);
  }
  if (state?.version !== STATE_VERSION || !Array.isArray(state.queues)) {
    fail(`state file ${file} is corrupt (want {"version": ${STATE_VERSION}, "queues": [...]}); delete it to start empty`);
  }
  return state;
}

const bySequence = (a, b) => {
  const x = BigInt(a.sequenceNumber ?? 0);
  const y = BigInt(b.sequenceNumber ?? 0);
  return x < y ? -1 : x > y ? 1 : 0;
};

function restore(store, state, file) {
  for (const q of state.queues) {
    if (typeof q?.name !== "string" || typeof q.url !== "string" || typeof q.arn !== "string" || !Array.isArray(q.messages)) {
      fail(`state file ${file} is corrupt (a queue lacks name, url, arn or messages); delete it to start empty`);
    }
    const queue = store.createQueue(q.name, q.url, q.arn, q.attributes ?? {}, q.tags ?? {});
    if (q.createdTimestamp !== undefined) queue.createdTimestamp = q.createdTimestamp;
    if (q.lastModifiedTimestamp !== undefined) queue.lastModifiedTimestamp = q.lastModifiedTimestamp;
    queue.sequenceCounter = q.sequenceCounter ?? 0;

    // Messages that were in flight come back visible, as after their
    // visibility timeout; their receive counts stay. Sorting everything
    // (ready, delayed, in flight) restores the send order: FIFO by sequence
    // number, which keeps the order within each group; standard by send time
    // (the sort is stable, so ties keep the saved order).
    const messages = [...q.messages];
    if (queue.isFifo()) {
      messages.sort(bySequence);
    } else {
      messages.sort((a, b) => a.sentTimestamp - b.sentTimestamp);
    }
    for (const msg of messages) queue.enqueue(msg);

    // Restored entries get a fresh 5-minute window (FifoMap.set stamps the
    // expiry itself), so a duplicate is caught a little longer than on AWS.
    for (const [key, value] of q.deduplication ?? []) {
      queue.deduplicationCache.set(key, value);
    }
  }
}

function snapshot(store) {
  const now = Date.now();
  const queues = [];
  for (const queue of store.listQueues()) {
    const { ready, delayed, inflight } = queue.inspectMessages();
    const deduplication = [];
    for (const [key, node] of queue.deduplicationCache.items) {
      if (node.expiry > 0 && node.expiry <= now) continue; // window over: nothing left to deduplicate
      deduplication.push([key, node.value]);
    }
    queues.push({
      name: queue.name,
      url: queue.url,
      arn: queue.arn,
      attributes: queue.attributes,
      tags: Object.fromEntries(queue.tags),
      createdTimestamp: queue.createdTimestamp,
      lastModifiedTimestamp: queue.lastModifiedTimestamp,
      sequenceCounter: queue.sequenceCounter,
      messages: [...ready, ...delayed, ...inflight.map((e) => e.message)],
      deduplication,
    });
  }
  return { version: STATE_VERSION, savedAt: new Date(now).toISOString(), queues };
}

// saveState writes a temporary file and renames it, so a crash mid-write
// leaves the previous state rather than half a file.
async function saveState(store, file) {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o644);
  try {
    await fh.writeFile(JSON.stringify(snapshot(store)));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

const sqsStore = new SqsStore();
if (stateFile) {
  const state = await loadState(stateFile);
  if (state) {
    restore(sqsStore, state, stateFile);
    console.log(`fauxqs: restored ${state.queues.length} queue(s) from ${stateFile}`);
  }
}
const app = buildApp({ logger: process.env.FAUXQS_LOGGER !== "false", stores: { sqsStore } });

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  // Closing first lets in-flight requests finish, so everything a client saw
  // acknowledged is in the store before it is written.
  await app.close();
  if (stateFile) {
    try {
      await saveState(sqsStore, stateFile);
      console.log(`fauxqs: saved state to ${stateFile}`);
    } catch (err) {
      fail(`cannot save state to ${stateFile}: ${err.message}`);
    }
  }
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

try {
  const address = await app.listen({ port, host });
  console.log(`fauxqs: listening on ${address}`);
} catch (err) {
  fail(`cannot listen on ${host}:${port}: ${err.message}`);
}
