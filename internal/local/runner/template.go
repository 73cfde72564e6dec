package runner

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
)

const typeFunction = "AWS::Serverless::Function"

// Route is one HttpApi event of a function.
type Route struct {
	Function string // logical id
	Event    string // the event's name in the template
	Method   string // upper case, or ANY
	Path     string // "/v1/aggregates/{id}", "/{proxy+}"
	Default  bool   // the $default route (an HttpApi event without Path and Method)
	API      string // logical id of the AWS::Serverless::HttpApi, "" for SAM's implicit API
	// IAM is true when the route requires AWS_IAM (SigV4) authorization.
	IAM      bool
	segments []string
}

// Key is the route key API Gateway puts in the event.
func (r Route) Key() string {
	if r.Default {
		return "$default"
	}
	return r.Method + " " + r.Path
}

// StreamMapping is a DynamoDB event of a function: an event source mapping,
// with every setting read from the template and AWS's defaults for the rest.
type StreamMapping struct {
	Function               string
	Event                  string
	StreamArn              string
	StartingPosition       string // TRIM_HORIZON or LATEST
	BatchSize              int
	BatchingWindow         time.Duration
	Bisect                 bool
	MaxRetryAttempts       int // -1: until the record expires
	MaxRecordAge           time.Duration
	ReportBatchItemFailure bool
	Filters                Filters
	OnFailureArn           string // the destination's ARN, "" when none
	OnFailureQueueURL      string // the provisioned queue with that ARN
	Enabled                bool
	// ParallelizationFactor is how many batches of one shard run at once
	// (1..10): records go to a lane by a hash of their partition key.
	ParallelizationFactor int
	// PartitionKey is the table's HASH key attribute, read from the
	// template's table whose stream this is; "" hashes the whole key.
	PartitionKey string
	// Notes lists settings read but not emulated (tumbling windows, ...),
	// to be shown to the person running it.
	Notes []string
}

// FunctionSpec is a function's settings that matter to the runner.
type FunctionSpec struct {
	LogicalID string
	Timeout   time.Duration
	Memory    int
	Env       map[string]string // from the template (Globals, then the function)
}

// Schedule is a Schedule or ScheduleV2 event with a rate() expression.
type Schedule struct {
	Function string
	Event    string
	Every    time.Duration
	Input    string // the event the function gets
	Enabled  bool
}

// Spec is what the runner reads from a provisioned template.
type Spec struct {
	Functions map[string]FunctionSpec
	Routes    []Route
	Streams   []StreamMapping
	Queues    []QueueMapping // SQS events (sqsesm.go)
	Schedules []Schedule
	Notes     []string
}

