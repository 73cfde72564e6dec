package provision

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
)

// queueAttributes are the AWS::SQS::Queue properties that are SQS queue
// attributes of the same name.
var queueAttributes = map[string]bool{
	"ContentBasedDeduplication": true, "DeduplicationScope": true, "DelaySeconds": true,
	"FifoQueue": true, "FifoThroughputLimit": true, "KmsDataKeyReusePeriodSeconds": true,
	"KmsMasterKeyId": true, "MaximumMessageSize": true, "MessageRetentionPeriod": true,
	"ReceiveMessageWaitTimeSeconds": true, "RedriveAllowPolicy": true, "RedrivePolicy": true,
	"SqsManagedSseEnabled": true, "VisibilityTimeout": true,
}

func (p *provisioner) queue(ctx context.Context, id string, props map[string]any) (*Resource, error) {
	res := &Resource{Attributes: map[string]string{}}
	fifo := truthy(props["FifoQueue"])
	name, _ := props["QueueName"].(string)
	if name == "" {
		max := 80
		if fifo {
			max -= len(".fifo")
		}
		name = generatedName(p.stack.Eval.StackName(), id, max)
		if fifo {
			name += ".fifo"
		}
	}
	if fifo != strings.HasSuffix(name, ".fifo") {
		return nil, fmt.Errorf("queue name %q: a FIFO queue's name must end in .fifo, and only a FIFO queue's", name)
	}
	attrs := map[string]string{}
	var keys []string
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := props[k]
		switch {
		case k == "QueueName":
		case k == "Tags":
		case queueAttributes[k]:
			s, err := attrString(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			// FifoQueue=false is invalid on SQS's side; absence means standard.
			if k == "FifoQueue" && s == "false" {
				continue
			}
			attrs[k] = s
		default:
			res.Notes = append(res.Notes, "property "+k+" is not applied locally")
		}
	}
	in := &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs}
	if tags, ok := props["Tags"].([]any); ok {
		in.Tags = map[string]string{}
		for _, t := range tags {
			m, _ := t.(map[string]any)
			k, _ := m["Key"].(string)
			v, _ := m["Value"].(string)
			in.Tags[k] = v
		}
	}
	out, err := p.sqs.CreateQueue(ctx, in)
	if err != nil {
		return nil, err
	}
	url := aws.ToString(out.QueueUrl)
	got, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       out.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		return nil, err
	}
	for k, want := range attrs {
		have, ok := got.Attributes[k]
		if !ok {
			res.Notes = append(res.Notes, fmt.Sprintf("attribute %s=%s is not reported back by this endpoint", k, want))
		} else if !sameAttr(k, have, want) {
			return nil, fmt.Errorf("queue %s has %s=%s, the template says %s", name, k, have, want)
		}
	}
	sort.Strings(res.Notes)
	res.PhysicalID = url
	res.Attributes["Arn"] = got.Attributes[string(types.QueueAttributeNameQueueArn)]
	res.Attributes["QueueName"] = name
	res.Attributes["QueueUrl"] = url
	return res, nil
}

// attrString renders a property as SQS wants it: policies as JSON strings,
// everything else as its scalar text.
func attrString(v any) (string, error) {
	switch v.(type) {
	case map[string]any, []any:
		return cfn.JSON(v)
	}
	return cfn.String(v)
}

func sameAttr(k, have, want string) bool {
	if have == want {
		return true
	}
	if k == "RedrivePolicy" || k == "RedriveAllowPolicy" {
		return jsonEqual(have, want)
	}
	return strings.EqualFold(have, want)
}
