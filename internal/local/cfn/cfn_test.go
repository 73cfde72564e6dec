package cfn_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
)

// fakeResolver stands in for provisioned resources: Ref and GetAtt answer
// with values derived from their arguments, so a test can see which
// resource and attribute were asked for.
type fakeResolver struct{}

func (fakeResolver) Ref(id string) (string, error) { return "ref-" + id, nil }

func (fakeResolver) GetAtt(id, attr string) (any, error) {
	if attr == "Missing" {
		return nil, errors.New("attribute not provisioned")
	}
	return "att-" + id + "-" + attr, nil
}

// withValue wraps a one-line YAML value in a minimal template, as the
// property V of resource R.
func withValue(value string) string {
	return "Resources:\n  R:\n    Type: Test::R\n    Properties:\n      V: " + value + "\n"
}

func TestParseTurnsTemplatesIntoLongForm(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want any
	}{
		{
			name: "short Ref becomes Ref",
			src:  withValue("!Ref Thing"),
			want: map[string]any{"Ref": "Thing"},
		},
		{
			name: "scalar GetAtt is split at the first dot",
			src:  withValue("!GetAtt Res.Outputs.Name"),
			want: map[string]any{"Fn::GetAtt": []any{"Res", "Outputs.Name"}},
		},
		{
			name: "list GetAtt is kept as a list",
			src:  withValue("!GetAtt [Res, Arn]"),
			want: map[string]any{"Fn::GetAtt": []any{"Res", "Arn"}},
		},
		{
			name: "string Sub becomes Fn::Sub",
			src:  withValue(`!Sub "${AWS::StackName}-x"`),
			want: map[string]any{"Fn::Sub": "${AWS::StackName}-x"},
		},
		{
			name: "Sub with variables keeps the variables map",
			src:  withValue(`!Sub ["${A}-${B}", {A: !Ref P, B: b}]`),
			want: map[string]any{"Fn::Sub": []any{"${A}-${B}", map[string]any{"A": map[string]any{"Ref": "P"}, "B": "b"}}},
		},
		{
			name: "If becomes Fn::If",
			src:  withValue("!If [C, yes, no]"),
			want: map[string]any{"Fn::If": []any{"C", "yes", "no"}},
		},
		{
			name: "Equals becomes Fn::Equals",
			src:  withValue("!Equals [!Ref P, x]"),
			want: map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "P"}, "x"}},
		},
		{
			name: "nested short tags all become long form",
			src:  withValue(`!If [C, !Join ["-", [!Ref P, !GetAtt R.Arn]], !Not [!Condition D]]`),
			want: map[string]any{"Fn::If": []any{
				"C",
				map[string]any{"Fn::Join": []any{"-", []any{map[string]any{"Ref": "P"}, map[string]any{"Fn::GetAtt": []any{"R", "Arn"}}}}},
				map[string]any{"Fn::Not": []any{map[string]any{"Condition": "D"}}},
			}},
		},
		{
			name: "YAML's own str tag keeps a number a string",
			src:  withValue("!!str 8"),
			want: "8",
		},
		{
			name: "untagged integers are int64",
			src:  withValue("8"),
			want: int64(8),
		},
		{
			name: "aliases resolve to the anchored tagged value",
			src:  "X: &a !Ref P\nResources:\n  R:\n    Type: Test::R\n    Properties:\n      V: *a\n",
			want: map[string]any{"Ref": "P"},
		},
		{
			name: "JSON templates parse with long-form functions",
			src:  `{"Resources": {"R": {"Type": "Test::R", "Properties": {"V": {"Fn::GetAtt": ["Res", "Arn"]}}}}}`,
			want: map[string]any{"Fn::GetAtt": []any{"Res", "Arn"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := cfn.Parse([]byte(tc.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := tmpl.Resources["R"].Properties["V"]
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("V = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseReadsSections(t *testing.T) {
	src := `{
  "Parameters": {"P": {"Type": "String", "Default": "a", "AllowedValues": ["a", "b"]}},
  "Conditions": {"C": {"Fn::Equals": [{"Ref": "P"}, "a"]}},
  "Resources": {
    "R": {"Type": "Test::R", "Condition": "C", "DependsOn": "S", "Metadata": {"M": 1}},
    "S": {"Type": "Test::S", "DependsOn": ["R", "T"]},
    "T": {"Type": "Test::R"}
  }
}`
	tmpl, err := cfn.Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"parameter default is read", tmpl.Parameters["P"].Default, "a"},
		{"parameter type is read", tmpl.Parameters["P"].Type, "String"},
		{"parameter allowed values are read", tmpl.Parameters["P"].AllowedValues, []any{"a", "b"}},
		{"condition is read", tmpl.Conditions["C"], map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "P"}, "a"}}},
		{"resource condition is read", tmpl.Resources["R"].Condition, "C"},
		{"string DependsOn becomes a list", tmpl.Resources["R"].DependsOn, []string{"S"}},
		{"list DependsOn is kept", tmpl.Resources["S"].DependsOn, []string{"R", "T"}},
		{"metadata is read", tmpl.Resources["R"].Metadata, map[string]any{"M": int64(1)}},
		{"logical id is filled in", tmpl.Resources["T"].LogicalID, "T"},
		{"resources of a type are sorted", tmpl.ResourcesOfType("Test::R"), []string{"R", "T"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

func TestParseRejectsBadTemplates(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr []string
	}{
		{
			name:    "unknown local tag names its line",
			src:     "Resources:\n  R:\n    Type: Test::R\n    Properties:\n      V: !Bogus x\n",
			wantErr: []string{"line 5", "!Bogus"},
		},
		{
			name:    "unknown tag on a sequence names its line",
			src:     "Resources:\n  R:\n    Type: Test::R\n    Properties:\n      A: 1\n      V: !Bogus [x, y]\n",
			wantErr: []string{"line 6", "!Bogus"},
		},
		{
			name:    "scalar GetAtt without a dot is refused",
			src:     withValue("!GetAtt Res"),
			wantErr: []string{"line 5", "Resource.Attribute"},
		},
		{
			name:    "template without resources is refused",
			src:     "Parameters:\n  P:\n    Type: String\n",
			wantErr: []string{"no Resources"},
		},
		{
			name:    "resource without a type is refused",
			src:     "Resources:\n  R:\n    Properties: {}\n",
			wantErr: []string{"resource R has no Type"},
		},
		{
			name:    "resource that is not a mapping is refused",
			src:     "Resources:\n  R: text\n",
			wantErr: []string{"resource R is not a mapping"},
		},
		{
			name:    "top level that is not a mapping is refused",
			src:     "- a\n- b\n",
			wantErr: []string{"top level is not a mapping"},
		},
		{
			name:    "empty document is refused",
			src:     "",
			wantErr: []string{"parse template"},
		},
		{
			name:    "malformed YAML is refused",
			src:     "Resources: [\n",
			wantErr: []string{"parse template"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cfn.Parse([]byte(tc.src))
			assertErr(t, err, tc.wantErr...)
		})
	}
}

// base declares parameters, conditions and resources; the tested expression
// is the property V of resource Probe.
const base = `
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Shards:
    Type: Number
    Default: 8
  Owner:
    Type: String
    Default: team
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  ProdWithEightShards: !And [!Condition IsProd, !Equals [!Ref Shards, 8]]
  ProdOrDev: !Or [!Condition IsProd, !Condition IsDev]
  NeitherProdNorDev: !And [!Condition IsProd, !Condition IsDev]
  ProdOrManyShards: !Or [!Condition IsProd, !Not [!Equals [!Ref Shards, 8]]]
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Table:
    Type: AWS::DynamoDB::Table
  Probe:
    Type: Test::Probe
    Properties:
      V: %s
`

func parseBase(t *testing.T, value string) *cfn.Template {
	t.Helper()
	tmpl, err := cfn.Parse(fmt.Appendf(nil, base, value))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tmpl
}

func TestNewEvaluatorChecksParameters(t *testing.T) {
	tests := []struct {
		name    string
		src     string // defaults to the base template
		stack   cfn.Stack
		param   string
		want    string
		wantErr []string
	}{
		{
			name:  "default is used without an override",
			stack: cfn.Stack{Name: "s"},
			param: "Env", want: "dev",
		},
		{
			name:  "number default is used as its string form",
			stack: cfn.Stack{Name: "s"},
			param: "Shards", want: "8",
		},
		{
			name:  "override replaces the default",
			stack: cfn.Stack{Name: "s", Parameters: map[string]string{"Env": "prod"}},
			param: "Env", want: "prod",
		},
		{
			name:  "override of a parameter without allowed values is taken as is",
			stack: cfn.Stack{Name: "s", Parameters: map[string]string{"Owner": "ops"}},
			param: "Owner", want: "ops",
		},
		{
			name:  "empty override is a value, not a missing one",
			stack: cfn.Stack{Name: "s", Parameters: map[string]string{"Owner": ""}},
			param: "Owner", want: "",
		},
		{
			name:    "override of an undeclared parameter is refused",
			stack:   cfn.Stack{Name: "s", Parameters: map[string]string{"Nope": "x"}},
			wantErr: []string{`"Nope"`, "not declared"},
		},
		{
			name:    "value outside allowed values is refused",
			stack:   cfn.Stack{Name: "s", Parameters: map[string]string{"Env": "staging"}},
			wantErr: []string{`"Env"`, "staging", "not one of"},
		},
		{
			name:    "parameter without default or value is refused",
			src:     "Parameters:\n  P:\n    Type: String\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s"},
			wantErr: []string{`"P"`, "no default"},
		},
		{
			name:  "parameter without default takes the given value",
			src:   "Parameters:\n  P:\n    Type: String\nResources:\n  R:\n    Type: Test::R\n",
			stack: cfn.Stack{Name: "s", Parameters: map[string]string{"P": "given"}},
			param: "P", want: "given",
		},
		{
			name:  "a number at its MaxValue is taken",
			src:   "Parameters:\n  N:\n    Type: Number\n    Default: 5\n    MinValue: 1\n    MaxValue: 10\n  S:\n    Type: String\n    Default: ab\n    AllowedPattern: \"[a-z]+\"\nResources:\n  R:\n    Type: Test::R\n",
			stack: cfn.Stack{Name: "s", Parameters: map[string]string{"N": "10"}},
			param: "N", want: "10",
		},
		{
			name:    "a number one over its MaxValue is refused",
			src:     "Parameters:\n  N:\n    Type: Number\n    Default: 5\n    MinValue: 1\n    MaxValue: 10\n  S:\n    Type: String\n    Default: ab\n    AllowedPattern: \"[a-z]+\"\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s", Parameters: map[string]string{"N": "11"}},
			wantErr: []string{`"N"`, "outside its MaxValue 10"},
		},
		{
			name:    "a number under its MinValue is refused",
			src:     "Parameters:\n  N:\n    Type: Number\n    Default: 5\n    MinValue: 1\n    MaxValue: 10\n  S:\n    Type: String\n    Default: ab\n    AllowedPattern: \"[a-z]+\"\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s", Parameters: map[string]string{"N": "0"}},
			wantErr: []string{`"N"`, "outside its MinValue 1"},
		},
		{
			name:    "a string that its AllowedPattern matches only in part is refused",
			src:     "Parameters:\n  N:\n    Type: Number\n    Default: 5\n    MinValue: 1\n    MaxValue: 10\n  S:\n    Type: String\n    Default: ab\n    AllowedPattern: \"[a-z]+\"\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s", Parameters: map[string]string{"S": "ab1"}},
			wantErr: []string{`"S"`, "does not match its AllowedPattern"},
		},
		{
			name:    "missing stack name is refused",
			stack:   cfn.Stack{},
			wantErr: []string{"stack name is required"},
		},
		{
			name:    "condition that is not a boolean is refused",
			src:     "Conditions:\n  C: !Ref AWS::Region\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s"},
			wantErr: []string{"condition C", "boolean"},
		},
		{
			name:    "condition on an unknown condition is refused",
			src:     "Conditions:\n  C: !Not [!Condition Missing]\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s"},
			wantErr: []string{`no condition "Missing"`},
		},
		{
			name:    "conditions that refer to each other in a cycle are refused",
			src:     "Conditions:\n  A: !Not [!Condition B]\n  B: !Not [!Condition A]\nResources:\n  R:\n    Type: Test::R\n",
			stack:   cfn.Stack{Name: "s"},
			wantErr: []string{"circular"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tmpl *cfn.Template
			if tc.src == "" {
				tmpl = parseBase(t, "x")
			} else {
				var err error
				if tmpl, err = cfn.Parse([]byte(tc.src)); err != nil {
					t.Fatalf("Parse: %v", err)
				}
			}
			e, err := tmpl.NewEvaluator(tc.stack)
			if len(tc.wantErr) > 0 {
				assertErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("NewEvaluator: %v", err)
			}
			got, err := e.Param(tc.param)
			if err != nil {
				t.Fatalf("Param(%s): %v", tc.param, err)
			}
			if got != tc.want {
				t.Errorf("Param(%s) = %q, want %q", tc.param, got, tc.want)
			}
		})
	}
}

