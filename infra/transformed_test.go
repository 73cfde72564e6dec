package infra_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
)

// transformed runs the SAM translator itself (tools/transform.py, the
// transform CloudFormation runs at deploy time) under every parameter set
// that changes the template's shape, and returns each set's CloudFormation.
// What deploys is this output, not the SAM source: the checks below read it.
func transformed(t *testing.T) map[string]map[string]any {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the SAM translator from .venv")
	}
	transformOnce.Do(func() {
		// Not t.TempDir(): the first caller's directory would go with it.
		dir, err := os.MkdirTemp("", "transformed")
		if err != nil {
			transformErr = err.Error()
			return
		}
		transformDir = dir
		transformedSets, transformErr = transform(dir)
	})
	if transformErr != "" {
		t.Fatal(transformErr)
	}
	return transformedSets
}

var (
	transformOnce   sync.Once
	transformedSets map[string]map[string]any
	transformErr    string
	transformDir    string
)

// transformedParameters returns the parameter values each transformed set
// was made with (tools/transform.py writes them beside the templates).
func transformedParameters(t *testing.T) map[string]map[string]string {
	t.Helper()
	transformed(t)
	b, err := os.ReadFile(filepath.Join(transformDir, "parameters.index"))
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]map[string]string
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func transform(dir string) (map[string]map[string]any, string) {
	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		return nil, fmt.Sprintf("the SAM translator is not installed (%v): run `make py-tools` (make test does)", err)
	}
	out, err := exec.Command(py, filepath.Join("..", "tools", "transform.py"), "template.yaml", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Sprintf("the SAM transform refused the template: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 32 {
		return nil, fmt.Sprintf("%d transformed templates, want 32 (2 values of 4 parameters, with and without the reuse parameters)", len(files))
	}
	sets := map[string]map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err.Error()
		}
		var cf map[string]any
		if err := json.Unmarshal(b, &cf); err != nil {
			return nil, err.Error()
		}
		sets[strings.TrimSuffix(filepath.Base(f), ".json")] = cf
	}
	return sets, ""
}

func resources(cf map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range cf["Resources"].(map[string]any) {
		out[id] = r.(map[string]any)
	}
	return out
}

