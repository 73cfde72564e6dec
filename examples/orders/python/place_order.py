#!/usr/bin/env python3
"""Place an order from Python: the order and its outbox items in ONE transaction.

A writer in another language than Go, following only Dispatcher's outbox
contract (docs/outbox-contract.md): the order goes to this service's own
Orders table (key: orderId), its OrderPlaced event and confirmation email to
Dispatcher's table, in one transact_write_items. Dispatcher's relay delivers
them.

    ORDERS_TABLE=Orders DISPATCHER_TABLE=dispatcher-OutboxTable \\
        python place_order.py o-1001 ada@example.com Ada 42.00

boto3 finds its endpoint, region and credentials as usual (AWS_ENDPOINT_URL_DYNAMODB
for a local DynamoDB). Exit codes: 0 placed (the event ids on stdout, as JSON),
2 bad input, 3 already placed, 4 version conflict, 1 anything else.
"""

import datetime
import html
import json
import os
import re
import sys
import uuid

import boto3

SCHEMA_VERSION = 1
SHARDS = 8  # any number 1 to 64: the sweeper reads all 64 shards
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
AMOUNT = re.compile(r"[0-9]+\.[0-9]{2}")
EMAIL = re.compile(r"[!-~]{1,64}@[A-Za-z0-9.-]{1,253}")


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def sort_key(version: int, seq: int) -> str:
    return f"OUTBOX#{version:020d}#{seq:03d}"


def outbox_item(aggregate_id, version, seq, event_type, target, payload, now):
    """One outbox item, attribute by attribute as the contract lists them."""
    sk = sort_key(version, seq)
    event_id = str(uuid.uuid4())
    created = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    shard = fnv1a32((sk + aggregate_id).encode()) % SHARDS
    item = {
        "pk": {"S": "AGG#" + aggregate_id},
        "sk": {"S": sk},
        "kind": {"S": "outbox"},
        "schemaVersion": {"N": str(SCHEMA_VERSION)},
        "aggregateId": {"S": aggregate_id},
        "aggregateType": {"S": "Order"},
        "version": {"N": str(version)},
        "seq": {"N": str(seq)},
        "eventId": {"S": event_id},
        "eventType": {"S": event_type},
        "target": {"S": target},
        "payload": {"S": json.dumps(payload, separators=(",", ":"))},
        "status": {"S": "PENDING"},
        "attempts": {"N": "0"},
        "createdAt": {"S": created},
        # The index attributes: the sweeper's shard and time, the order check's key.
        "undeliveredShard": {"S": f"PENDING#{shard}"},
        "undeliveredSince": {"S": f"{created}#{event_id}"},
        "pendingSk": {"S": sk},
    }
    return event_id, {
        "Put": {
            "TableName": os.environ["DISPATCHER_TABLE"],
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def place_order(client, order_id, email, name, total):
    now = datetime.datetime.now(datetime.timezone.utc)
    event_id, event = outbox_item(
        order_id, 1, 0, "OrderPlaced", "events",
        {"data": {"orderId": order_id, "total": total}}, now)
    email_id, mail = outbox_item(
        order_id, 1, 1, "email.order-confirmation", "email",
        {
            "to": [email],
            "template": "order-confirmation",
            "subject": f"Order {order_id} is confirmed",
            "text": f"Hello {name},\n\nthank you for your order {order_id} of {total}.\n",
            "html": f"<p>Hello {html.escape(name)},</p><p>thank you for your order "
                    f"<b>{order_id}</b> of {total}.</p>\n",
        },
        now)
    order = {
        "Put": {
            "TableName": os.environ["ORDERS_TABLE"],
            "Item": {
                "orderId": {"S": order_id}, "email": {"S": email}, "name": {"S": name},
                "total": {"S": total}, "status": {"S": "PLACED"}, "version": {"N": "1"},
            },
            "ConditionExpression": "attribute_not_exists(orderId)",
        }
    }
    client.transact_write_items(TransactItems=[order, event, mail])
    return [event_id, email_id]


def main(argv):
    if len(argv) != 5:
        print("usage: place_order.py ORDER_ID EMAIL NAME TOTAL", file=sys.stderr)
        return 2
    order_id, email, name, total = argv[1:]
    if not ID.fullmatch(order_id) or not EMAIL.fullmatch(email) or not name.strip() \
            or not AMOUNT.fullmatch(total) or any(ord(c) < 32 for c in name):
        print("bad input: want an order id ([A-Za-z0-9_-], at most 64), one address,"
              " a name and an amount such as 42.00", file=sys.stderr)
        return 2
    client = boto3.client("dynamodb")
    try:
        ids = place_order(client, order_id, email, name, total)
    except client.exceptions.TransactionCanceledException as e:
        codes = [r.get("Code") for r in e.response.get("CancellationReasons", [])]
        if codes and codes[0] == "ConditionalCheckFailed":
            print(f"order {order_id} is already placed", file=sys.stderr)
            return 3
        if "ConditionalCheckFailed" in codes:
            print(f"order {order_id}: another change wrote version 1 first", file=sys.stderr)
            return 4
        raise
    print(json.dumps({"orderId": order_id, "eventIds": ids}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