func TestConditionsFollowParameters(t *testing.T) {
	prod := map[string]string{"Env": "prod"}
	tests := []struct {
		name   string
		params map[string]string
		cond   string
		want   bool
	}{
		{"Equals is false when the values differ", nil, "IsProd", false},
		{"Equals is true when the values match", prod, "IsProd", true},
		{"Not inverts another condition", nil, "IsDev", true},
		{"Not of a true condition is false", prod, "IsDev", false},
		{"And is true when all are true", prod, "ProdWithEightShards", true},
		{"And is false when one is false", map[string]string{"Env": "prod", "Shards": "4"}, "ProdWithEightShards", false},
		{"Or is true when one is true", nil, "ProdOrDev", true},
		{"And of exclusive conditions is false", prod, "NeitherProdNorDev", false},
		{"Or is false when all are false", nil, "ProdOrManyShards", false},
		{"Or with a nested Not sees the override", map[string]string{"Shards": "16"}, "ProdOrManyShards", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseBase(t, "x").NewEvaluator(cfn.Stack{Name: "s", Parameters: tc.params})
			if err != nil {
				t.Fatalf("NewEvaluator: %v", err)
			}
			got, err := e.Condition(tc.cond)
			if err != nil {
				t.Fatalf("Condition(%s): %v", tc.cond, err)
			}
			if got != tc.want {
				t.Errorf("Condition(%s) = %v, want %v", tc.cond, got, tc.want)
			}
		})
	}
}

