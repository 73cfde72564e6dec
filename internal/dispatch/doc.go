// Package dispatch holds Dispatcher's domain: commands, aggregates, outbox
// items and the errors the edges translate into HTTP statuses or delivery
// decisions. It imports only the standard library and the public outbox
// contract (package outbox: the item layout and its rules, which writers
// outside this repository use too; `make lint` checks it);
// DynamoDB, SQS and SES live in adapter packages named after them.
package dispatch