// ReadSpec reads the functions, their HttpApi routes and DynamoDB stream
// event source mappings from a provisioned stack, evaluating intrinsic
// functions against the provisioned resources. A property it does not know
// is an error: an emulation that silently drops a setting misleads.
func ReadSpec(s *provision.Stack) (*Spec, error) {
	spec := &Spec{Functions: map[string]FunctionSpec{}}
	ev := s.Eval
	for _, id := range s.Template.ResourcesOfType(typeFunction) {
		res := s.Template.Resources[id]
		on, err := ev.Enabled(res)
		if err != nil {
			return nil, err
		}
		if !on {
			continue
		}
		fs := FunctionSpec{LogicalID: id, Timeout: 3 * time.Second, Memory: 128}
		globals, _ := s.Template.Globals["Function"].(map[string]any)
		for _, src := range []map[string]any{globals, res.Properties} {
			if v, ok := src["Timeout"]; ok {
				n, err := intValue(ev, v)
				if err != nil {
					return nil, fmt.Errorf("%s Timeout: %w", id, err)
				}
				fs.Timeout = time.Duration(n) * time.Second
			}
			if v, ok := src["MemorySize"]; ok {
				n, err := intValue(ev, v)
				if err != nil {
					return nil, fmt.Errorf("%s MemorySize: %w", id, err)
				}
				fs.Memory = n
			}
		}
		if fs.Env, err = s.FunctionEnv(id); err != nil {
			return nil, err
		}
		spec.Functions[id] = fs

		events, _ := res.Properties["Events"].(map[string]any)
		names := make([]string, 0, len(events))
		for n := range events {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			e, _ := events[name].(map[string]any)
			typ, _ := e["Type"].(string)
			props, _ := e["Properties"].(map[string]any)
			switch typ {
			case "HttpApi":
				r, notes, err := readRoute(s, id, name, props)
				if err != nil {
					return nil, fmt.Errorf("%s event %s: %w", id, name, err)
				}
				spec.Routes = append(spec.Routes, r)
				for _, n := range notes {
					spec.Notes = appendOnce(spec.Notes, n)
				}
			case "Schedule", "ScheduleV2":
				sc, note, err := readSchedule(ev, id, name, props)
				if err != nil {
					return nil, fmt.Errorf("%s event %s: %w", id, name, err)
				}
				if note != "" {
					spec.Notes = append(spec.Notes, fmt.Sprintf("%s event %s: %s", id, name, note))
				} else {
					spec.Schedules = append(spec.Schedules, sc)
				}
			case "DynamoDB":
				m, err := readStream(s, id, name, props)
				if err != nil {
					return nil, fmt.Errorf("%s event %s: %w", id, name, err)
				}
				spec.Streams = append(spec.Streams, m)
				for _, n := range m.Notes {
					spec.Notes = append(spec.Notes, id+" "+name+": "+n)
				}
			case "SQS":
				m, err := readQueue(s, id, name, props)
				if err != nil {
					return nil, fmt.Errorf("%s event %s: %w", id, name, err)
				}
				spec.Queues = append(spec.Queues, m)
				for _, n := range m.Notes {
					spec.Notes = append(spec.Notes, id+" "+name+": "+n)
				}
			default:
				spec.Notes = append(spec.Notes, fmt.Sprintf("%s event %s: type %s is not emulated", id, name, typ))
			}
		}
	}
	routes, notes, err := readV2Routes(s, spec)
	if err != nil {
		return nil, err
	}
	spec.Routes = append(spec.Routes, routes...)
	for _, n := range notes {
		spec.Notes = appendOnce(spec.Notes, n)
	}
	seen := map[string]string{}
	for _, r := range spec.Routes {
		if prev, dup := seen[r.Key()]; dup {
			return nil, fmt.Errorf("route %s is declared twice (%s and %s)", r.Key(), prev, r.Function+"."+r.Event)
		}
		seen[r.Key()] = r.Function + "." + r.Event
	}
	return spec, nil
}

// The API Gateway v2 resources the runner reads routes from.
const (
	typeV2Route       = "AWS::ApiGatewayV2::Route"
	typeV2Integration = "AWS::ApiGatewayV2::Integration"
)

var v2RouteProps = map[string]bool{"ApiId": true, "RouteKey": true, "Target": true, "AuthorizationType": true}