func propsOf(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// getAttID returns X of {"Fn::GetAtt": ["X", attr]}.
func getAttID(v any) string {
	m, _ := v.(map[string]any)
	l, _ := m["Fn::GetAtt"].([]any)
	if len(l) != 2 {
		return ""
	}
	id, _ := l[0].(string)
	return id
}

// Every function's role, as deployed: no managed policy is attached (not
// AWSLambdaDynamoDBExecutionRole, which reads every stream in the account,
// nor AWSLambdaBasicExecutionRole, which writes every log group), no
// statement allows a resource "*" but ses:GetAccount's, which has no
// resource type (readsSendQuota), logs are written only to the function's
// own log group, and the stream is readable only as this table's.
func TestTheDeployedRolesReadOnlyThisTablesStream(t *testing.T) {
	for set, cf := range transformed(t) {
		res := resources(cf)
		for id, r := range res {
			if r["Type"] != "AWS::Lambda::Function" {
				continue
			}
			roleID := getAttID(propsOf(r)["Role"])
			role, ok := res[roleID]
			if !ok || role["Type"] != "AWS::IAM::Role" {
				t.Errorf("%s, %s: role %v is not a role of the stack", set, id, propsOf(r)["Role"])
				continue
			}
			for _, arn := range asList(propsOf(role)["ManagedPolicyArns"]) {
				t.Errorf("%s, %s: managed policy %v attached", set, id, arn)
			}
			lc, _ := propsOf(r)["LoggingConfig"].(map[string]any)
			logGroup, _ := lc["LogGroup"].(map[string]any)
			ownLogs, _ := logGroup["Ref"].(string)
			if ownLogs == "" {
				t.Errorf("%s, %s: LoggingConfig.LogGroup %v is not a log group of the stack", set, id, lc["LogGroup"])
			}
			for _, p := range asList(propsOf(role)["Policies"]) {
				pm, _ := p.(map[string]any)
				if br, ok := pm["Fn::If"].([]any); ok && len(br) == 3 {
					pm, _ = br[1].(map[string]any)
				}
				doc, _ := pm["PolicyDocument"].(map[string]any)
				for _, st := range asList(doc["Statement"]) {
					s := st.(map[string]any)
					for _, r := range asList(s["Resource"]) {
						if r == "*" && !readsSendQuota(s) {
							t.Errorf("%s, %s: statement %v allows every resource", set, id, s["Sid"])
						}
					}
					for _, a := range asList(s["Action"]) {
						a, _ := a.(string)
						if strings.HasPrefix(a, "logs:") {
							for _, r := range asList(s["Resource"]) {
								if getAttID(r) != ownLogs || r.(map[string]any)["Fn::GetAtt"].([]any)[1] != "Arn" {
									t.Errorf("%s, %s: %s on %v, want only its own log group %s", set, id, a, r, ownLogs)
								}
							}
						}
						if strings.HasPrefix(a, "dynamodb:") && (strings.Contains(a, "Stream") || a == "dynamodb:GetRecords" || a == "dynamodb:GetShardIterator") {
							for _, r := range asList(s["Resource"]) {
								if getAttID(r) != "OutboxTable" || r.(map[string]any)["Fn::GetAtt"].([]any)[1] != "StreamArn" {
									t.Errorf("%s, %s: %s on %v, want only the table's stream", set, id, a, r)
								}
							}
						}
					}
				}
			}
		}
	}
}

// Alarms can notify: the topic's key is the stack's own, and its policy
// lets CloudWatch use it (an AWS-managed key cannot be used by CloudWatch).
func TestTheAlarmTopicsKeyLetsCloudWatchPublish(t *testing.T) {
	for set, cf := range transformed(t) {
		res := resources(cf)
		topic := propsOf(res["AlarmTopic"])
		ref, _ := topic["KmsMasterKeyId"].(map[string]any)
		keyID, _ := ref["Ref"].(string)
		key, ok := res[keyID]
		if !ok || key["Type"] != "AWS::KMS::Key" {
			t.Errorf("%s: the alarm topic's key is %v, want a KMS key of the stack", set, topic["KmsMasterKeyId"])
			continue
		}
		var decrypt, generate bool
		for _, st := range asList(propsOf(key)["KeyPolicy"].(map[string]any)["Statement"]) {
			s := st.(map[string]any)
			p, _ := s["Principal"].(map[string]any)
			if s["Effect"] != "Allow" || !slices.Contains(asList(p["Service"]), any("cloudwatch.amazonaws.com")) {
				continue
			}
			for _, a := range asList(s["Action"]) {
				decrypt = decrypt || a == "kms:Decrypt"
				generate = generate || a == "kms:GenerateDataKey*" || a == "kms:GenerateDataKey"
			}
		}
		if !decrypt || !generate {
			t.Errorf("%s: the key policy does not let cloudwatch.amazonaws.com Decrypt and GenerateDataKey", set)
		}
	}
}

// What holds undelivered effects survives a stack deletion or a
// replacement; the schedule is named after the stack, so that two stacks
// in one account do not collide; every route follows ApiAuth.
func TestTheDeployedStackKeepsItsDataAndNamesItsSchedule(t *testing.T) {
	for set, cf := range transformed(t) {
		for id, r := range resources(cf) {
			switch r["Type"] {
			case "AWS::DynamoDB::Table", "AWS::SQS::Queue":
				if id == "RateLimitTable" {
					continue // holds no effect: a bucket lost is a full bucket (docs/callers.md)
				}
				if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
					t.Errorf("%s, %s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain", set, id, r["DeletionPolicy"], r["UpdateReplacePolicy"])
				}
			case "AWS::Scheduler::Schedule":
				name, _ := propsOf(r)["Name"].(map[string]any)
				if sub, _ := name["Fn::Sub"].(string); !strings.Contains(sub, "${AWS::StackName}") {
					t.Errorf("%s, %s: schedule name %v does not hold the stack name", set, id, propsOf(r)["Name"])
				}
			case "AWS::ApiGatewayV2::Route":
				auth, _ := propsOf(r)["AuthorizationType"].(map[string]any)
				if b, _ := json.Marshal(auth); string(b) != `{"Fn::If":["UseIamAuth","AWS_IAM","NONE"]}` {
					t.Errorf("%s, %s: AuthorizationType %s, want it to follow ApiAuth", set, id, b)
				}
			}
		}
	}
}

