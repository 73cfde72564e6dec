// Package cfn reads a CloudFormation/SAM template generically and evaluates
// the intrinsic functions that resource definitions use, so local tooling can
// create resources from the same template that is deployed to AWS.
//
// It parses YAML nodes directly (gopkg.in/yaml.v3) instead of a typed model:
// typed SAM models drop fields they do not know (FilterCriteria,
// FunctionResponseTypes on stream events), and a local emulation that
// silently loses a setting is worse than none.
package cfn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed template. Values are plain Go values (map[string]any,
// []any, string, bool, int64, float64, nil); short-form tags such as !Ref or
// !GetAtt are turned into their long form ({"Ref": ...}, {"Fn::GetAtt": [...]}).
type Template struct {
	Parameters map[string]Parameter
	Conditions map[string]any
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
}

// Parameter is a template parameter; only what evaluation needs.
type Parameter struct {
	Type          string
	Default       any
	AllowedValues []any
	// AllowedPattern (a String's), MinValue and MaxValue (a Number's), as
	// CloudFormation checks them before it deploys.
	AllowedPattern     string
	MinValue, MaxValue any
}

// Resource is one entry of the Resources section.
type Resource struct {
	LogicalID  string
	Type       string
	Condition  string
	DependsOn  []string
	Properties map[string]any
	Metadata   map[string]any
}

// ParseFile reads and parses a template file.
func ParseFile(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses a YAML or JSON template.
func Parse(src []byte) (*Template, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	raw, err := nodeValue(&doc)
	if err != nil {
		return nil, err
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parse template: top level is not a mapping")
	}
	t := &Template{
		Parameters: map[string]Parameter{},
		Conditions: asMap(top["Conditions"]),
		Globals:    asMap(top["Globals"]),
		Resources:  map[string]Resource{},
		Outputs:    asMap(top["Outputs"]),
	}
	for name, v := range asMap(top["Parameters"]) {
		m := asMap(v)
		p := Parameter{Default: m["Default"]}
		p.Type, _ = m["Type"].(string)
		p.AllowedValues, _ = m["AllowedValues"].([]any)
		p.AllowedPattern, _ = m["AllowedPattern"].(string)
		p.MinValue, p.MaxValue = m["MinValue"], m["MaxValue"]
		t.Parameters[name] = p
	}
	resources := asMap(top["Resources"])
	if len(resources) == 0 {
		return nil, fmt.Errorf("parse template: no Resources")
	}
	for id, v := range resources {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parse template: resource %s is not a mapping", id)
		}
		r := Resource{LogicalID: id, Properties: asMap(m["Properties"]), Metadata: asMap(m["Metadata"])}
		r.Type, _ = m["Type"].(string)
		if r.Type == "" {
			return nil, fmt.Errorf("parse template: resource %s has no Type", id)
		}
		r.Condition, _ = m["Condition"].(string)
		switch d := m["DependsOn"].(type) {
		case string:
			r.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				if s, ok := x.(string); ok {
					r.DependsOn = append(r.DependsOn, s)
				}
			}
		}
		t.Resources[id] = r
	}
	return t, nil
}

// ResourcesOfType returns the logical ids of resources of one type, sorted.
func (t *Template) ResourcesOfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// shortTags maps YAML short-form tags to their long-form function names.
var shortTags = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition",
	"!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!If": "Fn::If", "!Equals": "Fn::Equals",
	"!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or", "!Join": "Fn::Join",
	"!Select": "Fn::Select", "!Split": "Fn::Split", "!FindInMap": "Fn::FindInMap",
	"!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue", "!Base64": "Fn::Base64",
	"!Cidr": "Fn::Cidr", "!ToJsonString": "Fn::ToJsonString", "!Length": "Fn::Length",
}

func nodeValue(n *yaml.Node) (any, error) {
	v, err := plainValue(n)
	if err != nil {
		return nil, err
	}
	if n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		return v, nil
	}
	if fn, ok := shortTags[n.Tag]; ok {
		if fn == "Fn::GetAtt" {
			// !GetAtt Resource.Attribute is a scalar; the long form is a list.
			if s, ok := v.(string); ok {
				res, attr, found := strings.Cut(s, ".")
				if !found {
					return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, s)
				}
				v = []any{res, attr}
			}
		}
		return map[string]any{fn: v}, nil
	}
	if isLocalTag(n.Tag) {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	return v, nil
}

func plainValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, fmt.Errorf("parse template: empty document")
		}
		return nodeValue(n.Content[0])
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			v, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		// A tagged scalar (!Ref X) is decoded as its string value.
		if isLocalTag(n.Tag) {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if i, ok := v.(int); ok {
			return int64(i), nil
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node kind %d", n.Line, n.Kind)
}

// isLocalTag reports a tag such as !Ref, as opposed to YAML's own !!str.
func isLocalTag(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

func asMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// JSON renders an evaluated value as compact JSON (CloudFormation turns a
// mapping given where a JSON string is expected, such as an SQS RedrivePolicy,
// into JSON the same way).
func JSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
