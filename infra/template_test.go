// Package infra_test checks infra/template.yaml: what users deploy and what
// the local stack is built from. No `sam deploy` runs here, so these tests
// are what stands between a template mistake and production.
package infra_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/env"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

func load(t *testing.T) *cfn.Template {
	t.Helper()
	tmpl, err := cfn.ParseFile("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// resolver answers every Ref and GetAtt of a resource the template declares
// (and of the implicit ones SAM creates), with placeholders.
type resolver struct{ t *cfn.Template }

func (r resolver) Ref(id string) (string, error) { return "ref:" + id, nil }
func (r resolver) GetAtt(id, attr string) (any, error) {
	return fmt.Sprintf("arn:aws:test:::%s.%s", id, attr), nil
}

// variants are the parameter sets every check runs under.
var variants = map[string]map[string]string{
	"defaults": nil,
	"standard queue, IAM auth, secrets in Secrets Manager, alarm email": {
		"EventsQueueType": "standard", "ApiAuth": "iam", "WebhookSecretsArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hooks-AbCdEf", "AlarmEmail": "ops@example.com",
	},
	"secrets in SSM, no identity, no sweep": {
		"WebhookSecretsParameter": "dispatcher/webhook-secrets", "CreateSenderIdentity": "false", "EnableSweepSchedule": "false",
	},
}

func evaluator(t *testing.T, tmpl *cfn.Template, params map[string]string) *cfn.Evaluator {
	t.Helper()
	ev, err := tmpl.NewEvaluator(cfn.Stack{Name: "prod", Region: "us-east-1", AccountID: "123456789012", Parameters: params, Resolver: resolver{tmpl}})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func props(t *testing.T, tmpl *cfn.Template, ev *cfn.Evaluator, id string) map[string]any {
	t.Helper()
	r, ok := tmpl.Resources[id]
	if !ok {
		t.Fatalf("no resource %s", id)
	}
	v, err := ev.Eval(r.Properties)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	m, _ := v.(map[string]any)
	return m
}

func TestEveryReferenceResolves(t *testing.T) {
	tmpl := load(t)
	// Refs must name a parameter, a pseudo parameter or a declared resource.
	for name, params := range variants {
		t.Run(name, func(t *testing.T) {
			ev := evaluator(t, tmpl, params)
			for id, r := range tmpl.Resources {
				for _, dep := range append(tmpl.Dependencies(r.Properties), r.DependsOn...) {
					if _, ok := tmpl.Resources[dep]; !ok {
						t.Errorf("%s refers to unknown resource %s", id, dep)
					}
				}
				if r.Condition != "" {
					if _, err := ev.Condition(r.Condition); err != nil {
						t.Errorf("%s: %v", id, err)
					}
				}
				if _, err := ev.Eval(r.Properties); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
			for id, o := range tmpl.Outputs {
				if _, err := ev.Eval(o); err != nil {
					t.Errorf("output %s: %v", id, err)
				}
			}
		})
	}
}

// statements returns a function's evaluated IAM statements.
func statements(t *testing.T, tmpl *cfn.Template, ev *cfn.Evaluator, fn string) []map[string]any {
	t.Helper()
	var out []map[string]any
	// A function with a Role of its own: that role's inline policies.
	if ga, ok := tmpl.Resources[fn].Properties["Role"].(map[string]any); ok {
		att, _ := ga["Fn::GetAtt"].([]any)
		if len(att) != 2 {
			t.Fatalf("%s: Role must be !GetAtt <Role>.Arn", fn)
		}
		for _, p := range asList(props(t, tmpl, ev, att[0].(string))["Policies"]) {
			doc := p.(map[string]any)["PolicyDocument"].(map[string]any)
			for _, s := range asList(doc["Statement"]) {
				out = append(out, s.(map[string]any))
			}
		}
		return out
	}
	for _, p := range asList(props(t, tmpl, ev, fn)["Policies"]) {
		m, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("%s: policy %v is not an inline policy document (SAM policy templates grant more than we call)", fn, p)
		}
		for _, s := range asList(m["Statement"]) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func asList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

// The SDK operations each function's code calls, found in its source files,
// and what IAM calls them. A function's packages are named explicitly: the
// shared adapters hold operations of several functions, by file.
var functionSources = map[string][]string{
	"CommandFunction":     {"internal/apigw", "internal/command", "internal/dynamo/store.go", "internal/webhook/aws.go", "internal/commandqueue/enqueue.go", "internal/sqs/signed/signed.go", "internal/ratelimit", "internal/caller/ssm.go"},
	"StreamRelayFunction": {"internal/relay", "internal/delivery", "internal/dynamo/outbox.go", "internal/sqs/sqs.go", "internal/ses/ses.go", "internal/app/deliveryfn/pace.go"},
	"DLQReplayFunction":   {"internal/replay", "internal/delivery", "internal/dynamo/outbox.go", "internal/dynamo/sweep.go", "internal/sqs/sqs.go", "internal/sqs/receive.go", "internal/ses/ses.go", "internal/streams/streams.go", "internal/app/deliveryfn/pace.go"},
	// With ListenToYourselfCommands set (TestEachFunctionIsGrantedExactlyWhatItCalls sets it), the command
	// function also queues commands; without it, it never calls SQS and is granted none.
	"CommandConsumerFunction": {"internal/commandqueue", "internal/command", "internal/dynamo/store.go"},
	// The recovery runs the replay's code (its Recover handler), taking its queue's messages from the
	// event source mapping: it receives and deletes none itself.
	"StreamRecoveryFunction": {"internal/replay", "internal/delivery", "internal/dynamo/outbox.go", "internal/dynamo/sweep.go", "internal/sqs/sqs.go", "internal/ses/ses.go", "internal/streams/streams.go", "internal/app/deliveryfn/pace.go"},
}

// esmExtras are granted for the event source mapping, which reads the stream
// with the function's role; the function's own code does not call them.
var esmExtras = map[string][]string{
	"StreamRelayFunction": {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"},
	// The SQS event source mapping polls the commands queue with the consumer's role.
	"CommandConsumerFunction": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"},
	// ... and the recovery queue with the recovery's.
	"StreamRecoveryFunction": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"},
}

// viaService are granted for a service that acts with the function's
// rights: SSM decrypts the callers' SecureString parameters with the
// command function's kms:Decrypt (TestTheCallerRegistryIsReadOnlyWhereItIs).
var viaService = map[string][]string{"CommandFunction": {"kms:Decrypt"}}

// logActions are what the Lambda service does with every function's role:
// write the function's logs. Each role grants them itself, on the
// function's own log group (TestEachFunctionWritesOnlyItsOwnLogGroup).
var logActions = []string{"logs:CreateLogStream", "logs:PutLogEvents"}

var service = map[string]string{
	"dynamodb": "dynamodb", "dynamodbstreams": "dynamodb", "sqsapi": "sqs", "sesapi": "ses",
	"secretsmanager": "secretsmanager", "ssm": "ssm",
}

var inputLiteral = regexp.MustCompile(`\b(\w+)\.(\w+)Input\{`)

// signedCall finds the calls made with one signed request (internal/awsjson)
// instead of an SDK client: s.c.Call(ctx, <service>, "<Operation>", ...).
var signedCall = regexp.MustCompile(`\.Call\(ctx, (\w+), "(\w+)"`)

var signedService = map[string]string{"secretsManager": "secretsmanager", "parameterStore": "ssm", "sqsService": "sqs"}

// sources returns the non-test Go source at p (a file, or a directory's
// files), path relative to the repository, by file name.
func sources(t *testing.T, p string) map[string][]byte {
	t.Helper()
	files := []string{filepath.Join("..", p)}
	if !strings.HasSuffix(p, ".go") {
		files, _ = filepath.Glob(filepath.Join("..", p, "*.go"))
	}
	if len(files) == 0 {
		t.Fatalf("no source under %s", p)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

func usedActions(t *testing.T, paths []string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, p := range paths {
		for f, b := range sources(t, p) {
			for _, m := range signedCall.FindAllStringSubmatch(string(b), -1) {
				svc, ok := signedService[m[1]]
				if !ok {
					t.Fatalf("%s: a signed call to %s, which signedService does not map to an IAM service", f, m[1])
				}
				set[svc+":"+m[2]] = true
			}
			for _, m := range inputLiteral.FindAllStringSubmatch(string(b), -1) {
				svc, ok := service[m[1]]
				if !ok {
					continue
				}
				op := m[2]
				switch op {
				case "TransactWriteItems":
					op = "PutItem" // the command's transactions hold Puts only
				case "SendMessageBatch":
					op = "SendMessage"
				}
				set[svc+":"+op] = true
			}
		}
	}
	var out []string
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func TestEachFunctionIsGrantedExactlyWhatItCalls(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, map[string]string{"WebhookSecretsArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "WebhookSecretsParameter": "x", "ListenToYourselfCommands": "DepositFunds", "CallersParameterPath": "/dispatcher/prod/callers"})
	for fn, src := range functionSources {
		t.Run(fn, func(t *testing.T) {
			granted := map[string]bool{}
			for _, s := range statements(t, tmpl, ev, fn) {
				if s["Effect"] != "Allow" {
					t.Errorf("statement %v is not an Allow", s["Sid"])
				}
				for _, a := range asList(s["Action"]) {
					a := a.(string)
					if strings.Contains(a, "*") {
						t.Errorf("wildcard action %s", a)
					}
					granted[a] = true
				}
			}
			used := usedActions(t, src)
			for _, a := range used {
				if !granted[a] {
					t.Errorf("the code calls %s but the role does not grant it", a)
				}
			}
			for a := range granted {
				if !slices.Contains(used, a) && !slices.Contains(esmExtras[fn], a) && !slices.Contains(viaService[fn], a) && !slices.Contains(logActions, a) {
					t.Errorf("the role grants %s, which the code never calls", a)
				}
			}
		})
	}
}

// Every function has a role of its own, which writes the function's log
// group and no other: a function with SAM's role gets
// AWSLambdaBasicExecutionRole, whose logs actions are on every log group of
// the account.
func TestEachFunctionWritesOnlyItsOwnLogGroup(t *testing.T) {
	tmpl := load(t)
	for name, params := range variants {
		ev := evaluator(t, tmpl, params)
		for fn := range functionSources {
			t.Run(name+"/"+fn, func(t *testing.T) {
				if _, ok := tmpl.Resources[fn].Properties["Role"]; !ok {
					t.Fatalf("%s has no Role of its own: SAM would attach AWSLambdaBasicExecutionRole (logs on every log group)", fn)
				}
				lc, _ := props(t, tmpl, ev, fn)["LoggingConfig"].(map[string]any)
				group, _ := lc["LogGroup"].(string)
				own, ok := strings.CutPrefix(group, "ref:")
				if !ok {
					t.Fatalf("LoggingConfig.LogGroup = %v, want a log group of the stack", lc["LogGroup"])
				}
				want := fmt.Sprintf("arn:aws:test:::%s.Arn", own)
				granted := map[string]bool{}
				for _, s := range statements(t, tmpl, ev, fn) {
					for _, a := range asList(s["Action"]) {
						if !strings.HasPrefix(a.(string), "logs:") {
							continue
						}
						granted[a.(string)] = true
						for _, r := range asList(s["Resource"]) {
							if r != want {
								t.Errorf("statement %v grants %s on %v, want only %s", s["Sid"], a, r, want)
							}
						}
					}
				}
				for _, a := range logActions {
					if !granted[a] {
						t.Errorf("the role does not grant %s: the function could not write its logs", a)
					}
				}
			})
		}
	}
}

func TestPoliciesNameOnlyThisStacksResources(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, map[string]string{"WebhookSecretsArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "WebhookSecretsParameter": "x", "CallersParameterPath": "/dispatcher/prod/callers"})
	for fn := range functionSources {
		for _, s := range statements(t, tmpl, ev, fn) {
			for _, r := range asList(s["Resource"]) {
				res := r.(string)
				switch {
				case readsSendQuota(s):
				case res == "*" || strings.HasSuffix(res, ":*"):
					t.Errorf("%s %v: resource %q is a wildcard", fn, s["Sid"], res)
				case strings.HasPrefix(res, "arn:aws:test:::"), res == "arn:aws:secretsmanager:us-east-1:123456789012:secret:x":
				case strings.HasPrefix(res, "arn:aws:ses:us-east-1:123456789012:identity/"), strings.HasPrefix(res, "arn:aws:ses:us-east-1:123456789012:configuration-set/ref:"):
				case res == "arn:aws:ssm:us-east-1:123456789012:parameter/x", res == "arn:aws:ssm:us-east-1:123456789012:parameter/dispatcher/prod/callers":
				// Any key of the account, only through SSM (TestTheCallerRegistryIsReadOnlyWhereItIs).
				case res == "arn:aws:kms:us-east-1:123456789012:key/*" && s["Sid"] == "DecryptCallersThroughSSM":
				default:
					t.Errorf("%s %v: resource %q is not one of this stack's", fn, s["Sid"], res)
				}
			}
		}
	}
}

func TestEverythingThatStoresDataIsEncrypted(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	for id, r := range tmpl.Resources {
		p := props(t, tmpl, ev, id)
		switch r.Type {
		case "AWS::DynamoDB::Table":
			if sse, _ := p["SSESpecification"].(map[string]any); sse == nil || sse["SSEEnabled"] != true {
				t.Errorf("table %s is not encrypted with KMS", id)
			}
		case "AWS::SQS::Queue":
			if p["SqsManagedSseEnabled"] != true && p["KmsMasterKeyId"] == nil {
				t.Errorf("queue %s is not encrypted", id)
			}
		case "AWS::SNS::Topic":
			if p["KmsMasterKeyId"] == nil {
				t.Errorf("topic %s is not encrypted", id)
			}
		}
	}
}

// A queued command is a body of up to dispatch.MaxBodyBytes plus its
// metadata: the commands queue, and its DLQ (a redrive moves messages both
// ways), must take the size the code sends (commandqueue.MaxMessageBytes).
func TestTheCommandsQueueTakesTheMessagesTheCodeSends(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	for _, id := range []string{"CommandsQueue", "CommandsDeadLetterQueue"} {
		if got := fmt.Sprint(props(t, tmpl, ev, id)["MaximumMessageSize"]); got != fmt.Sprint(commandqueue.MaxMessageBytes) {
			t.Errorf("%s MaximumMessageSize = %s, want %d (commandqueue.MaxMessageBytes)", id, got, commandqueue.MaxMessageBytes)
		}
	}
}

func TestTheStreamTriggerIsTheOneDesignNames(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	events := props(t, tmpl, ev, "StreamRelayFunction")["Events"].(map[string]any)
	e := events["OutboxStream"].(map[string]any)
	if e["Type"] != "DynamoDB" {
		t.Fatalf("OutboxStream is %v", e["Type"])
	}
	p := e["Properties"].(map[string]any)
	num := func(k string) int64 { n, _ := p[k].(int64); return n }
	checks := []struct {
		name string
		ok   bool
	}{
		{"reads the table's stream", p["Stream"] == "arn:aws:test:::OutboxTable.StreamArn"},
		{"bisects a failing batch", p["BisectBatchOnFunctionError"] == true},
		{"bounds retries (1..10)", num("MaximumRetryAttempts") >= 1 && num("MaximumRetryAttempts") <= 10},
		{"bounds record age below the 24 h retention", num("MaximumRecordAgeInSeconds") >= 60 && num("MaximumRecordAgeInSeconds") < 86400},
		{"reports partial batch failures", slices.Contains(asList(p["FunctionResponseTypes"]), any("ReportBatchItemFailures"))},
		{"send discarded batches to the stream recovery's queue", p["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)["Destination"] == "arn:aws:test:::StreamRecoveryQueue.Arn"},
		{"has a batch size and window", num("BatchSize") > 0 && num("BatchSize") <= 1000 && p["MaximumBatchingWindowInSeconds"] != nil},
		{"sets a parallelization factor", num("ParallelizationFactor") >= 1 && num("ParallelizationFactor") <= 10},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("the stream trigger does not %s: %v", c.name, p)
		}
	}
	filters := p["FilterCriteria"].(map[string]any)["Filters"].([]any)
	pattern := filters[0].(map[string]any)["Pattern"].(string)
	if !strings.Contains(pattern, `"eventName":["INSERT"]`) || !strings.Contains(pattern, `{"prefix":"OUTBOX#"}`) {
		t.Errorf("filter %s does not keep outbox INSERTs only", pattern)
	}
}

// Recovery needs no person: the mapping's on-failure records go to a queue
// of their own, which the stream recovery takes as they come (reporting
// what it could not settle), with a timeout that waits out a default email
// lease within one invocation; what it cannot settle in a few tries goes to
// the DLQ, for a person.
func TestTheStreamRecoveryTakesWhatTheMappingGivesUpOn(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	q := props(t, tmpl, ev, "StreamRecoveryQueue")
	fn := props(t, tmpl, ev, "StreamRecoveryFunction")
	e := fn["Events"].(map[string]any)["Recovery"].(map[string]any)
	p := e["Properties"].(map[string]any)
	num := func(v any) int64 { n, _ := v.(int64); return n }
	redrive, _ := q["RedrivePolicy"].(map[string]any)
	defaultLease := int64(120) // EMAIL_LEASE_SECONDS's default (docs/parameters.md)
	checks := []struct {
		name string
		ok   bool
	}{
		{"is a standard queue (an on-failure destination must be)", q["FifoQueue"] == nil},
		{"hands what it cannot settle to the DLQ after a few tries", redrive["deadLetterTargetArn"] == "arn:aws:test:::DeadLetterQueue.Arn" && num(redrive["maxReceiveCount"]) >= 2 && num(redrive["maxReceiveCount"]) <= 10},
		{"keeps its records as long as the DLQ does", num(q["MessageRetentionPeriod"]) == 1209600},
		{"is read by the recovery's SQS event", e["Type"] == "SQS" && p["Queue"] == "arn:aws:test:::StreamRecoveryQueue.Arn"},
		{"reports partial batch failures", slices.Contains(asList(p["FunctionResponseTypes"]), any("ReportBatchItemFailures"))},
		{"waits out a default email lease within one invocation", num(fn["Timeout"]) >= defaultLease+30},
		{"hides a record in work at least as long as the function may run (Lambda requires it)", num(q["VisibilityTimeout"]) >= num(fn["Timeout"])},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("the stream recovery does not: %s (queue %v, event %v, timeout %v)", c.name, q, p, fn["Timeout"])
		}
	}
}

func TestEachAlarmWatchesItsMetric(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	want := map[string]struct {
		namespace, metric string
		threshold         string
	}{
		"DLQDepthAlarm":             {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "0"},
		"RelayIteratorAgeAlarm":     {"AWS/Lambda", "IteratorAge", "300000"},
		"UndeliveredAgeAlarm":       {"Dispatcher", "OldestUndeliveredAge", "900"},
		"SendingPausedAlarm":        {"Dispatcher", "AccountWideStop", "0"},
		"FailedItemsAlarm":          {"Dispatcher", "OldestFailedAge", "0"},
		"Api5xxRateAlarm":           {"AWS/ApiGateway", "5xx", "1"},
		"CommandErrorsAlarm":        {"AWS/Lambda", "Errors", "0"},
		"StreamRelayErrorsAlarm":    {"AWS/Lambda", "Errors", "0"},
		"DLQReplayErrorsAlarm":      {"AWS/Lambda", "Errors", "0"},
		"CommandThrottlesAlarm":     {"AWS/Lambda", "Throttles", "0"},
		"StreamRelayThrottlesAlarm": {"AWS/Lambda", "Throttles", "0"},
		"DLQReplayThrottlesAlarm":   {"AWS/Lambda", "Throttles", "0"},
		"StreamRecoveryAgeAlarm":    {"AWS/SQS", "ApproximateAgeOfOldestMessage", "240"},
		"StreamRecoveryErrorsAlarm": {"AWS/Lambda", "Errors", "0"},
		"SesBounceRateAlarm":        {"AWS/SES", "Reputation.BounceRate", "0.04"},
		"SesComplaintRateAlarm":     {"AWS/SES", "Reputation.ComplaintRate", "0.0008"},
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			r, ok := tmpl.Resources[id]
			if !ok || r.Type != "AWS::CloudWatch::Alarm" {
				t.Fatalf("no alarm %s", id)
			}
			p := props(t, tmpl, ev, id)
			ns, metric := p["Namespace"], p["MetricName"]
			if ns == nil {
				for _, m := range asList(p["Metrics"]) {
					if ms, ok := m.(map[string]any)["MetricStat"].(map[string]any); ok {
						mm := ms["Metric"].(map[string]any)
						if mm["MetricName"] == w.metric {
							ns, metric = mm["Namespace"], mm["MetricName"]
						}
					}
				}
			}
			th, _ := cfn.String(p["Threshold"])
			if ns != w.namespace || metric != w.metric || th != w.threshold {
				t.Errorf("watches %v/%v > %s, want %s/%s > %s", ns, metric, th, w.namespace, w.metric, w.threshold)
			}
			if len(asList(p["AlarmActions"])) == 0 || asList(p["AlarmActions"])[0] != "ref:AlarmTopic" {
				t.Errorf("does not notify the alarm topic")
			}
		})
	}
}

func TestEveryFunctionIsBuiltByTheMakefileForArm64(t *testing.T) {
	tmpl := load(t)
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tmpl.ResourcesOfType("AWS::Serverless::Function") {
		r := tmpl.Resources[id]
		if r.Metadata["BuildMethod"] != "makefile" {
			t.Errorf("%s: BuildMethod %v", id, r.Metadata["BuildMethod"])
		}
		if !strings.Contains(string(mk), "\nbuild-"+id+":") {
			t.Errorf("the Makefile has no build-%s target for sam build", id)
		}
	}
	g := tmpl.Globals["Function"].(map[string]any)
	if g["Runtime"] != "provided.al2023" || fmt.Sprint(g["Architectures"]) != "[arm64]" {
		t.Errorf("globals: runtime %v, architectures %v", g["Runtime"], g["Architectures"])
	}
}

// The order check reads an aggregate's PENDING and SENDING items with a
// consistent Query: only a local secondary index can be read so, and the
// code names it.
func TestTheOrderIndexIsALocalIndexTheCodeReads(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	p := props(t, tmpl, ev, "OutboxTable")
	var found bool
	for _, x := range asList(p["LocalSecondaryIndexes"]) {
		idx := x.(map[string]any)
		if idx["IndexName"] != dynamo.PendingIndex {
			continue
		}
		found = true
		ks := asList(idx["KeySchema"])
		if len(ks) != 2 || ks[0].(map[string]any)["AttributeName"] != "pk" || ks[1].(map[string]any)["AttributeName"] != "pendingSk" {
			t.Errorf("index %s keys %v, want pk and pendingSk", dynamo.PendingIndex, ks)
		}
		if idx["Projection"].(map[string]any)["ProjectionType"] != "KEYS_ONLY" {
			t.Errorf("index %s projects %v, want KEYS_ONLY", dynamo.PendingIndex, idx["Projection"])
		}
	}
	if !found {
		t.Fatalf("no local secondary index %s on the table", dynamo.PendingIndex)
	}
	for _, fn := range []string{"StreamRelayFunction", "DLQReplayFunction", "StreamRecoveryFunction", "CommandFunction"} {
		var granted bool
		for _, s := range statements(t, tmpl, ev, fn) {
			for _, r := range asList(s["Resource"]) {
				if r, ok := r.(string); ok && strings.HasSuffix(r, "/index/"+dynamo.PendingIndex) && slices.Contains(asList(s["Action"]), any("dynamodb:Query")) {
					granted = true
				}
			}
		}
		if !granted {
			t.Errorf("%s may not Query the index %s", fn, dynamo.PendingIndex)
		}
	}
}

// A FAILED item waits for a person: the schedule sweeps only (PENDING and
// SENDING items); re-sending FAILED ones (modes dlq, failed, all) is on demand.
func TestTheScheduleOnlySweeps(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	events := props(t, tmpl, ev, "DLQReplayFunction")["Events"].(map[string]any)
	for name, e := range events {
		e := e.(map[string]any)
		if e["Type"] != "ScheduleV2" && e["Type"] != "Schedule" {
			continue
		}
		in, _ := e["Properties"].(map[string]any)["Input"].(string)
		var req struct {
			Mode string `json:"mode"`
		}
		if err := json.Unmarshal([]byte(in), &req); err != nil {
			t.Fatalf("schedule %s input %q: %v", name, in, err)
		}
		if req.Mode != "sweep" {
			t.Errorf("schedule %s runs mode %q, want sweep: a schedule must never re-send FAILED items", name, req.Mode)
		}
	}
}

// writerActions are what putting outbox items in a caller's own
// TransactWriteItems needs: IAM has no TransactWriteItems action, DynamoDB
// authorizes each item of a transaction as the action it is (a Put as
// PutItem, a ConditionCheck as ConditionCheckItem).
var writerActions = []string{"dynamodb:PutItem", "dynamodb:ConditionCheckItem"}

// A user's own function attaches OutboxWriterPolicy to write outbox items
// beside its own state (docs/deploy.md): it grants those two actions on the
// outbox table only (no index, no other table, no read, update or delete),
// for partition keys under AGG# only (an IDEMP# record is not an outbox
// item), and PutItem only inside a transaction.
func TestTheOutboxWriterPolicyGrantsOnlyTransactionalWritesOfOutboxItems(t *testing.T) {
	tmpl := load(t)
	r, ok := tmpl.Resources["OutboxWriterPolicy"]
	if !ok || r.Type != "AWS::IAM::ManagedPolicy" {
		t.Fatalf("no AWS::IAM::ManagedPolicy OutboxWriterPolicy")
	}
	for name, params := range variants {
		t.Run(name, func(t *testing.T) {
			ev := evaluator(t, tmpl, params)
			doc, _ := props(t, tmpl, ev, "OutboxWriterPolicy")["PolicyDocument"].(map[string]any)
			granted := map[string]bool{}
			for _, st := range asList(doc["Statement"]) {
				s := st.(map[string]any)
				if s["Effect"] != "Allow" || s["NotAction"] != nil || s["NotResource"] != nil {
					t.Errorf("statement %v: want an Allow with Action and Resource (no NotAction, no NotResource)", s["Sid"])
				}
				for _, res := range asList(s["Resource"]) {
					if res != "arn:aws:test:::OutboxTable.Arn" {
						t.Errorf("statement %v grants on %v, want the outbox table only", s["Sid"], res)
					}
				}
				if len(asList(s["Resource"])) == 0 {
					t.Errorf("statement %v names no resource", s["Sid"])
				}
				cond, _ := s["Condition"].(map[string]any)
				like, _ := cond["ForAllValues:StringLike"].(map[string]any)
				patterns := asList(like["dynamodb:LeadingKeys"])
				if len(patterns) == 0 {
					t.Errorf("statement %v does not limit the partition keys (ForAllValues:StringLike dynamodb:LeadingKeys)", s["Sid"])
				}
				for _, p := range patterns {
					if p, _ := p.(string); !strings.HasPrefix(p, "AGG#") || strings.ContainsAny(strings.TrimSuffix(p, "*"), "*?") {
						t.Errorf("statement %v lets partition keys %q be written, want AGG#... only", s["Sid"], p)
					}
				}
				// ForAllValues is true of a request that names no partition key.
				if null, _ := cond["Null"].(map[string]any); null["dynamodb:LeadingKeys"] != "false" {
					t.Errorf("statement %v does not require a partition key (Null dynamodb:LeadingKeys false): ForAllValues alone passes a request without one", s["Sid"])
				}
				for _, a := range asList(s["Action"]) {
					a, _ := a.(string)
					if !slices.Contains(writerActions, a) {
						t.Errorf("statement %v grants %s, want only %v", s["Sid"], a, writerActions)
					}
					granted[a] = true
					if a == "dynamodb:PutItem" {
						if eq, _ := cond["StringEquals"].(map[string]any); eq["dynamodb:EnclosingOperation"] != "TransactWriteItems" {
							t.Errorf("statement %v grants PutItem outside a transaction (want StringEquals dynamodb:EnclosingOperation TransactWriteItems)", s["Sid"])
						}
					}
				}
			}
			for _, a := range writerActions {
				if !granted[a] {
					t.Errorf("the policy does not grant %s: a user's transaction could not write outbox items", a)
				}
			}
		})
	}
}

// A user's own stack imports the table's name and ARN and the writer policy
// (!ImportValue <stack>-TableName, ...; docs/deploy.md).
func TestTheStackExportsWhatAUsersStackImports(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	for id, want := range map[string]string{
		"TableName":             "ref:OutboxTable",
		"TableArn":              "arn:aws:test:::OutboxTable.Arn",
		"OutboxWriterPolicyArn": "ref:OutboxWriterPolicy",
	} {
		o, ok := tmpl.Outputs[id]
		if !ok {
			t.Errorf("no output %s", id)
			continue
		}
		v, err := ev.Eval(o)
		if err != nil {
			t.Fatalf("output %s: %v", id, err)
		}
		out, _ := v.(map[string]any)
		if out["Value"] != want {
			t.Errorf("output %s = %v, want %s", id, out["Value"], want)
		}
		export, _ := out["Export"].(map[string]any)
		if name := "prod-" + id; export["Name"] != name {
			t.Errorf("output %s is exported as %v, want %s (the stack's name, then the output's)", id, export["Name"], name)
		}
	}
}

// senderIdentitySlots is how many identities the ses:SendEmail grant can
// name: CloudFormation cannot map over a list, so each sending role lists
// this many slots, and SenderIdentities' AllowedPattern takes at most this
// many identities.
const senderIdentitySlots = 5

// sendingFunctions are the functions whose code sends email (the delivery
// engine): exactly these are granted ses:SendEmail.
var sendingFunctions = []string{"StreamRelayFunction", "DLQReplayFunction", "StreamRecoveryFunction"}

// sendGrant returns the identities and configuration sets a function's
// role may ses:SendEmail as.
func sendGrant(t *testing.T, tmpl *cfn.Template, ev *cfn.Evaluator, fn string) (identities, sets []string) {
	t.Helper()
	for _, s := range statements(t, tmpl, ev, fn) {
		if !slices.Contains(asList(s["Action"]), any("ses:SendEmail")) {
			continue
		}
		for _, r := range asList(s["Resource"]) {
			res, _ := r.(string)
			if id, ok := strings.CutPrefix(res, "arn:aws:ses:us-east-1:123456789012:identity/"); ok {
				if !slices.Contains(identities, id) {
					identities = append(identities, id)
				}
			} else if set, ok := strings.CutPrefix(res, "arn:aws:ses:us-east-1:123456789012:configuration-set/"); ok {
				sets = append(sets, set)
			} else {
				t.Errorf("%s: ses:SendEmail on %q, neither an identity nor a configuration set of this account and region", fn, res)
			}
		}
	}
	sort.Strings(identities)
	return identities, sets
}

// readsSendQuota reports whether s is the one statement allowed on "*":
// ReadSendQuota, ses:GetAccount alone, which has no resource type to name.
func readsSendQuota(s map[string]any) bool {
	return s["Sid"] == "ReadSendQuota" && slices.Equal(asList(s["Action"]), []any{"ses:GetAccount"}) && slices.Equal(asList(s["Resource"]), []any{"*"})
}

// The delivery engine paces at the lower of the account's MaxSendRate and
// SesAccountSendRate (deliveryfn.NewPacedEngine): every role that sends may
// read the send quota (ses:GetAccount, nothing more on "*"), and no other.
func TestTheSendingRolesMayReadTheSendQuota(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	for fn := range functionSources {
		var granted bool
		for _, s := range statements(t, tmpl, ev, fn) {
			if slices.Contains(asList(s["Action"]), any("ses:GetAccount")) {
				granted = true
				if !readsSendQuota(s) {
					t.Errorf("%s: ses:GetAccount in %v with %v on %v, want statement ReadSendQuota granting it alone on *", fn, s["Sid"], s["Action"], s["Resource"])
				}
			}
		}
		if sends := slices.Contains(sendingFunctions, fn); granted != sends {
			t.Errorf("%s: may read the send quota: %v, sends email: %v", fn, granted, sends)
		}
	}
}

// The IAM grant follows the identities actually used: SenderIdentities
// (a domain, an address, several), or by default SenderAddress's address
// (a display name is not part of it). It names exactly those identities'
// ARNs, nothing wider, in every role that sends and in no other; the
// functions get the same list (SENDER_IDENTITIES), and the relay's cold
// start accepts the From exactly when one of them covers it.
func TestTheSendGrantFollowsTheSenderIdentities(t *testing.T) {
	tmpl := load(t)
	tests := []struct {
		name   string
		params map[string]string
		want   []string // the identities granted
		covers bool     // the relay starts with this SenderAddress
	}{
		{"by default, the sender's address", nil, []string{"no-reply@dispatcher.example.com"}, true},
		{"a display name is not part of the identity", map[string]string{"SenderAddress": "Shop <no-reply@shop.example>"}, []string{"no-reply@shop.example"}, true},
		{"a domain identity, and nothing wider", map[string]string{"SenderAddress": "Shop <no-reply@shop.example>", "SenderIdentities": "shop.example"}, []string{"shop.example"}, true},
		{"an address identity", map[string]string{"SenderAddress": "no-reply@shop.example", "SenderIdentities": "no-reply@shop.example"}, []string{"no-reply@shop.example"}, true},
		{"a domain and an address", map[string]string{"SenderAddress": "billing@shop.example", "SenderIdentities": "shop.example,ops@other.example"}, []string{"ops@other.example", "shop.example"}, true},
		{"as many identities as there are slots", map[string]string{"SenderAddress": "a@e.example", "SenderIdentities": "a.example,b.example,c@c.example,d.example,e.example"},
			[]string{"a.example", "b.example", "c@c.example", "d.example", "e.example"}, true},
		{"identities that do not cover the sender", map[string]string{"SenderIdentities": "shop.example"}, []string{"shop.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := evaluator(t, tmpl, tt.params)
			for fn := range functionSources {
				ids, sets := sendGrant(t, tmpl, ev, fn)
				if !slices.Contains(sendingFunctions, fn) {
					if len(ids)+len(sets) > 0 {
						t.Errorf("%s does not send email but may ses:SendEmail as %v %v", fn, ids, sets)
					}
					continue
				}
				if !slices.Equal(ids, tt.want) {
					t.Errorf("%s may send as identities %v, want exactly %v", fn, ids, tt.want)
				}
				if len(sets) != 1 || sets[0] != "ref:EmailConfigurationSet" {
					t.Errorf("%s may send through configuration sets %v, want the stack's", fn, sets)
				}
				fenv := props(t, tmpl, ev, fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
				getenv := func(k string) string {
					if v, ok := fenv[k].(string); ok {
						return v
					}
					return map[string]string{"TABLE_NAME": "t", "EVENTS_QUEUE_URL": "q", "DLQ_URL": "d"}[k]
				}
				if got, _ := deliveryfn.ParseIdentities(getenv("SENDER_IDENTITIES"), "fallback@x.example"); getenv("SENDER_IDENTITIES") != "" && !slices.Equal(sorted(got), tt.want) {
					t.Errorf("%s: SENDER_IDENTITIES = %q, want the granted %v", fn, getenv("SENDER_IDENTITIES"), tt.want)
				}
				_, err := deliveryfn.LoadConfig(getenv)
				if tt.covers && err != nil {
					t.Errorf("%s does not start: %v", fn, err)
				}
				if !tt.covers && (err == nil || !strings.Contains(err.Error(), "is not covered by SENDER_IDENTITIES")) {
					t.Errorf("%s starts with a sender the grant does not cover (every email would be refused): err = %v", fn, err)
				}
			}
			if tmpl.Resources["SenderIdentity"].Condition == "" {
				t.Fatal("SenderIdentity has no condition (CreateSenderIdentity)")
			}
			if got := props(t, tmpl, ev, "SenderIdentity")["EmailIdentity"]; got != tt.want[0] && !slices.Contains(tt.want, got.(string)) {
				t.Errorf("CreateSenderIdentity creates identity %v, want one of %v", got, tt.want)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// SenderIdentities takes as many identities as the grant has slots, and no
// more; each an address or a domain. SenderAddress takes an address, with or
// without a display name, and still takes the old default.
func TestTheSenderParametersTakeWhatTheGrantCanName(t *testing.T) {
	tmpl := load(t)
	pattern := func(name string) *regexp.Regexp {
		p := tmpl.Parameters[name].AllowedPattern
		if p == "" {
			t.Fatalf("%s has no AllowedPattern", name)
		}
		return regexp.MustCompile(p)
	}
	ids := pattern("SenderIdentities")
	list := func(n int) string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprintf("d%d.example", i))
		}
		return strings.Join(l, ",")
	}
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"", true}, {"shop.example", true}, {"ops@shop.example", true}, {"shop.example,ops@other.example", true},
		{list(senderIdentitySlots), true}, {list(senderIdentitySlots + 1), false},
		{"localhost", false}, {"shop.example,", false}, {"shop.example, other.example", false}, {"Shop <a@shop.example>", false}, {"*.example", false}, {"shop.exampl?", false},
	} {
		if got := ids.MatchString(tc.value); got != tc.ok {
			t.Errorf("SenderIdentities %q accepted = %v, want %v", tc.value, got, tc.ok)
		}
	}
	from := pattern("SenderAddress")
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"no-reply@dispatcher.example.com", true}, {"Shop <no-reply@shop.example>", true}, {`"Shop, Inc." <no-reply@shop.example>`, true},
		{"Shop no-reply@shop.example", false}, {"Shop <no-reply>", false}, {"<a@b.example", false}, {"nobody", false},
	} {
		if got := from.MatchString(tc.value); got != tc.ok {
			t.Errorf("SenderAddress %q accepted = %v, want %v", tc.value, got, tc.ok)
		}
	}
}

// settingParameters: each environment variable a user may want to change,
// and the template parameter that sets it.
var settingParameters = map[string]string{
	"EMAIL_LEASE_SECONDS":      "EmailLeaseSeconds",
	"RELAY_WORKERS":            "RelayWorkers",
	"RELAY_MAX_SEND_ATTEMPTS":  "RelayMaxSendAttempts",
	"OUTBOX_RETENTION_DAYS":    "OutboxRetentionDays",
	"LOG_LEVEL":                "LogLevel",
	"UNDELIVERED_INDEX_SHARDS": "UndeliveredIndexShards",
	"SES_ACCOUNT_SEND_RATE":    "SesAccountSendRate",
	// The template sets it to the stream's ParallelizationFactor: the relay
	// instances that send at once per shard.
	"RELAY_EXPECTED_CONCURRENCY": "StreamParallelizationFactor",
	"SENDER_ADDRESS":             "SenderAddress",
	"SENDER_IDENTITIES":          "SenderIdentities",
	"CALLERS_PARAMETER_PATH":     "CallersParameterPath",
	"CALLER_RATE_PER_SECOND":     "CallerRatePerSecond",
	"CALLER_BURST":               "CallerBurst",
	"SES_CONFIGURATION_SET":      "ExistingConfigurationSetName",
	"EVENTS_QUEUE_URL":           "ExistingEventsQueueArn",
	"API_AUTH":                   "ApiAuth",
	"AGGREGATE_MODES":            "AccountMode",
	"LISTEN_TO_YOURSELF":         "ListenToYourselfCommands",
	"WEBHOOK_SECRETS_ARN":        "WebhookSecretsArn",
	"WEBHOOK_SECRETS_PARAMETER":  "WebhookSecretsParameter",
	"WEBHOOK_SECRETS_REFRESH":    "WebhookSecretsRefreshSeconds",
}

// notParameters: the variables the functions read that are deliberately
// not template parameters, and why.
var notParameters = map[string]string{
	"TABLE_NAME":         "the stack's own table",
	"DLQ_URL":            "the stack's own DLQ",
	"COMMANDS_QUEUE_URL": "the stack's own commands queue",
	"EVENT_SOURCE":       "the CloudEvents source, named after the stack",
	"RATE_LIMIT_TABLE":   "the stack's own rate limit table",
	"CALLERS":            "the caller documents themselves, for local use: a deployed stack reads them from the SSM tree CallersParameterPath names",
	"WEBHOOK_SECRETS":    "the secrets themselves, for local use: a deployed stack reads them from Secrets Manager or SSM, never from a template",
}

// settingReaders finds the variables a function's configuration code reads:
// env.Reader calls and the webhook secrets' names.
// The SES reputation alarms warn before SES puts the account under review
// (a 5 % bounce rate, a 0.1 % complaint rate; sending may pause at 10 % /
// 0.5 %, which stops every email of every team): on the account-wide
// metric (no dimension; the values are fractions), at a threshold below
// the review level and above zero, and the dashboard shows both rates.
func TestTheReputationAlarmsFireBeforeSESReviewsTheAccount(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	review := map[string]struct {
		metric string
		level  float64
	}{
		"SesBounceRateAlarm":    {"Reputation.BounceRate", 0.05},
		"SesComplaintRateAlarm": {"Reputation.ComplaintRate", 0.001},
	}
	body, _ := props(t, tmpl, ev, "Dashboard")["DashboardBody"].(string)
	if !json.Valid([]byte(body)) {
		t.Errorf("the dashboard body is not JSON:\n%s", body)
	}
	for id, r := range review {
		p := props(t, tmpl, ev, id)
		th, err := strconv.ParseFloat(fmt.Sprint(p["Threshold"]), 64)
		if err != nil {
			t.Fatalf("%s: threshold %v: %v", id, p["Threshold"], err)
		}
		if th <= 0 || th >= r.level {
			t.Errorf("%s: threshold %v, want above 0 and below SES's review level %v", id, th, r.level)
		}
		if p["Namespace"] != "AWS/SES" || p["MetricName"] != r.metric || p["Dimensions"] != nil {
			t.Errorf("%s watches %v/%v %v, want the account-wide AWS/SES %s (no dimension)", id, p["Namespace"], p["MetricName"], p["Dimensions"], r.metric)
		}
		if p["Statistic"] != "Maximum" || !strings.HasPrefix(fmt.Sprint(p["ComparisonOperator"]), "GreaterThan") {
			t.Errorf("%s: %v %v, want the Maximum, GreaterThan...", id, p["Statistic"], p["ComparisonOperator"])
		}
		if asList(p["OKActions"]) == nil || asList(p["OKActions"])[0] != "ref:AlarmTopic" {
			t.Errorf("%s does not say on the alarm topic when it is over", id)
		}
		if !strings.Contains(body, `["AWS/SES","`+r.metric+`"]`) {
			t.Errorf("the dashboard has no widget of %s", r.metric)
		}
	}
}

// Every alarm's description points to its runbook section in
// docs/operations.md, and that section exists.
func TestEveryAlarmHasARunbookSection(t *testing.T) {
	tmpl := load(t)
	ev := evaluator(t, tmpl, nil)
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(doc), -1) {
		sections[strings.ToLower(m[1])] = true
	}
	link := regexp.MustCompile(`docs/operations\.md#([a-z0-9-]+)`)
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::CloudWatch::Alarm" {
			continue
		}
		desc, _ := props(t, tmpl, ev, id)["AlarmDescription"].(string)
		m := link.FindStringSubmatch(desc)
		switch {
		case m == nil:
			t.Errorf("%s: its description %q does not point to docs/operations.md#<section>", id, desc)
		case !sections[m[1]]:
			t.Errorf("%s points to docs/operations.md#%s, which has no such section", id, m[1])
		}
	}
}

var settingReaders = regexp.MustCompile(`\br\.(?:Int|Float|String|Required)\("([A-Z][A-Z0-9_]+)"|"(WEBHOOK_SECRETS[A-Z_]*)"`)

// Every environment setting the functions read is a template parameter or
// is listed, with why, as deliberately not one; and every parameter of a
// numeric or enumerated setting allows exactly the code's range (the code
// owns it), unless the template must allow less, said here. At the edge:
// the parameter's limit deploys and starts the relay; one over is refused.
func TestEverySettingIsAParameterWithTheCodesRange(t *testing.T) {
	tmpl := load(t)
	read := map[string]bool{}
	for _, dir := range []string{"internal/app/commandfn", "internal/app/consumerfn", "internal/app/deliveryfn", "internal/app/replayfn", "internal/webhook"} {
		for _, b := range sources(t, dir) {
			for _, m := range settingReaders.FindAllStringSubmatch(string(b), -1) {
				read[m[1]+m[2]] = true
			}
			if strings.Contains(string(b), "r.LogLevel()") {
				read["LOG_LEVEL"] = true
			}
		}
	}
	for v := range read {
		_, isParam := settingParameters[v]
		_, why := notParameters[v]
		if !isParam && !why {
			t.Errorf("the functions read %s, which is neither a template parameter (settingParameters) nor listed, with why, in notParameters", v)
		}
	}
	for v, p := range settingParameters {
		if !read[v] {
			t.Errorf("settingParameters lists %s, which no function reads", v)
		}
		if _, ok := tmpl.Parameters[p]; !ok {
			t.Errorf("%s: no template parameter %s", v, p)
		}
	}
	for v := range notParameters {
		if !read[v] {
			t.Errorf("notParameters lists %s, which no function reads", v)
		}
	}

	// The ranges. narrower: where the template allows less than the code, and why.
	narrower := map[string]env.Range{
		"EMAIL_LEASE_SECONDS":        {Min: 1, Max: 270}, // the stream recovery's timeout (300 s) less 30 s: it waits out a lease in one invocation
		"RELAY_EXPECTED_CONCURRENCY": {Min: 1, Max: 10},  // Lambda's ParallelizationFactor
	}
	ranges := maps.Clone(deliveryfn.IntSettings)
	ranges["UNDELIVERED_INDEX_SHARDS"] = env.IndexShards
	for v, code := range ranges {
		p := tmpl.Parameters[settingParameters[v]]
		want := code
		if n, ok := narrower[v]; ok {
			want = n
			if n.Min < code.Min || n.Max > code.Max {
				t.Errorf("%s: the template's %v is wider than the code's %v", v, n, code)
			}
		}
		if fmt.Sprint(p.MinValue) != fmt.Sprint(want.Min) || fmt.Sprint(p.MaxValue) != fmt.Sprint(want.Max) {
			t.Errorf("%s: %s allows %v to %v, want %d to %d (the code's range %v)", v, settingParameters[v], p.MinValue, p.MaxValue, want.Min, want.Max, code)
		}
	}
	rate := tmpl.Parameters["SesAccountSendRate"]
	if fmt.Sprint(rate.MinValue) != fmt.Sprint(deliveryfn.MinAccountSendRate) || fmt.Sprint(rate.MaxValue) != fmt.Sprint(deliveryfn.MaxAccountSendRate) {
		t.Errorf("SesAccountSendRate allows %v to %v, want the code's %g to %g", rate.MinValue, rate.MaxValue, deliveryfn.MinAccountSendRate, deliveryfn.MaxAccountSendRate)
	}
	// WEBHOOK_SECRETS_REFRESH is a Go duration: 0, or MinRefreshEvery to
	// MaxRefreshEvery. The parameter counts whole seconds, so none falls
	// between 0 and a 1 s minimum; at its limit the command function
	// starts, one over is refused.
	refresh := tmpl.Parameters["WebhookSecretsRefreshSeconds"]
	if webhook.MinRefreshEvery != time.Second || fmt.Sprint(refresh.MinValue) != "0" || fmt.Sprint(refresh.MaxValue) != fmt.Sprint(int(webhook.MaxRefreshEvery/time.Second)) {
		t.Errorf("WebhookSecretsRefreshSeconds allows %v to %v s, want 0 to %v (the code's 0, or %v to %v)", refresh.MinValue, refresh.MaxValue, int(webhook.MaxRefreshEvery/time.Second), webhook.MinRefreshEvery, webhook.MaxRefreshEvery)
	}
	for _, seconds := range []string{"0", fmt.Sprint(refresh.MaxValue)} {
		ev := evaluator(t, tmpl, map[string]string{"WebhookSecretsRefreshSeconds": seconds, "ApiAuth": "iam"})
		vars := props(t, tmpl, ev, "CommandFunction")["Environment"].(map[string]any)["Variables"].(map[string]any)
		getenv := func(k string) string {
			if k == "TABLE_NAME" {
				return "t"
			}
			s, _ := vars[k].(string)
			return s
		}
		if _, err := commandfn.Build(context.Background(), aws.Config{Region: "us-east-1"}, getenv); err != nil {
			t.Errorf("WebhookSecretsRefreshSeconds=%s (WEBHOOK_SECRETS_REFRESH=%v): the command function does not start: %v", seconds, vars["WEBHOOK_SECRETS_REFRESH"], err)
		}
	}
	if _, err := tmpl.NewEvaluator(cfn.Stack{Name: "prod", Parameters: map[string]string{"WebhookSecretsRefreshSeconds": fmt.Sprint(toInt(t, refresh.MaxValue) + 1)}}); err == nil {
		t.Error("WebhookSecretsRefreshSeconds one over its MaxValue is accepted")
	}

	var levels []string
	for _, l := range tmpl.Parameters["LogLevel"].AllowedValues {
		s, _ := l.(string)
		if _, err := env.ParseLogLevel(s); err != nil {
			t.Errorf("LogLevel allows %q, which the code refuses: %v", s, err)
		}
		levels = append(levels, s)
	}
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if !slices.Contains(levels, l.String()) {
			t.Errorf("LogLevel does not allow %s, which the code takes", l)
		}
	}

	// At the edge, for the relay's settings: each parameter at its limit sets
	// its variable in every sending function, which then starts; one over is
	// refused before anything deploys.
	for _, v := range []string{"EMAIL_LEASE_SECONDS", "RELAY_WORKERS", "RELAY_MAX_SEND_ATTEMPTS", "OUTBOX_RETENTION_DAYS"} {
		p := settingParameters[v]
		lim := tmpl.Parameters[p].MaxValue
		ev := evaluator(t, tmpl, map[string]string{p: fmt.Sprint(lim)})
		for _, fn := range sendingFunctions {
			vars := props(t, tmpl, ev, fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
			if fmt.Sprint(vars[v]) != fmt.Sprint(lim) {
				t.Errorf("%s=%v: %s gets %s=%v", p, lim, fn, v, vars[v])
			}
			getenv := func(k string) string {
				if s, ok := vars[k].(string); ok {
					return s
				}
				return map[string]string{"TABLE_NAME": "t", "EVENTS_QUEUE_URL": "q", "DLQ_URL": "d", v: fmt.Sprint(lim)}[k]
			}
			if _, err := deliveryfn.LoadConfig(getenv); err != nil {
				t.Errorf("%s=%v: %s does not start: %v", p, lim, fn, err)
			}
		}
		over := fmt.Sprint(toInt(t, lim) + 1)
		if _, err := tmpl.NewEvaluator(cfn.Stack{Name: "prod", Parameters: map[string]string{p: over}}); err == nil {
			t.Errorf("%s=%s (one over its MaxValue) is accepted", p, over)
		}
	}
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(v))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The caller registry is read only where CallersParameterPath points, and
// only when it is set: GetParametersByPath on exactly that path, kms:Decrypt
// only through SSM. The parameter takes an SSM path and nothing else.
func TestTheCallerRegistryIsReadOnlyWhereItIs(t *testing.T) {
	tmpl := load(t)
	grants := func(params map[string]string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, s := range statements(t, tmpl, evaluator(t, tmpl, params), "CommandFunction") {
			for _, a := range asList(s["Action"]) {
				if a == "ssm:GetParametersByPath" || a == "kms:Decrypt" {
					out[a.(string)] = s
				}
			}
		}
		return out
	}
	if g := grants(nil); len(g) != 0 {
		t.Errorf("without a registry the command function is granted %v", g)
	}
	g := grants(map[string]string{"CallersParameterPath": "/dispatcher/prod/callers"})
	if r := g["ssm:GetParametersByPath"]["Resource"]; r != "arn:aws:ssm:us-east-1:123456789012:parameter/dispatcher/prod/callers" {
		t.Errorf("GetParametersByPath on %v, want exactly the path", r)
	}
	dec := g["kms:Decrypt"]
	cond, _ := json.Marshal(dec["Condition"])
	if string(cond) != `{"StringEquals":{"kms:ViaService":"ssm.us-east-1.amazonaws.com"}}` {
		t.Errorf("kms:Decrypt under %s, want only through SSM", cond)
	}
	vars := props(t, tmpl, evaluator(t, tmpl, map[string]string{"CallersParameterPath": "/dispatcher/prod/callers"}), "CommandFunction")["Environment"].(map[string]any)["Variables"].(map[string]any)
	if vars["CALLERS_PARAMETER_PATH"] != "/dispatcher/prod/callers" {
		t.Errorf("CALLERS_PARAMETER_PATH = %v", vars["CALLERS_PARAMETER_PATH"])
	}
	for path, ok := range map[string]bool{
		"": true, "/callers": true, "/dispatcher/prod/callers": true, "/a.b/c_d/e-f": true,
		"/1/2/3/4/5/6/7/8/9/10/11/12/13/14": true, "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15": false, // a caller under it would be the 16th level
		"dispatcher/callers": false, "/dispatcher/callers/": false, "/": false, "/dispatcher//callers": false, "/dispatcher/call ers": false, "/dispatcher/*": false,
	} {
		_, err := tmpl.NewEvaluator(cfn.Stack{Name: "prod", Parameters: map[string]string{"CallersParameterPath": path}})
		if (err == nil) != ok {
			t.Errorf("CallersParameterPath %q: accepted %v, want %v", path, err == nil, ok)
		}
	}
}

// The callers' default rate is a parameter within the bounds the code owns
// (dispatch.MaxRatePerSecond, dispatch.MaxRateBurst): at the limit it
// reaches the command function and is a rate the limiter takes; one over is
// refused before anything deploys.
func TestTheCallerRateParametersTakeTheCodesRange(t *testing.T) {
	tmpl := load(t)
	rate, burst := tmpl.Parameters["CallerRatePerSecond"], tmpl.Parameters["CallerBurst"]
	if fmt.Sprint(rate.MaxValue) != fmt.Sprint(dispatch.MaxRatePerSecond) || fmt.Sprint(burst.MinValue) != "1" || fmt.Sprint(burst.MaxValue) != fmt.Sprint(dispatch.MaxRateBurst) {
		t.Errorf("CallerRatePerSecond up to %v, CallerBurst %v to %v; want up to %d, and 1 to %d", rate.MaxValue, burst.MinValue, burst.MaxValue, dispatch.MaxRatePerSecond, dispatch.MaxRateBurst)
	}
	for _, set := range []map[string]string{
		{"CallerRatePerSecond": fmt.Sprint(rate.MinValue), "CallerBurst": fmt.Sprint(burst.MinValue)},
		{"CallerRatePerSecond": fmt.Sprint(rate.MaxValue), "CallerBurst": fmt.Sprint(burst.MaxValue)},
		nil, // the defaults
	} {
		vars := props(t, tmpl, evaluator(t, tmpl, set), "CommandFunction")["Environment"].(map[string]any)["Variables"].(map[string]any)
		perSecond, err1 := strconv.ParseFloat(fmt.Sprint(vars["CALLER_RATE_PER_SECOND"]), 64)
		b, err2 := strconv.Atoi(fmt.Sprint(vars["CALLER_BURST"]))
		if err1 != nil || err2 != nil {
			t.Fatalf("%v: CALLER_RATE_PER_SECOND=%v CALLER_BURST=%v", set, vars["CALLER_RATE_PER_SECOND"], vars["CALLER_BURST"])
		}
		if err := (dispatch.Rate{PerSecond: perSecond, Burst: b}).Check(); err != nil {
			t.Errorf("%v: the limiter refuses the template's rate: %v", set, err)
		}
		if vars["RATE_LIMIT_TABLE"] != "ref:RateLimitTable" {
			t.Errorf("RATE_LIMIT_TABLE = %v", vars["RATE_LIMIT_TABLE"])
		}
	}
	for p, over := range map[string]string{"CallerRatePerSecond": fmt.Sprint(dispatch.MaxRatePerSecond + 1), "CallerBurst": fmt.Sprint(dispatch.MaxRateBurst + 1)} {
		if _, err := tmpl.NewEvaluator(cfn.Stack{Name: "prod", Parameters: map[string]string{p: over}}); err == nil {
			t.Errorf("%s=%s (one over the code's bound) is accepted", p, over)
		}
	}
}

// The rate-limit table: billed per request, encrypted, its idle buckets
// removed by TTL on the attribute the code writes, no stream (nothing reads
// one), keyed as the code reads it.
func TestTheRateLimitTableIsTheOneTheLimiterUses(t *testing.T) {
	tmpl := load(t)
	p := props(t, tmpl, evaluator(t, tmpl, nil), "RateLimitTable")
	b, _ := json.Marshal(map[string]any{"billing": p["BillingMode"], "keys": p["KeySchema"], "ttl": p["TimeToLiveSpecification"], "stream": p["StreamSpecification"]})
	if want := `{"billing":"PAY_PER_REQUEST","keys":[{"AttributeName":"pk","KeyType":"HASH"}],"stream":null,"ttl":{"AttributeName":"expiresAt","Enabled":true}}`; string(b) != want {
		t.Errorf("RateLimitTable %s, want %s", b, want)
	}
	src := sources(t, "internal/ratelimit/ratelimit.go")["../internal/ratelimit/ratelimit.go"]
	for _, attr := range []string{`attrKey     = "pk"`, `attrExpires = "expiresAt"`} {
		if !strings.Contains(string(src), attr) {
			t.Errorf("internal/ratelimit no longer declares %s", attr)
		}
	}
}