func TestEnabledFollowsTheResourceCondition(t *testing.T) {
	tests := []struct {
		name     string
		resource cfn.Resource
		want     bool
	}{
		{"resource without condition is enabled", cfn.Resource{}, true},
		{"resource with a true condition is enabled", cfn.Resource{Condition: "IsDev"}, true},
		{"resource with a false condition is disabled", cfn.Resource{Condition: "IsProd"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseBase(t, "x").NewEvaluator(cfn.Stack{Name: "s"})
			if err != nil {
				t.Fatalf("NewEvaluator: %v", err)
			}
			got, err := e.Enabled(tc.resource)
			if err != nil {
				t.Fatalf("Enabled: %v", err)
			}
			if got != tc.want {
				t.Errorf("Enabled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEvalResolvesIntrinsics(t *testing.T) {
	withResolver := cfn.Stack{Name: "stk", Region: "eu-west-1", AccountID: "123456789012", Resolver: fakeResolver{}}
	prod := withResolver
	prod.Parameters = map[string]string{"Env": "prod"}
	noResolver := cfn.Stack{Name: "stk"}
	tests := []struct {
		name    string
		value   string
		stack   cfn.Stack
		want    any
		wantErr []string
	}{
		// Ref
		{name: "Ref to a parameter gives its value", value: "!Ref Env", stack: withResolver, want: "dev"},
		{name: "Ref to a resource asks the resolver", value: "!Ref Queue", stack: withResolver, want: "ref-Queue"},
		{name: "Ref to the stack name", value: "!Ref AWS::StackName", stack: withResolver, want: "stk"},
		{name: "Ref to the region", value: "!Ref AWS::Region", stack: withResolver, want: "eu-west-1"},
		{name: "Ref to the account id", value: "!Ref AWS::AccountId", stack: withResolver, want: "123456789012"},
		{name: "Ref to the partition", value: "!Ref AWS::Partition", stack: withResolver, want: "aws"},
		{name: "Ref to the URL suffix", value: "!Ref AWS::URLSuffix", stack: withResolver, want: "amazonaws.com"},
		{name: "Ref to the stack id", value: "!Ref AWS::StackId", stack: withResolver, want: "arn:aws:cloudformation:eu-west-1:123456789012:stack/stk/local"},
		{name: "region defaults to us-east-1", value: "!Ref AWS::Region", stack: noResolver, want: "us-east-1"},
		{name: "account id has a default", value: "!Ref AWS::AccountId", stack: noResolver, want: "000000000000"},
		{name: "Ref to a resource without resolver is refused", value: "!Ref Queue", stack: noResolver, wantErr: []string{"Ref Queue", "no resources are known yet"}},
		{name: "Ref to an unknown name is refused", value: "!Ref Nope", stack: withResolver, wantErr: []string{"Ref Nope", "no such parameter or resource"}},
		{name: "Ref to a non-name is refused", value: "!Ref [a, b]", stack: withResolver, wantErr: []string{"Ref takes a name"}},
		// GetAtt
		{name: "scalar GetAtt asks the resolver", value: "!GetAtt Queue.Arn", stack: withResolver, want: "att-Queue-Arn"},
		{name: "list GetAtt asks the resolver", value: "!GetAtt [Table, StreamArn]", stack: withResolver, want: "att-Table-StreamArn"},
		{name: "GetAtt with a Sub attribute", value: `!GetAtt [Table, !Sub "${Env}Arn"]`, stack: withResolver, want: "att-Table-devArn"},
		{name: "GetAtt without resolver is refused", value: "!GetAtt Queue.Arn", stack: noResolver, wantErr: []string{"Fn::GetAtt Queue.Arn", "no resources are known yet"}},
		{name: "GetAtt on an unknown resource is refused", value: "!GetAtt Nope.Arn", stack: withResolver, wantErr: []string{`no resource "Nope"`}},
		{name: "GetAtt passes on resolver errors", value: "!GetAtt Queue.Missing", stack: withResolver, wantErr: []string{"attribute not provisioned"}},
		{name: "GetAtt with three parts is refused", value: "!GetAtt [Queue, Arn, X]", stack: withResolver, wantErr: []string{"Fn::GetAtt", "takes 2 values"}},
		// Sub
		{name: "Sub replaces a parameter", value: `!Sub "env-${Env}"`, stack: withResolver, want: "env-dev"},
		{name: "Sub replaces a number parameter", value: `!Sub "${Shards}-shards"`, stack: withResolver, want: "8-shards"},
		{name: "Sub replaces the stack name and region", value: `!Sub "${AWS::StackName}.${AWS::Region}"`, stack: withResolver, want: "stk.eu-west-1"},
		{name: "Sub replaces Res.Attr through the resolver", value: `!Sub "${Queue.Arn}/x"`, stack: withResolver, want: "att-Queue-Arn/x"},
		{name: "Sub replaces a resource name through the resolver", value: `!Sub "${Table}"`, stack: withResolver, want: "ref-Table"},
		{name: "Sub keeps an escaped literal", value: `!Sub "${!Literal}-${Env}"`, stack: withResolver, want: "${Literal}-dev"},
		{name: "Sub uses the variables map", value: `!Sub ["${A}-${B}", {A: !Ref Owner, B: lit}]`, stack: withResolver, want: "team-lit"},
		{name: "Sub variables shadow parameters and resources", value: `!Sub ["${Env}-${Queue}", {Env: mine, Queue: q}]`, stack: withResolver, want: "mine-q"},
		{name: "Sub leaves text without variables alone", value: `!Sub "plain $ text"`, stack: withResolver, want: "plain $ text"},
		{name: "Sub of an unknown name is refused", value: `!Sub "x-${Nope}"`, stack: withResolver, wantErr: []string{"Fn::Sub ${Nope}", "no such parameter or resource"}},
		{name: "Sub of an unknown Res.Attr is refused", value: `!Sub "${Nope.Arn}"`, stack: withResolver, wantErr: []string{"Fn::Sub ${Nope.Arn}", `no resource "Nope"`}},
		{name: "Sub of a resource without resolver is refused", value: `!Sub "${Queue.Arn}"`, stack: noResolver, wantErr: []string{"Fn::Sub ${Queue.Arn}", "no resources are known yet"}},
		{name: "Sub with a non-string format is refused", value: `!Sub [[a], {}]`, stack: withResolver, wantErr: []string{"first argument must be a string"}},
		// If and NoValue
		{name: "If takes the then branch on a true condition", value: "!If [IsDev, yes, no]", stack: withResolver, want: "yes"},
		{name: "If takes the else branch on a false condition", value: "!If [IsProd, yes, no]", stack: withResolver, want: "no"},
		{name: "If follows a parameter override", value: "!If [IsProd, yes, no]", stack: prod, want: "yes"},
		{name: "If evaluates only the chosen branch", value: "!If [IsDev, ok, !Ref Nope]", stack: withResolver, want: "ok"},
		{name: "If on an unknown condition is refused", value: "!If [Nope, a, b]", stack: withResolver, wantErr: []string{`no condition "Nope"`}},
		{name: "If with two arguments is refused", value: "!If [IsDev, a]", stack: withResolver, wantErr: []string{"Fn::If takes"}},
		{name: "NoValue in If removes a map key", value: "{Keep: 1, Drop: !If [IsProd, x, !Ref AWS::NoValue]}", stack: withResolver, want: map[string]any{"Keep": int64(1)}},
		{name: "NoValue in If removes a list element", value: "[a, !If [IsProd, b, !Ref AWS::NoValue], c]", stack: withResolver, want: []any{"a", "c"}},
		{name: "If keeps the key when its condition holds", value: "{Keep: 1, Drop: !If [IsProd, x, !Ref AWS::NoValue]}", stack: prod, want: map[string]any{"Keep": int64(1), "Drop": "x"}},
		{name: "NoValue alone evaluates to nil", value: "!Ref AWS::NoValue", stack: withResolver, want: nil},
		{name: "Condition inside a value evaluates to a boolean", value: "!Condition IsDev", stack: withResolver, want: true},
		// Join, Select, ToJsonString, plain values
		{name: "Join joins evaluated items", value: `!Join [":", [a, !Ref Env, !Ref Shards, true]]`, stack: withResolver, want: "a:dev:8:true"},
		{name: "Join drops NoValue items", value: `!Join [",", [a, !Ref AWS::NoValue, b]]`, stack: withResolver, want: "a,b"},
		{name: "Join of a map item is refused", value: `!Join [",", [{a: b}]]`, stack: withResolver, wantErr: []string{"Fn::Join", "not a scalar"}},
		{name: "Join with a non-list is refused", value: `!Join [",", abc]`, stack: withResolver, wantErr: []string{"must be a list"}},
		{name: "Select picks by index", value: "!Select [1, [a, b, c]]", stack: withResolver, want: "b"},
		{name: "Select takes a string index", value: `!Select ["2", [a, b, c]]`, stack: withResolver, want: "c"},
		{name: "Select out of range is refused", value: "!Select [3, [a, b, c]]", stack: withResolver, wantErr: []string{"index 3 out of range"}},
		{name: "Select with a non-number index is refused", value: "!Select [x, [a]]", stack: withResolver, wantErr: []string{`index "x"`}},
		{name: "Split splits an evaluated string", value: `!Split [",", !Sub "${Env},b,,c"]`, stack: withResolver, want: []any{"dev", "b", "", "c"}},
		{name: "Split of a string without the delimiter is one item", value: `!Split [",", abc]`, stack: withResolver, want: []any{"abc"}},
		{name: "Select of Split picks one part", value: `!Select [1, !Split [":", "arn:aws:sqs"]]`, stack: withResolver, want: "aws"},
		{name: "Split with a computed delimiter is refused", value: `!Split [!Ref Env, abc]`, stack: withResolver, wantErr: []string{"Fn::Split: delimiter must be a non-empty string"}},
		{name: "Split of a list is refused", value: `!Split [",", [a]]`, stack: withResolver, wantErr: []string{"Fn::Split", "not a scalar"}},
		{name: "ToJsonString renders evaluated JSON", value: "!ToJsonString {arn: !GetAtt Queue.Arn, max: 5, on: !Condition IsDev}", stack: withResolver, want: `{"arn":"att-Queue-Arn","max":5,"on":true}`},
		{name: "ToJsonString drops NoValue keys", value: "!ToJsonString {a: 1, b: !Ref AWS::NoValue}", stack: withResolver, want: `{"a":1}`},
		{name: "plain values pass through", value: "{a: [1, 2.5, true, null, s]}", stack: withResolver, want: map[string]any{"a": []any{int64(1), 2.5, true, nil, "s"}}},
		{name: "map with several keys is not a function", value: "{Ref: Queue, Other: 1}", stack: withResolver, want: map[string]any{"Ref": "Queue", "Other": int64(1)}},
		{name: "unsupported function is refused", value: "!FindInMap [M, a, b]", stack: withResolver, wantErr: []string{"Fn::FindInMap", "not supported"}},
		{name: "error names the path to the failing key", value: "{Outer: [ok, {Inner: !Ref Nope}]}", stack: withResolver, wantErr: []string{"Outer: [1]: Inner: Ref Nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := parseBase(t, tc.value)
			e, err := tmpl.NewEvaluator(tc.stack)
			if err != nil {
				t.Fatalf("NewEvaluator: %v", err)
			}
			got, err := e.Eval(tmpl.Resources["Probe"].Properties["V"])
			if len(tc.wantErr) > 0 {
				assertErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Eval = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestDependenciesListReferencedResources(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{name: "Ref to a resource", value: "!Ref Queue", want: []string{"Queue"}},
		{name: "scalar GetAtt", value: "!GetAtt Table.StreamArn", want: []string{"Table"}},
		{name: "list GetAtt", value: "!GetAtt [Queue, Arn]", want: []string{"Queue"}},
		{name: "Sub with Res.Attr and a bare resource", value: `!Sub "${Queue.Arn}/${Table}"`, want: []string{"Queue", "Table"}},
		{name: "Sub with variables looks into format and values", value: `!Sub ["${Q}-${Table}", {Q: !GetAtt Queue.QueueName}]`, want: []string{"Queue", "Table"}},
		{name: "Sub variable that shadows a resource is not a dependency", value: `!Sub ["${Queue}", {Queue: literal}]`, want: nil},
		{name: "Sub escaped literal is not a dependency", value: `!Sub "${!Queue}"`, want: nil},
		{name: "parameters and pseudo parameters are ignored", value: `[!Ref Env, !Ref AWS::Region, !Ref AWS::NoValue, !Sub "${Env}-${AWS::StackName}-${AWS::Region}"]`, want: nil},
		{name: "both If branches count", value: "!If [IsProd, !Ref Queue, !GetAtt Table.Arn]", want: []string{"Queue", "Table"}},
		{name: "references deep in maps and lists count", value: "{A: [{B: {C: !Ref Table}}]}", want: []string{"Table"}},
		{name: "result is sorted and deduplicated", value: `[!Ref Table, !GetAtt Queue.Arn, !Sub "${Table.Arn}", !Ref Queue, !Sub "${Queue}"]`, want: []string{"Queue", "Table"}},
		{name: "plain values have none", value: "{a: [1, x]}", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := parseBase(t, tc.value)
			got := tmpl.Dependencies(tmpl.Resources["Probe"].Properties["V"])
			if !slices.Equal(got, tc.want) {
				t.Errorf("Dependencies = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJSONAndStringRenderValues(t *testing.T) {
	tests := []struct {
		name    string
		render  func() (string, error)
		want    string
		wantErr bool
	}{
		{name: "JSON renders a map with sorted keys", render: func() (string, error) { return cfn.JSON(map[string]any{"b": 1, "a": "x"}) }, want: `{"a":"x","b":1}`},
		{name: "String renders an int64", render: func() (string, error) { return cfn.String(int64(42)) }, want: "42"},
		{name: "String renders a float without exponent", render: func() (string, error) { return cfn.String(1209600.0) }, want: "1209600"},
		{name: "String renders a bool", render: func() (string, error) { return cfn.String(false) }, want: "false"},
		{name: "String refuses a list", render: func() (string, error) { return cfn.String([]any{"a"}) }, wantErr: true},
		{name: "String refuses nil", render: func() (string, error) { return cfn.String(nil) }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.render()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRealTemplateEventsQueueFollowsQueueType(t *testing.T) {
	tests := []struct {
		name     string
		params   map[string]string
		wantName string
		wantFifo bool
	}{
		{name: "default makes a FIFO queue", params: nil, wantName: "dispatcher-local-events.fifo", wantFifo: true},
		{name: "fifo parameter makes a FIFO queue", params: map[string]string{"EventsQueueType": "fifo"}, wantName: "dispatcher-local-events.fifo", wantFifo: true},
		{name: "standard parameter makes a standard queue", params: map[string]string{"EventsQueueType": "standard"}, wantName: "dispatcher-local-events", wantFifo: false},
	}
	fifoOnly := []string{"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := cfn.ParseFile("../../../infra/template.yaml")
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			e, err := tmpl.NewEvaluator(cfn.Stack{Name: "dispatcher-local", Parameters: tc.params, Resolver: fakeResolver{}})
			if err != nil {
				t.Fatalf("NewEvaluator: %v", err)
			}
			v, err := e.Eval(tmpl.Resources["EventsQueue"].Properties)
			if err != nil {
				t.Fatalf("Eval EventsQueue: %v", err)
			}
			props := v.(map[string]any)

			if got := props["QueueName"]; got != tc.wantName {
				t.Errorf("QueueName = %#v, want %q", got, tc.wantName)
			}
			if name, _ := props["QueueName"].(string); strings.HasSuffix(name, ".fifo") != tc.wantFifo {
				t.Errorf("QueueName %q: .fifo suffix = %v, want %v", name, !tc.wantFifo, tc.wantFifo)
			}
			if tc.wantFifo {
				if got := props["FifoQueue"]; got != true {
					t.Errorf("FifoQueue = %#v, want true", got)
				}
				if got := props["DeduplicationScope"]; got != "messageGroup" {
					t.Errorf("DeduplicationScope = %#v, want messageGroup", got)
				}
			} else {
				for _, k := range fifoOnly {
					if got, ok := props[k]; ok {
						t.Errorf("%s = %#v, want it absent on a standard queue", k, got)
					}
				}
			}
			wantRedrive := map[string]any{"deadLetterTargetArn": "att-EventsConsumerDeadLetterQueue-Arn", "maxReceiveCount": int64(5)}
			if got := props["RedrivePolicy"]; !reflect.DeepEqual(got, wantRedrive) {
				t.Errorf("RedrivePolicy = %#v, want %#v", got, wantRedrive)
			}
			if got := tmpl.Dependencies(tmpl.Resources["EventsQueue"].Properties); !slices.Equal(got, []string{"EventsConsumerDeadLetterQueue"}) {
				t.Errorf("Dependencies = %q, want [EventsConsumerDeadLetterQueue]", got)
			}
		})
	}
}

func TestRealTemplateRejectsAnUnknownQueueType(t *testing.T) {
	tmpl, err := cfn.ParseFile("../../../infra/template.yaml")
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	_, err = tmpl.NewEvaluator(cfn.Stack{Name: "s", Parameters: map[string]string{"EventsQueueType": "priority"}})
	assertErr(t, err, "EventsQueueType", "priority")
}

func assertErr(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