// readV2Routes reads the AWS::ApiGatewayV2::Route resources: each route's
// key, its Lambda proxy integration's function, and its authorization type
// (evaluated, so that !If on a parameter holds as it does in AWS). Only what
// the runner emulates is accepted.
func readV2Routes(s *provision.Stack, spec *Spec) ([]Route, []string, error) {
	var out []Route
	var notes []string
	for _, id := range s.Template.ResourcesOfType(typeV2Route) {
		res := s.Template.Resources[id]
		on, err := s.Eval.Enabled(res)
		if err != nil || !on {
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		for k := range res.Properties {
			if !v2RouteProps[k] {
				return nil, nil, fmt.Errorf("%s: route property %s is not known to the local runner", id, k)
			}
		}
		fn, err := integrationFunction(s, id, res.Properties["Target"])
		if err != nil {
			return nil, nil, err
		}
		if _, ok := spec.Functions[fn]; !ok {
			return nil, nil, fmt.Errorf("%s: its integration invokes %s, which is not an enabled function of the template", id, fn)
		}
		vals, err := s.Eval.Eval(map[string]any{"RouteKey": res.Properties["RouteKey"], "AuthorizationType": res.Properties["AuthorizationType"]})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", id, err)
		}
		p, _ := vals.(map[string]any)
		r := Route{Function: fn, Event: id, API: refID(res.Properties["ApiId"])}
		switch auth, _ := p["AuthorizationType"].(string); auth {
		case "", "NONE":
		case "AWS_IAM":
			r.IAM = true
			notes = append(notes, id+": AWS_IAM authorization is emulated by requiring a SigV4 Authorization header; the signature is not verified")
		default:
			return nil, nil, fmt.Errorf("%s: authorization type %s is not emulated", id, auth)
		}
		key, _ := p["RouteKey"].(string)
		if key == "$default" {
			r.Default, r.Method, r.Path = true, "ANY", "/{proxy+}"
		} else {
			method, path, ok := strings.Cut(key, " ")
			if !ok || !strings.HasPrefix(path, "/") {
				return nil, nil, fmt.Errorf("%s: route key %q is not \"METHOD /path\" or $default", id, key)
			}
			r.Method, r.Path = strings.ToUpper(method), path
		}
		r.segments = strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
		for i, seg := range r.segments {
			if strings.HasSuffix(seg, "+}") && i != len(r.segments)-1 {
				return nil, nil, fmt.Errorf("%s: path %q: a greedy {name+} must be the last segment", id, r.Path)
			}
		}
		out = append(out, r)
	}
	return out, notes, nil
}

// integrationFunction follows a route's Target ("integrations/${Id}") to an
// AWS_PROXY integration of payload format 2.0 and returns the logical id of
// the function it invokes (IntegrationUri: !GetAtt Fn.Arn).
func integrationFunction(s *provision.Stack, route string, target any) (string, error) {
	sub, _ := target.(map[string]any)
	expr, _ := sub["Fn::Sub"].(string)
	integ, ok := strings.CutPrefix(expr, "integrations/${")
	integ, ok2 := strings.CutSuffix(integ, "}")
	res, found := s.Template.Resources[integ]
	if !ok || !ok2 || !found || res.Type != typeV2Integration {
		return "", fmt.Errorf("%s: Target must be !Sub \"integrations/${Integration}\" naming an %s of the template", route, typeV2Integration)
	}
	p := res.Properties
	if t, _ := p["IntegrationType"].(string); t != "AWS_PROXY" {
		return "", fmt.Errorf("%s: integration type %v: only AWS_PROXY is emulated", integ, p["IntegrationType"])
	}
	if v, _ := cfn.String(p["PayloadFormatVersion"]); v != "2.0" {
		return "", fmt.Errorf("%s: PayloadFormatVersion %v: only 2.0 is emulated", integ, p["PayloadFormatVersion"])
	}
	var fn string
	switch ga := p["IntegrationUri"].(type) {
	case map[string]any:
		switch att := ga["Fn::GetAtt"].(type) {
		case []any:
			if len(att) == 2 && att[1] == "Arn" {
				fn, _ = att[0].(string)
			}
		case string:
			fn, _ = strings.CutSuffix(att, ".Arn")
		}
	}
	if fn == "" {
		return "", fmt.Errorf("%s: IntegrationUri must be !GetAtt <Function>.Arn", integ)
	}
	return fn, nil
}

func refID(v any) string {
	m, _ := v.(map[string]any)
	id, _ := m["Ref"].(string)
	return id
}

var httpAPIProps = map[string]bool{
	"Path": true, "Method": true, "ApiId": true, "PayloadFormatVersion": true, "TimeoutInMillis": true,
	"Auth": true, "RouteSettings": true,
}

