// Package provision creates a template's data-plane resources (DynamoDB
// tables, SQS queues, SES identities and configuration sets) through the
// ordinary AWS APIs, from infra/template.yaml itself, so that the local stack
// and the deployed stack cannot drift. It talks to whatever the standard
// AWS_ENDPOINT_URL* variables point at: the project's emulators, LocalStack,
// or a real account.
package provision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
)

// Resource types this package creates. Functions, APIs and event source
// mappings are not created here: the local runner emulates them.
const (
	TypeTable            = "AWS::DynamoDB::Table"
	TypeQueue            = "AWS::SQS::Queue"
	TypeEmailIdentity    = "AWS::SES::EmailIdentity"
	TypeConfigurationSet = "AWS::SES::ConfigurationSet"
)

// Options says which template to apply and how.
type Options struct {
	TemplatePath string
	StackName    string
	Region       string
	Parameters   map[string]string
	// EmailTemplates is the template folder that stands in for the
	// template layer locally (make EMAIL_TEMPLATES=dir): Lambda mounts the
	// layer at /opt, so the functions' EMAIL_TEMPLATES_DIR names it here
	// instead. "": the built-in folder, which the functions carry.
	EmailTemplates string
}

// Resource is one provisioned (or deliberately skipped) resource.
type Resource struct {
	LogicalID  string
	Type       string
	PhysicalID string            // what Ref returns
	Attributes map[string]string // what Fn::GetAtt returns
	// Notes lists what could not be applied on this endpoint, such as a
	// property the emulator does not implement. Nothing is dropped silently.
	Notes []string
}

// Stack is the result of provisioning: the template, its evaluator and
// every resource created. It implements cfn.Resolver.
type Stack struct {
	Template  *cfn.Template
	Eval      *cfn.Evaluator
	Resources map[string]*Resource
	// EmailTemplates is Options.EmailTemplates, absolute.
	EmailTemplates string
	// localQueueURL answers the URL this endpoint gives a queue of that
	// name (nil: no endpoint to ask).
	localQueueURL func(name string) (string, error)
}

// Ref implements cfn.Resolver.
func (s *Stack) Ref(id string) (string, error) {
	r, ok := s.Resources[id]
	if !ok {
		return "", fmt.Errorf("Ref %s: resource not provisioned locally", id)
	}
	return r.PhysicalID, nil
}

// GetAtt implements cfn.Resolver.
func (s *Stack) GetAtt(id, attr string) (any, error) {
	r, ok := s.Resources[id]
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: resource not provisioned locally", id, attr)
	}
	v, ok := r.Attributes[attr]
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such attribute", id, attr)
	}
	return v, nil
}

// Physical returns the physical id (table name, queue URL, ...) of a resource.
func (s *Stack) Physical(id string) string {
	if r, ok := s.Resources[id]; ok {
		return r.PhysicalID
	}
	return ""
}

// Attr returns one attribute of a resource, or "".
func (s *Stack) Attr(id, attr string) string {
	if r, ok := s.Resources[id]; ok {
		return r.Attributes[attr]
	}
	return ""
}

// Notes returns every note of every resource, sorted, for a log.
func (s *Stack) Notes() []string {
	var out []string
	for id, r := range s.Resources {
		for _, n := range r.Notes {
			out = append(out, id+": "+n)
		}
	}
	sort.Strings(out)
	return out
}