var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}`)

// CloudFormation refuses a resource that refers to a resource that may not
// exist (one with a Condition) outside an Fn::If: such a template passes
// the transform and fails at deploy.
func TestNoResourceRefersToOneThatMayNotExist(t *testing.T) {
	for set, cf := range transformed(t) {
		res := resources(cf)
		conditional := map[string]bool{}
		for id, r := range res {
			if _, ok := r["Condition"]; ok {
				conditional[id] = true
			}
		}
		var walk func(from string, v any)
		walk = func(from string, v any) {
			switch x := v.(type) {
			case map[string]any:
				if _, ok := x["Fn::If"]; ok {
					return // guarded
				}
				var targets []string
				if s, ok := x["Ref"].(string); ok {
					targets = append(targets, s)
				}
				if id := getAttID(x); id != "" {
					targets = append(targets, id)
				}
				switch sub := x["Fn::Sub"].(type) {
				case string:
					for _, m := range subRef.FindAllStringSubmatch(sub, -1) {
						targets = append(targets, m[1])
					}
				case []any:
					if s, ok := sub[0].(string); ok {
						for _, m := range subRef.FindAllStringSubmatch(s, -1) {
							targets = append(targets, m[1])
						}
					}
				}
				for _, id := range targets {
					if conditional[id] {
						t.Errorf("%s: %s refers to %s, which has a Condition, outside an Fn::If", set, from, id)
					}
				}
				for _, c := range x {
					walk(from, c)
				}
			case []any:
				for _, c := range x {
					walk(from, c)
				}
			}
		}
		for id, r := range res {
			if !conditional[id] {
				walk(id, r)
			}
		}
		for id, o := range cf["Outputs"].(map[string]any) {
			if _, ok := o.(map[string]any)["Condition"]; !ok {
				walk("output "+id, o)
			}
		}
	}
}

// The writer policy and the exports as deployed, under every parameter set:
// the policy grants only the transactional write actions, on the outbox
// table's ARN only (TestTheOutboxWriterPolicyGrantsOnlyTransactionalWritesOfOutboxItems
// checks its conditions), and the three outputs a user's stack imports are
// exported under the stack's name.
func TestTheDeployedStackExportsTheTableAndTheWriterPolicy(t *testing.T) {
	for set, cf := range transformed(t) {
		p, ok := resources(cf)["OutboxWriterPolicy"]
		if !ok || p["Type"] != "AWS::IAM::ManagedPolicy" {
			t.Errorf("%s: no AWS::IAM::ManagedPolicy OutboxWriterPolicy", set)
			continue
		}
		doc, _ := propsOf(p)["PolicyDocument"].(map[string]any)
		for _, st := range asList(doc["Statement"]) {
			s := st.(map[string]any)
			for _, a := range asList(s["Action"]) {
				if a, _ := a.(string); !slices.Contains(writerActions, a) {
					t.Errorf("%s: statement %v grants %s, want only %v", set, s["Sid"], a, writerActions)
				}
			}
			for _, r := range asList(s["Resource"]) {
				if b, _ := json.Marshal(r); string(b) != `{"Fn::GetAtt":["OutboxTable","Arn"]}` {
					t.Errorf("%s: statement %v grants on %s, want the outbox table's ARN only", set, s["Sid"], b)
				}
			}
		}
		outputs, _ := cf["Outputs"].(map[string]any)
		for _, id := range []string{"TableName", "TableArn", "OutboxWriterPolicyArn"} {
			o, _ := outputs[id].(map[string]any)
			export, _ := o["Export"].(map[string]any)
			if b, _ := json.Marshal(export["Name"]); string(b) != fmt.Sprintf(`{"Fn::Sub":"${AWS::StackName}-%s"}`, id) {
				t.Errorf("%s: output %s is exported as %s, want ${AWS::StackName}-%s", set, id, b, id)
			}
		}
	}
}

// The user's stack that docs/deploy.md shows ("Write outbox items from your
// own function") is a template that deploys, and it is wired to this
// stack's exports: cfn-lint and the SAM transform accept it, its function's
// role carries the imported OutboxWriterPolicyArn and its own table's
// policy, its DISPATCHER_TABLE is the imported TableName, and every name it
// imports is one this template exports.
func TestTheDocumentedUserStackImportsTheExports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the SAM translator from .venv")
	}
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Write outbox items from your own function\n")
	if !ok {
		t.Fatal(`docs/deploy.md has no section "Write outbox items from your own function"`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatal("the section has no ```yaml block: the user's stack")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "user.yaml")
	if err := os.WriteFile(src, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join("..", ".venv", "bin")
	if out, err := exec.Command(filepath.Join(venv, "cfn-lint"), src).CombinedOutput(); err != nil {
		t.Fatalf("cfn-lint refuses the documented stack: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(venv, "python"), filepath.Join("..", "tools", "transform.py"), src, dir).CombinedOutput(); err != nil {
		t.Fatalf("the SAM transform refuses the documented stack: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatal("the transform wrote nothing")
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var cf map[string]any
	if err := json.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}

	exported := map[string]bool{}
	for id, o := range load(t).Outputs {
		if o, _ := o.(map[string]any); o["Export"] != nil {
			exported[id] = true
		}
	}
	importOf := func(name string) string {
		return fmt.Sprintf(`{"Fn::ImportValue":{"Fn::Sub":"${DispatcherStack}-%s"}}`, name)
	}
	imports := regexp.MustCompile(`\{"Fn::ImportValue":\{"Fn::Sub":"\$\{DispatcherStack\}-(\w+)"\}\}`)
	all, _ := json.Marshal(cf)
	for _, m := range imports.FindAllStringSubmatch(string(all), -1) {
		if !exported[m[1]] {
			t.Errorf("the documented stack imports <stack>-%s, which infra/template.yaml does not export", m[1])
		}
	}

	res := resources(cf)
	var fns int
	for id, r := range res {
		if r["Type"] != "AWS::Lambda::Function" {
			continue
		}
		fns++
		env, _ := propsOf(r)["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		if b, _ := json.Marshal(vars["DISPATCHER_TABLE"]); string(b) != importOf("TableName") {
			t.Errorf("%s: DISPATCHER_TABLE = %s, want %s", id, b, importOf("TableName"))
		}
		role := res[getAttID(propsOf(r)["Role"])]
		var attached bool
		for _, arn := range asList(propsOf(role)["ManagedPolicyArns"]) {
			b, _ := json.Marshal(arn)
			attached = attached || string(b) == importOf("OutboxWriterPolicyArn")
		}
		if !attached {
			t.Errorf("%s: the role does not attach %s (ManagedPolicyArns %v)", id, importOf("OutboxWriterPolicyArn"), propsOf(role)["ManagedPolicyArns"])
		}
		// DynamoDBCrudPolicy: an inline statement that may PutItem on the
		// stack's own table.
		var ownTable bool
		for _, p := range asList(propsOf(role)["Policies"]) {
			pm, _ := p.(map[string]any)
			doc, _ := pm["PolicyDocument"].(map[string]any)
			for _, st := range asList(doc["Statement"]) {
				s, _ := st.(map[string]any)
				if !slices.Contains(asList(s["Action"]), any("dynamodb:PutItem")) {
					continue
				}
				for _, r := range asList(s["Resource"]) {
					b, _ := json.Marshal(r)
					for table, tr := range res {
						ownTable = ownTable || tr["Type"] == "AWS::DynamoDB::Table" && strings.Contains(string(b), fmt.Sprintf(`{"Ref":%q}`, table))
					}
				}
			}
		}
		if !ownTable {
			t.Errorf("%s: the role may not PutItem on the stack's own table (DynamoDBCrudPolicy)", id)
		}
	}
	if fns != 1 {
		t.Errorf("the documented stack has %d functions, want 1", fns)
	}
}

// Every deployed function has the template layer, and its EMAIL_TEMPLATES_DIR
// is where Lambda mounts what the Makefile stages: the layer's ContentUri
// (TEMPLATES_LAYER) holds one folder, which /opt/<folder> names.
func TestEveryFunctionReadsItsTemplatesFromTheTemplateLayer(t *testing.T) {
	tmpl := load(t)
	layer, ok := tmpl.Resources["EmailTemplatesLayer"]
	if !ok || layer.Type != "AWS::Serverless::LayerVersion" {
		t.Fatal("no EmailTemplatesLayer (AWS::Serverless::LayerVersion)")
	}
	uri, _ := layer.Properties["ContentUri"].(string)
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	staged := regexp.MustCompile(`(?m)^TEMPLATES_LAYER\s*:=\s*(\S+)$`).FindSubmatch(mk)
	if staged == nil || filepath.Clean(filepath.Join("..", string(staged[1]))) != filepath.Clean(uri) {
		t.Fatalf("the Makefile stages the layer in %q, the template's ContentUri is %q (relative to infra/)", staged, uri)
	}
	copyTo := regexp.MustCompile(`cp -R \$\(EMAIL_TEMPLATES\)/\. \$\(TEMPLATES_LAYER\)/(\S+)`).FindSubmatch(mk)
	if copyTo == nil {
		t.Fatal("the Makefile does not copy EMAIL_TEMPLATES into the layer's staging folder")
	}
	mount := "/opt/" + string(copyTo[1])
	for name, cf := range transformed(t) {
		var layerID string
		for id, r := range resources(cf) {
			if r["Type"] == "AWS::Lambda::LayerVersion" && strings.HasPrefix(id, "EmailTemplatesLayer") {
				layerID = id
			}
		}
		if layerID == "" {
			t.Fatalf("%s: no AWS::Lambda::LayerVersion from EmailTemplatesLayer", name)
		}
		n := 0
		for id, r := range resources(cf) {
			if r["Type"] != "AWS::Lambda::Function" {
				continue
			}
			n++
			p := propsOf(r)
			if got := fmt.Sprint(p["Layers"]); got != fmt.Sprintf("[map[Ref:%s]]", layerID) {
				t.Errorf("%s: %s layers %s, want the template layer %s", name, id, got, layerID)
			}
			env, _ := p["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			if vars["EMAIL_TEMPLATES_DIR"] != mount {
				t.Errorf("%s: %s EMAIL_TEMPLATES_DIR = %v, want %s", name, id, vars["EMAIL_TEMPLATES_DIR"], mount)
			}
		}
		if n != 5 {
			t.Errorf("%s: %d functions, want 5", name, n)
		}
	}
}

// As deployed, under every parameter set: the roles that send may
// ses:SendEmail exactly as the sender identities (SenderIdentities' domain
// and address when set, else SenderAddress's address) and through the
// configuration set in use (the stack's, or ExistingConfigurationSetName);
// they publish to the events queue in use (the stack's, or
// ExistingEventsQueueArn, whose URL the functions get), and a reused one
// is not created. The transformed CloudFormation is evaluated as
// CloudFormation would, with the set's parameters.
func TestTheDeployedGrantsFollowTheIdentitiesAndTheReusedResources(t *testing.T) {
	params := transformedParameters(t)
	for set := range transformed(t) {
		t.Run(set, func(t *testing.T) {
			tmpl, err := cfn.ParseFile(filepath.Join(transformDir, set+".json"))
			if err != nil {
				t.Fatal(err)
			}
			p := params[set]
			ev := evaluator(t, tmpl, p)
			reuse := p["ExistingEventsQueueArn"] != ""
			wantIDs := []string{"no-reply@dispatcher.example.com"}
			wantSet, wantQueue, wantURL := "ref:EmailConfigurationSet", "arn:aws:test:::EventsQueue.Arn", "ref:EventsQueue"
			if reuse {
				wantIDs = sorted(strings.Split(p["SenderIdentities"], ","))
				wantSet, wantQueue = p["ExistingConfigurationSetName"], p["ExistingEventsQueueArn"]
				wantURL = "https://sqs.us-east-1.amazonaws.com/123456789012/" + wantQueue[strings.LastIndex(wantQueue, ":")+1:]
			}
			for _, id := range []string{"EventsQueue", "EventsConsumerDeadLetterQueue", "EmailConfigurationSet"} {
				on, err := ev.Enabled(tmpl.Resources[id])
				if err != nil || on == reuse {
					t.Errorf("%s created = %v (err %v), want %v", id, on, err, !reuse)
				}
			}
			for _, fn := range sendingFunctions {
				ids, sets := sendGrant(t, tmpl, ev, fn)
				if !slices.Equal(ids, wantIDs) || len(sets) != 1 || sets[0] != wantSet {
					t.Errorf("%s may send as %v through %v, want exactly %v through %s", fn, ids, sets, wantIDs, wantSet)
				}
				var queues []string
				for _, s := range statements(t, tmpl, ev, fn) {
					if slices.Contains(asList(s["Action"]), any("sqs:SendMessage")) {
						for _, r := range asList(s["Resource"]) {
							if r, _ := r.(string); !strings.Contains(r, "DeadLetterQueue") && !strings.Contains(r, "StreamRecoveryQueue") {
								queues = append(queues, r)
							}
						}
					}
				}
				if !slices.Equal(queues, []string{wantQueue}) {
					t.Errorf("%s may publish to %v, want %s", fn, queues, wantQueue)
				}
				vars := props(t, tmpl, ev, fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
				if vars["EVENTS_QUEUE_URL"] != wantURL || vars["SES_CONFIGURATION_SET"] != strings.TrimPrefix(wantSet, "ref:") && vars["SES_CONFIGURATION_SET"] != wantSet {
					t.Errorf("%s: EVENTS_QUEUE_URL %v, SES_CONFIGURATION_SET %v; want %s, %s", fn, vars["EVENTS_QUEUE_URL"], vars["SES_CONFIGURATION_SET"], wantURL, wantSet)
				}
			}
		})
	}
}