// readRoute reads an HttpApi event and, when it names an
// AWS::Serverless::HttpApi through ApiId, that API's default authorizer.
// The API itself is not provisioned (the runner is the API), so ApiId is
// resolved by name rather than evaluated.
func readRoute(s *provision.Stack, fn, name string, props map[string]any) (Route, []string, error) {
	var notes []string
	rest := map[string]any{}
	for k, v := range props {
		if !httpAPIProps[k] {
			return Route{}, nil, fmt.Errorf("HttpApi property %s is not known to the local runner", k)
		}
		if k != "ApiId" {
			rest[k] = v
		}
	}
	r := Route{Function: fn, Event: name}
	if v, ok := props["ApiId"]; ok {
		ref, _ := v.(map[string]any)
		id, _ := ref["Ref"].(string)
		apiRes, found := s.Template.Resources[id]
		if !found || apiRes.Type != "AWS::Serverless::HttpApi" {
			return Route{}, nil, fmt.Errorf("ApiId must be !Ref of an AWS::Serverless::HttpApi of the template")
		}
		r.API = id
		// Only Auth is evaluated: the rest (access logs, throttling) refers
		// to resources that exist only in AWS.
		ap := apiRes.Properties
		authVal, err := s.Eval.Eval(ap["Auth"])
		if err != nil {
			return Route{}, nil, fmt.Errorf("%s Auth: %w", id, err)
		}
		if auth, _ := authVal.(map[string]any); auth != nil {
			switch auth["DefaultAuthorizer"] {
			case nil, "NONE":
			case "AWS_IAM":
				r.IAM = true
				notes = append(notes, id+": AWS_IAM authorization is emulated by requiring a SigV4 Authorization header; the signature is not verified")
			default:
				return Route{}, nil, fmt.Errorf("%s: authorizer %v is not emulated", id, auth["DefaultAuthorizer"])
			}
		}
		for _, k := range []string{"DefaultRouteSettings", "RouteSettings", "StageVariables", "CorsConfiguration", "Domain", "AccessLogSettings"} {
			if _, ok := ap[k]; ok {
				notes = append(notes, fmt.Sprintf("%s: %s is not emulated", id, k))
			}
		}
	}
	vals, err := s.Eval.Eval(rest)
	if err != nil {
		return Route{}, nil, err
	}
	p, _ := vals.(map[string]any)
	if auth, ok := p["Auth"].(map[string]any); ok {
		switch auth["Authorizer"] {
		case "AWS_IAM":
			r.IAM = true
		case "NONE":
			r.IAM = false
		default:
			return Route{}, nil, fmt.Errorf("route authorizer %v is not emulated", auth["Authorizer"])
		}
	}
	path, _ := p["Path"].(string)
	method, _ := p["Method"].(string)
	if v, ok := p["PayloadFormatVersion"]; ok {
		if s, _ := cfn.String(v); s != "2.0" {
			return Route{}, nil, fmt.Errorf("PayloadFormatVersion %v: only 2.0 is emulated", v)
		}
	}
	if path == "" && method == "" {
		r.Default = true
		path, method = "/{proxy+}", "ANY"
	}
	if path == "" || method == "" {
		return Route{}, nil, fmt.Errorf("HttpApi event needs both Path and Method (or neither, for $default)")
	}
	if !strings.HasPrefix(path, "/") {
		return Route{}, nil, fmt.Errorf("path %q does not start with /", path)
	}
	method = strings.ToUpper(method)
	if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
		method = "ANY"
	}
	r.Method, r.Path = method, path
	r.segments = strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range r.segments {
		if strings.HasSuffix(seg, "+}") && i != len(r.segments)-1 {
			return Route{}, nil, fmt.Errorf("path %q: a greedy {name+} must be the last segment", path)
		}
	}
	return r, notes, nil
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// readSchedule reads a schedule event with a rate() expression; anything
// else (cron, time zones, flexible windows) comes back as a note.
func readSchedule(ev *cfn.Evaluator, fn, name string, props map[string]any) (Schedule, string, error) {
	vals, err := ev.Eval(props)
	if err != nil {
		return Schedule{}, "", err
	}
	p, _ := vals.(map[string]any)
	sc := Schedule{Function: fn, Event: name, Enabled: true}
	expr, _ := p["Schedule"].(string)
	if e, ok := p["ScheduleExpression"].(string); ok {
		expr = e
	}
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return sc, fmt.Sprintf("schedule %q is not emulated (only rate(N minutes|hours|days))", expr), nil
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	sc.Every = time.Duration(n) * unit
	if st, ok := p["State"].(string); ok && st != "ENABLED" {
		sc.Enabled = false
	}
	if en, ok := p["Enabled"]; ok {
		if b, _ := cfn.String(en); b == "false" {
			sc.Enabled = false
		}
	}
	sc.Input, _ = p["Input"].(string)
	if sc.Input == "" {
		sc.Input = "{}"
	}
	return sc, "", nil
}