// FunctionEnv evaluates a function's environment variables, Globals first,
// as Lambda would see them.
func (s *Stack) FunctionEnv(logicalID string) (map[string]string, error) {
	r, ok := s.Template.Resources[logicalID]
	if !ok || r.Type != "AWS::Serverless::Function" {
		return nil, fmt.Errorf("no function %s in the template", logicalID)
	}
	vars := map[string]any{}
	if g, ok := s.Template.Globals["Function"].(map[string]any); ok {
		for k, v := range nested(g, "Environment", "Variables") {
			vars[k] = v
		}
	}
	for k, v := range nested(r.Properties, "Environment", "Variables") {
		vars[k] = v
	}
	out := map[string]string{}
	for k, v := range vars {
		ev, err := s.Eval.Eval(v)
		if err != nil {
			return nil, fmt.Errorf("%s environment %s: %w", logicalID, k, err)
		}
		str, err := cfn.String(ev)
		if err != nil {
			return nil, fmt.Errorf("%s environment %s: %w", logicalID, k, err)
		}
		if str, err = s.localURL(str); err != nil {
			return nil, fmt.Errorf("%s environment %s: %w", logicalID, k, err)
		}
		out[k] = str
	}
	// The template layer's mount: locally, the folder that stands in for it.
	if _, ok := out[emails.EnvDir]; ok {
		out[emails.EnvDir] = s.EmailTemplates
	}
	return out, nil
}

// awsQueueURL is the URL the template builds from a queue's ARN (a queue
// the stack reuses: ExistingEventsQueueArn).
var awsQueueURL = regexp.MustCompile(`^https://sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[0-9]{12}/([A-Za-z0-9_-]{1,80}(\.fifo)?)$`)

// localURL gives, for a queue URL in AWS's form, the URL the endpoint in use
// knows that queue by: SQS takes either, an emulator (fauxqs) only its own.
// Anything else is returned as is.
func (s *Stack) localURL(v string) (string, error) {
	m := awsQueueURL.FindStringSubmatch(v)
	if m == nil || s.localQueueURL == nil {
		return v, nil
	}
	u, err := s.localQueueURL(m[2])
	if err != nil {
		return "", fmt.Errorf("queue %s (%s) on this endpoint: %w", m[2], v, err)
	}
	return u, nil
}

func nested(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// Apply creates every supported resource of the template, in dependency
// order. It is idempotent: a resource that already exists with the same shape
// is reused, so it can be run again against a long-lived LocalStack.
func Apply(ctx context.Context, cfg aws.Config, opts Options) (*Stack, error) {
	t, err := cfn.ParseFile(opts.TemplatePath)
	if err != nil {
		return nil, err
	}
	if opts.Region == "" {
		opts.Region = cfg.Region
	}
	if !stackName.MatchString(opts.StackName) {
		return nil, fmt.Errorf("provision: stack name %q must match %s", opts.StackName, stackName)
	}
	s := &Stack{Template: t, Resources: map[string]*Resource{}}
	if opts.EmailTemplates != "" {
		if s.EmailTemplates, err = filepath.Abs(opts.EmailTemplates); err != nil {
			return nil, err
		}
		if opts.Parameters, err = localIdentities(t, opts.Parameters, s.EmailTemplates); err != nil {
			return nil, err
		}
	}
	ev, err := t.NewEvaluator(cfn.Stack{Name: opts.StackName, Region: opts.Region, Parameters: opts.Parameters, Resolver: s})
	if err != nil {
		return nil, err
	}
	s.Eval = ev

	order, err := createOrder(t, ev)
	if err != nil {
		return nil, err
	}
	p := &provisioner{
		stack: s,
		ddb:   dynamodb.NewFromConfig(cfg),
		sqs:   sqs.NewFromConfig(cfg),
		ses:   sesv2.NewFromConfig(cfg),
	}
	// Asked later, when a function's environment is read: not bound to
	// Apply's deadline.
	urlCtx := context.WithoutCancel(ctx)
	s.localQueueURL = func(name string) (string, error) {
		out, err := p.sqs.GetQueueUrl(urlCtx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.QueueUrl), nil
	}
	for _, id := range order {
		r := t.Resources[id]
		props, err := ev.Eval(r.Properties)
		if err != nil {
			return nil, fmt.Errorf("provision %s: %w", id, err)
		}
		pm, _ := props.(map[string]any)
		if pm == nil {
			pm = map[string]any{}
		}
		var res *Resource
		switch r.Type {
		case TypeTable:
			res, err = p.table(ctx, id, pm)
		case TypeQueue:
			res, err = p.queue(ctx, id, pm)
		case TypeConfigurationSet:
			res, err = p.configurationSet(ctx, id, pm)
		case TypeEmailIdentity:
			res, err = p.emailIdentity(ctx, id, pm)
		}
		if err != nil {
			return nil, fmt.Errorf("provision %s (%s): %w", id, r.Type, err)
		}
		res.LogicalID, res.Type = id, r.Type
		s.Resources[id] = res
	}
	return s, nil
}

var stackName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)

