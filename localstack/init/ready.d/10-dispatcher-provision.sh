#!/bin/bash
# LocalStack init hook (ready stage): create Dispatcher's table, queues and
# SES resources from infra/template.yaml with the project's own provisioner.
set -euo pipefail
export AWS_ENDPOINT_URL=http://localhost:4566
export AWS_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
if [ ! -x /opt/dispatcher/dispatcher-local ]; then
  echo "dispatcher: /opt/dispatcher/dispatcher-local is missing; start LocalStack with 'make localstack-up'" >&2
  exit 1
fi
/opt/dispatcher/dispatcher-local provision \
  -stack "${DISPATCHER_STACK:-dispatcher-local}" \
  -template /opt/dispatcher/template.yaml