func appendOnce(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

var dynamoDBProps = map[string]bool{
	"Stream": true, "StartingPosition": true, "StartingPositionTimestamp": true, "BatchSize": true, "Enabled": true,
	"MaximumBatchingWindowInSeconds": true, "MaximumRetryAttempts": true, "BisectBatchOnFunctionError": true,
	"MaximumRecordAgeInSeconds": true, "DestinationConfig": true, "ParallelizationFactor": true,
	"TumblingWindowInSeconds": true, "FunctionResponseTypes": true, "FilterCriteria": true, "KmsKeyArn": true,
	"MetricsConfig": true,
}

func readStream(s *provision.Stack, fn, name string, props map[string]any) (StreamMapping, error) {
	for k := range props {
		if !dynamoDBProps[k] {
			return StreamMapping{}, fmt.Errorf("DynamoDB event property %s is not known to the local runner", k)
		}
	}
	vals, err := s.Eval.Eval(props)
	if err != nil {
		return StreamMapping{}, err
	}
	p, _ := vals.(map[string]any)
	// AWS's defaults (CreateEventSourceMapping for DynamoDB Streams).
	m := StreamMapping{Function: fn, Event: name, BatchSize: 100, MaxRetryAttempts: -1, MaxRecordAge: -1, Enabled: true, ParallelizationFactor: 1}
	if m.StreamArn, err = str(p, "Stream"); err != nil || m.StreamArn == "" {
		return m, fmt.Errorf("Stream: no stream ARN (%v)", err)
	}
	if m.StartingPosition, err = str(p, "StartingPosition"); err != nil {
		return m, err
	}
	switch m.StartingPosition {
	case "TRIM_HORIZON", "LATEST":
	case "AT_TIMESTAMP":
		return m, fmt.Errorf("StartingPosition AT_TIMESTAMP is not emulated")
	default:
		return m, fmt.Errorf("StartingPosition %q: want TRIM_HORIZON or LATEST", m.StartingPosition)
	}
	if err := readStreamNumbers(p, &m); err != nil {
		return m, err
	}
	if m.MaxRecordAge == 0 {
		m.MaxRecordAge = -1
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"BisectBatchOnFunctionError", &m.Bisect}, {"Enabled", &m.Enabled}} {
		if v, ok := p[b.key]; ok {
			sv, _ := cfn.String(v)
			bv, err := strconv.ParseBool(sv)
			if err != nil {
				return m, fmt.Errorf("%s %v: want true or false", b.key, v)
			}
			*b.dst = bv
		}
	}
	if v, ok := p["FunctionResponseTypes"]; ok {
		l, _ := v.([]any)
		for _, t := range l {
			switch t {
			case "ReportBatchItemFailures":
				m.ReportBatchItemFailure = true
			default:
				return m, fmt.Errorf("FunctionResponseTypes %v is not known", t)
			}
		}
	}
	if err := readStreamTargets(s, p, &m); err != nil {
		return m, err
	}
	m.PartitionKey = partitionKey(s, m.StreamArn)
	for _, k := range []string{"KmsKeyArn", "MetricsConfig", "StartingPositionTimestamp"} {
		if _, ok := p[k]; ok {
			m.Notes = append(m.Notes, k+" is not emulated")
		}
	}
	return m, nil
}