// createOrder returns the supported, enabled resources in an order where
// every resource comes after those it refers to.
func createOrder(t *cfn.Template, ev *cfn.Evaluator) ([]string, error) {
	supported := map[string]bool{TypeTable: true, TypeQueue: true, TypeEmailIdentity: true, TypeConfigurationSet: true}
	var ids []string
	for id, r := range t.Resources {
		if !supported[r.Type] {
			continue
		}
		on, err := ev.Enabled(r)
		if err != nil {
			return nil, err
		}
		if on {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var order []string
	var visit func(id string, path []string) error
	visit = func(id string, path []string) error {
		switch state[id] {
		case 1:
			return fmt.Errorf("provision: circular reference %s", strings.Join(append(path, id), " -> "))
		case 2:
			return nil
		}
		state[id] = 1
		r := t.Resources[id]
		deps := append(t.Dependencies(r.Properties), r.DependsOn...)
		for _, d := range deps {
			dr, ok := t.Resources[d]
			if !ok {
				return fmt.Errorf("provision: %s refers to unknown resource %s", id, d)
			}
			if !supported[dr.Type] {
				return fmt.Errorf("provision: %s refers to %s (%s), which is not created locally", id, d, dr.Type)
			}
			if err := visit(d, append(path, id)); err != nil {
				return err
			}
		}
		state[id] = 2
		order = append(order, id)
		return nil
	}
	for _, id := range ids {
		if err := visit(id, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

type provisioner struct {
	stack *Stack
	ddb   *dynamodb.Client
	sqs   *sqs.Client
	ses   *sesv2.Client
}

// generatedName mimics CloudFormation's generated names closely enough for
// local use: stack name and logical id, bounded in length.
func generatedName(stack, id string, max int) string {
	n := stack + "-" + id
	if len(n) > max {
		n = n[:max]
	}
	return n
}

// unsupported reports whether err means the endpoint does not implement the
// operation at all (an emulator's 404 or 501 without an AWS error code).
func unsupported(err error) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	code := re.HTTPStatusCode()
	if code != 404 && code != 501 {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFoundException", "ResourceNotFoundException":
			return false
		}
	}
	return true
}

// localIdentities stands in for the SES identities a user verifies: unless
// SenderIdentities is given, it is the stack's sender address and the
// identity of each sender of the template folder, so that the functions
// may send as every sender the folder names (in AWS, the user lists them in
// SenderIdentities; the relay refuses to start otherwise). At most five,
// as the template's grant takes.
func localIdentities(t *cfn.Template, params map[string]string, dir string) (map[string]string, error) {
	if params["SenderIdentities"] != "" {
		return params, nil
	}
	d, err := emails.LoadDir(dir)
	if err != nil {
		return params, nil // the functions' cold start names what is broken, as in AWS
	}
	sender := params["SenderAddress"]
	if sender == "" {
		sender, _ = t.Parameters["SenderAddress"].Default.(string)
	}
	if a, err := mail.ParseAddress(sender); err == nil {
		sender = a.Address
	}
	ids := []string{sender}
	for _, name := range slices.Sorted(maps.Keys(d.Senders)) {
		if id := d.Senders[name].Identity; !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > 5 {
		return nil, fmt.Errorf("provision: the template folder's senders need %d SES identities (%s); SenderIdentities takes 5", len(ids), strings.Join(ids, ","))
	}
	out := maps.Clone(params)
	if out == nil {
		out = map[string]string{}
	}
	out["SenderIdentities"] = strings.Join(ids, ",")
	return out, nil
}
