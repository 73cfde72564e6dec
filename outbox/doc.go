// Package outbox writes Dispatcher outbox items inside your own DynamoDB
// transaction, so that a state change of yours and the events and emails it
// causes are committed together, and Dispatcher's relay delivers them.
//
// The dual write it removes: your function updates its own table, then
// publishes an event or sends an email; a crash between the two loses the
// send, a retry sends it twice. With this package the send becomes an
// outbox item written in the SAME TransactWriteItems as your update. Your
// table keeps your state under your key schema; the outbox items go to
// Dispatcher's table (the stack's TableName output). A DynamoDB transaction
// spans tables of one account and region, so both commit or neither does.
// Dispatcher's table stream feeds the relay, which sends each event to the
// events queue as a CloudEvent and each email through SES, at least once
// and in version order per aggregate.
//
// # What you write
//
// An [Aggregate] names the thing that changed: its type, its id and its
// version after the change. Its [Effect]s are the [Event]s and [Email]s the
// change causes. [Writer.Items] turns them into the [types.TransactWriteItem]
// values you append to your own TransactWriteItemsInput, and returns the
// event ids (UUIDv7) it gave them. Each item is validated with the rules the
// relay applies, so an item the relay would park is refused here, before
// anything is written; each Put carries the condition that fails the whole
// transaction when an item already exists for the same aggregate, version
// and position.
//
// Emails are sent as written: give the subject and bodies ([Email]), or
// render them from your own templates with the emailtemplate package of this
// module (emailtemplate.Set.Email), whose rules are those of Dispatcher's
// command API.
//
// # What you must guarantee
//
//   - The version grows by at least one per change of an aggregate, and two
//     changes never write the same version: the relay delivers an
//     aggregate's items in version order, and a second transaction for a
//     version already written fails (ConditionalCheckFailed on the outbox
//     item). Your own optimistic-lock version is the natural one: the
//     condition on your item (version = :read) and the outbox items of
//     version :read+1 commit together or not at all.
//   - A call whose outcome you do not know (a timeout) is retried with the
//     SAME input and the same ClientRequestToken (DynamoDB applies it at
//     most once within 10 minutes), not with a second Items call: that one
//     has new event ids, and if the first committed, the retry fails on the
//     condition and you cannot tell. When the token's window has passed,
//     read your own item to learn whether the change is there.
//   - Dispatcher's table and yours are in the same account and region.
//   - The function that writes has the stack's OutboxWriterPolicy (PutItem
//     and ConditionCheckItem on Dispatcher's table only).
//   - Writer.Shards is at most [MaxShards]; any value in range is found by
//     the sweeper, which reads every shard the contract allows.
//
// Items are written PENDING and the relay owns them from then on: do not
// update or delete them. The layout of an item (keys, attributes, index
// attributes, schemaVersion) is the contract any writer, in any language,
// follows: docs/outbox-contract.md in the repository. [SchemaVersion] is the
// version of that contract this package writes.
//
// The package imports only the standard library and the AWS SDK's DynamoDB
// attribute types (service/dynamodb/types): no AWS client, so you bring
// your own (and its retries, credentials and tracing).
package outbox
