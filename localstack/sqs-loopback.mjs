// Starts fauxqs bound to loopback only. fauxqs's own CLI hard-codes 0.0.0.0;
// its exported buildApp lets us choose the address, so the SQS emulator
// follows the project's "everything listens on 127.0.0.1" rule.
import { buildApp } from "fauxqs";

const port = Number.parseInt(process.env.FAUXQS_PORT ?? "4566", 10);
const host = process.env.FAUXQS_HOST_BIND ?? "127.0.0.1";
const app = buildApp({ logger: process.env.FAUXQS_LOGGER !== "false" });

const shutdown = async () => {
  await app.close();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

try {
  const address = await app.listen({ port, host });
  console.log(`fauxqs: listening on ${address}`);
} catch (err) {
  console.error(`fauxqs: cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
}
