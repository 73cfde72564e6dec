"""Runs the AWS SAM translator (the AWS::Serverless-2016-10-31 transform that
CloudFormation itself runs at deploy time) on infra/template.yaml under every
combination of the parameters that change the template's shape, and writes the
resulting CloudFormation, one JSON file per combination.

    python tools/transform.py infra/template.yaml OUT_DIR

`sam validate --lint` does not run the transform; `sam validate` runs it under
the default parameters only. A template that the transform refuses under one
parameter set does not deploy with it: this checks them all. The outputs are
what the Go template tests (infra/transformed_test.go) and cfn-lint read.

Exits 1, naming the parameter set and the translator's error, on the first
set the transform refuses.
"""

import itertools
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The parameters whose values change which resources exist or how they are
# built (conditions, !If). Each value of each is tried with each of the others.
SHAPE = {
    "ApiAuth": ["webhook", "iam"],
    "EventsQueueType": ["fifo", "standard"],
    "CreateSenderIdentity": ["true", "false"],
    "EnableSweepSchedule": ["true", "false"],
}

# Parameters whose values change the grants and what is created, tried
# together as one more axis (each set with and without them): sending as
# domain and address identities, and reusing a configuration set and an
# events queue (FIFO or standard, as EventsQueueType says) instead of
# creating them; and a caller registry (its SSM path). None of them changes
# what the others do.
REUSE = {
    # As many as the grant has slots (5), so that each slot must name its own.
    "SenderIdentities": "shop.example,ops@other.example,dispatcher.example.com,billing.example,no-reply@news.example",
    "ExistingConfigurationSetName": "shared-emails",
    "ExistingEventsQueueArn": "arn:aws:sqs:us-east-1:123456789012:shared-events",
    # A caller registry: its read and decrypt grants exist only with it.
    "CallersParameterPath": "/dispatcher/shop/callers",
}

# The policies SAM may attach by name; the translator only needs their ARNs.
MANAGED = {
    name: "arn:aws:iam::aws:policy/service-role/" + name
    for name in ["AWSLambdaBasicExecutionRole", "AWSLambdaDynamoDBExecutionRole", "AWSLambdaSQSQueueExecutionRole"]
}


class Policies:
    def load(self):
        return MANAGED


def combinations():
    names = sorted(SHAPE)
    for values in itertools.product(*(SHAPE[n] for n in names)):
        params = dict(zip(names, values))
        yield params, dict(params)
        reuse = dict(params, **REUSE)
        if params["EventsQueueType"] == "fifo":
            reuse["ExistingEventsQueueArn"] += ".fifo"
        yield dict(params, Reuse="yes"), reuse


def name_of(axes):
    return "-".join(f"{k}={v}" for k, v in sorted(axes.items()))


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out_dir = argv[1], argv[2]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(src, encoding="utf-8") as f:
        text = f.read()
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    index = {}
    for axes, params in combinations():
        tmpl = yaml_parse(text)
        # What `sam package` does before the transform: code lives in S3.
        for res in tmpl.get("Resources", {}).values():
            if res.get("Type") == "AWS::Serverless::Function":
                res["Properties"]["CodeUri"] = "s3://dispatcher-artifacts/bootstrap.zip"
            if res.get("Type") == "AWS::Serverless::LayerVersion":
                res["Properties"]["ContentUri"] = "s3://dispatcher-artifacts/layer.zip"
        given = dict(params)
        # Parameters without a default must be given; these are the
        # template's optional secrets sources, left empty.
        for pname, p in tmpl.get("Parameters", {}).items():
            if "Default" not in p and pname not in given:
                given[pname] = ""
        try:
            out = transform(tmpl, given, Policies())
        except Exception as e:  # the translator raises its own exception types
            print(f"transform: {src} under {name_of(axes)}: {e}", file=sys.stderr)
            return 1
        path = os.path.join(out_dir, name_of(axes) + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, sort_keys=True, default=str)
        index[name_of(axes)] = params
        n += 1
    # The parameter values of each set, for the tests that evaluate them
    # (not a template: cfn-lint reads *.json, hence another extension).
    with open(os.path.join(out_dir, "parameters.index"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    print(f"transform: {src}: the SAM transform accepts all {n} parameter sets; CloudFormation in {out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