// readStreamNumbers reads a stream event's whole-number settings, each
// within the range AWS accepts.
func readStreamNumbers(p map[string]any, m *StreamMapping) error {
	ints := []struct {
		key      string
		lo, hi   int
		dst      func(int)
		optional bool
	}{
		{"BatchSize", 1, 10000, func(n int) { m.BatchSize = n }, true},
		{"MaximumBatchingWindowInSeconds", 0, 300, func(n int) { m.BatchingWindow = time.Duration(n) * time.Second }, true},
		{"MaximumRetryAttempts", -1, 10000, func(n int) { m.MaxRetryAttempts = n }, true},
		{"MaximumRecordAgeInSeconds", -1, 604800, func(n int) {
			if n >= 0 {
				m.MaxRecordAge = time.Duration(n) * time.Second
			}
		}, true},
		{"ParallelizationFactor", 1, 10, func(n int) { m.ParallelizationFactor = n }, true},
		{"TumblingWindowInSeconds", 0, 900, func(n int) {
			if n > 0 {
				m.Notes = append(m.Notes, "TumblingWindowInSeconds is not emulated")
			}
		}, true},
	}
	for _, f := range ints {
		v, ok := p[f.key]
		if !ok {
			continue
		}
		n, err := intOf(v)
		if err != nil || n < f.lo || n > f.hi {
			return fmt.Errorf("%s %v: want a whole number from %d to %d", f.key, v, f.lo, f.hi)
		}
		f.dst(n)
	}
	return nil
}

// readStreamTargets reads a stream event's filters and its on-failure
// destination, which must be a queue of the provisioned stack.
func readStreamTargets(s *provision.Stack, p map[string]any, m *StreamMapping) error {
	if v, ok := p["FilterCriteria"]; ok {
		fc, _ := v.(map[string]any)
		filters, _ := fc["Filters"].([]any)
		if len(filters) > 5 {
			return fmt.Errorf("FilterCriteria: %d filters, Lambda allows 5", len(filters))
		}
		for i, f := range filters {
			fm, _ := f.(map[string]any)
			src, _ := fm["Pattern"].(string)
			pat, err := CompilePattern(src)
			if err != nil {
				return fmt.Errorf("FilterCriteria filter %d: %w", i, err)
			}
			m.Filters = append(m.Filters, pat)
		}
	}
	if v, ok := p["DestinationConfig"]; ok {
		dc, _ := v.(map[string]any)
		of, _ := dc["OnFailure"].(map[string]any)
		if of != nil {
			typ, _ := of["Type"].(string)
			if typ != "" && typ != "SQS" {
				return fmt.Errorf("DestinationConfig OnFailure Type %s: only SQS is emulated", typ)
			}
			arn, _ := of["Destination"].(string)
			if arn == "" {
				return fmt.Errorf("DestinationConfig OnFailure has no Destination")
			}
			m.OnFailureArn = arn
			for _, r := range s.Resources {
				if r.Type == provision.TypeQueue && r.Attributes["Arn"] == arn {
					m.OnFailureQueueURL = r.PhysicalID
				}
			}
			if m.OnFailureQueueURL == "" {
				return fmt.Errorf("DestinationConfig OnFailure %s is not a provisioned queue", arn)
			}
		}
	}
	return nil
}

// partitionKey is the HASH key attribute of the template's table whose
// stream has the given ARN, or "" when it cannot be told.
func partitionKey(s *provision.Stack, streamArn string) string {
	if s.Template == nil {
		return ""
	}
	for id, r := range s.Resources {
		if r.Attributes["StreamArn"] != streamArn {
			continue
		}
		res, ok := s.Template.Resources[id]
		if !ok {
			return ""
		}
		ks, _ := res.Properties["KeySchema"].([]any)
		for _, k := range ks {
			km, _ := k.(map[string]any)
			if km["KeyType"] == "HASH" {
				name, _ := km["AttributeName"].(string)
				return name
			}
		}
	}
	return ""
}

func str(p map[string]any, key string) (string, error) {
	v, ok := p[key]
	if !ok {
		return "", fmt.Errorf("%s is required", key)
	}
	return cfn.String(v)
}

func intOf(v any) (int, error) {
	s, err := cfn.String(v)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

func intValue(ev *cfn.Evaluator, v any) (int, error) {
	x, err := ev.Eval(v)
	if err != nil {
		return 0, err
	}
	return intOf(x)
}
