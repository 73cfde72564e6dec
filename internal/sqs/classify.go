package sqs

import (
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
)

// classify is sqsspec.Classify.
func classify(op string, err error) *dispatch.Error { return sqsspec.Classify(op, err) }
