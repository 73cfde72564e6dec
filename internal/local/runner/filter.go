package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Pattern is one compiled Lambda event filter pattern (the subset of the
// EventBridge pattern language that Lambda event filtering accepts). It is
// matched against the JSON form of a record, as Lambda matches it: for a
// DynamoDB stream record that is the object with eventName, eventSource,
// awsRegion and the change under "dynamodb" (Keys, NewImage, ...).
//
// Supported: exact strings, numbers, booleans and null; "" (empty);
// several values of one field (or); several fields (and); prefix and suffix
// (also with equals-ignore-case); equals-ignore-case; anything-but (a value,
// a list, a prefix or a suffix); numeric comparisons (=, <, <=, >, >= and
// ranges); exists true/false. Anything else is refused when the pattern is
// compiled, as Lambda refuses it when the mapping is created, rather than
// matched wrongly.
type Pattern struct {
	src  string
	root fieldsMatcher
}

// String returns the pattern's source.
func (p *Pattern) String() string { return p.src }

type fieldsMatcher func(obj map[string]any) bool

// leaf is one condition on a value; present is false when the field is
// missing from the record.
type leaf func(v any, present bool) bool

// CompilePattern checks and compiles a filter pattern.
func CompilePattern(src string) (*Pattern, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("filter pattern is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("filter pattern: trailing data after the JSON object")
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("filter pattern must be a JSON object")
	}
	root, err := compileFields(obj, "")
	if err != nil {
		return nil, fmt.Errorf("filter pattern: %w", err)
	}
	return &Pattern{src: src, root: root}, nil
}

// Match reports whether a record, given as JSON, matches the pattern.
func (p *Pattern) Match(record []byte) (bool, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(record)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return false, fmt.Errorf("record is not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false, nil
	}
	return p.root(obj), nil
}

// MatchValue matches an already decoded record (numbers as json.Number or
// float64).
func (p *Pattern) MatchValue(obj map[string]any) bool { return p.root(obj) }

func compileFields(obj map[string]any, path string) (fieldsMatcher, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("%s: empty object", orRoot(path))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type field struct {
		name   string
		nested fieldsMatcher
		leaves []leaf
	}
	fields := make([]field, 0, len(keys))
	for _, k := range keys {
		p := path + "." + k
		if strings.HasPrefix(k, "$") {
			return nil, fmt.Errorf("%s: %s is not supported by Lambda event filtering", p, k)
		}
		switch v := obj[k].(type) {
		case map[string]any:
			m, err := compileFields(v, p)
			if err != nil {
				return nil, err
			}
			fields = append(fields, field{name: k, nested: m})
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("%s: empty list of values matches nothing", p)
			}
			ls := make([]leaf, 0, len(v))
			for i, c := range v {
				l, err := compileLeaf(c, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return nil, err
				}
				ls = append(ls, l)
			}
			fields = append(fields, field{name: k, leaves: ls})
		default:
			return nil, fmt.Errorf("%s: a value to match must be in a list, e.g. [%v]", p, v)
		}
	}
	return func(o map[string]any) bool {
		for _, f := range fields {
			v, present := o[f.name]
			if f.nested != nil {
				sub, _ := v.(map[string]any)
				if !f.nested(sub) {
					return false
				}
				continue
			}
			if !matchLeaves(f.leaves, v, present) {
				return false
			}
		}
		return true
	}, nil
}

// matchLeaves: any condition matching is enough (or). A list in the record
// matches when any of its elements does, as in EventBridge.
func matchLeaves(ls []leaf, v any, present bool) bool {
	if arr, ok := v.([]any); ok && present {
		for _, e := range arr {
			for _, l := range ls {
				if l(e, true) {
					return true
				}
			}
		}
		// exists:false cannot match a present list; exists:true needs an
		// element, which an empty list does not have.
		return false
	}
	for _, l := range ls {
		if l(v, present) {
			return true
		}
	}
	return false
}

func orRoot(p string) string {
	if p == "" {
		return "pattern"
	}
	return strings.TrimPrefix(p, ".")
}

func compileLeaf(c any, path string) (leaf, error) {
	switch x := c.(type) {
	case nil:
		return func(v any, present bool) bool { return present && v == nil }, nil
	case string:
		return func(v any, present bool) bool { s, ok := v.(string); return present && ok && s == x }, nil
	case bool:
		return func(v any, present bool) bool { b, ok := v.(bool); return present && ok && b == x }, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return func(v any, present bool) bool { n, ok := number(v); return present && ok && n == f }, nil
	case map[string]any:
		return compileOperator(x, path)
	}
	return nil, fmt.Errorf("%s: %T cannot be matched", path, c)
}

func compileOperator(op map[string]any, path string) (leaf, error) {
	if len(op) != 1 {
		return nil, fmt.Errorf("%s: an operator object has exactly one key", path)
	}
	var name string
	for k := range op {
		name = k
	}
	arg, p := op[name], path+"."+name
	switch name {
	case "prefix", "suffix":
		s, ci, err := stringArg(arg, p)
		if err != nil {
			return nil, err
		}
		return func(v any, present bool) bool {
			str, ok := v.(string)
			return present && ok && affix(name, str, s, ci)
		}, nil
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("%s: wants a string", p)
		}
		return func(v any, present bool) bool {
			str, ok := v.(string)
			return present && ok && strings.EqualFold(str, s)
		}, nil
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return nil, fmt.Errorf("%s: wants true or false", p)
		}
		// Exists applies to leaves only: an object is not one.
		return func(v any, present bool) bool {
			_, isObj := v.(map[string]any)
			return (present && !isObj) == b
		}, nil
	case "numeric":
		return compileNumeric(arg, p)
	case "anything-but":
		return compileAnythingBut(arg, p)
	default:
		return nil, fmt.Errorf("%s: operator %q is not supported by Lambda event filtering (or by this emulation)", path, name)
	}
}

// stringArg reads "x" or {"equals-ignore-case": "x"}.
func stringArg(arg any, p string) (s string, ci bool, err error) {
	switch a := arg.(type) {
	case string:
		return a, false, nil
	case map[string]any:
		if v, ok := a["equals-ignore-case"].(string); ok && len(a) == 1 {
			return v, true, nil
		}
	}
	return "", false, fmt.Errorf("%s: wants a string or {\"equals-ignore-case\": string}", p)
}

func affix(kind, s, a string, ci bool) bool {
	if ci {
		s, a = strings.ToLower(s), strings.ToLower(a)
	}
	if kind == "prefix" {
		return strings.HasPrefix(s, a)
	}
	return strings.HasSuffix(s, a)
}

func compileAnythingBut(arg any, p string) (leaf, error) {
	var exclude []leaf
	switch a := arg.(type) {
	case string, bool, json.Number:
		l, err := compileLeaf(a, p)
		if err != nil {
			return nil, err
		}
		exclude = []leaf{l}
	case []any:
		if len(a) == 0 {
			return nil, fmt.Errorf("%s: empty list", p)
		}
		for i, x := range a {
			switch x.(type) {
			case string, bool, json.Number:
			default:
				return nil, fmt.Errorf("%s[%d]: anything-but lists hold strings, numbers or booleans", p, i)
			}
			l, err := compileLeaf(x, fmt.Sprintf("%s[%d]", p, i))
			if err != nil {
				return nil, err
			}
			exclude = append(exclude, l)
		}
	case map[string]any:
		if len(a) != 1 {
			return nil, fmt.Errorf("%s: wants one of prefix, suffix, equals-ignore-case", p)
		}
		for k := range a {
			switch k {
			case "prefix", "suffix", "equals-ignore-case":
			default:
				return nil, fmt.Errorf("%s: anything-but %q is not supported", p, k)
			}
		}
		l, err := compileOperator(a, p)
		if err != nil {
			return nil, err
		}
		exclude = []leaf{l}
	default:
		return nil, fmt.Errorf("%s: wants a value, a list of values, or a prefix/suffix", p)
	}
	// A missing field matches no anything-but, as in EventBridge.
	return func(v any, present bool) bool {
		if !present {
			return false
		}
		if _, isObj := v.(map[string]any); isObj {
			return false
		}
		for _, l := range exclude {
			if l(v, true) {
				return false
			}
		}
		return true
	}, nil
}

func compileNumeric(arg any, p string) (leaf, error) {
	a, ok := arg.([]any)
	if !ok || len(a) == 0 || len(a)%2 != 0 || len(a) > 4 {
		return nil, fmt.Errorf("%s: wants [op, n] or [op, n, op, n]", p)
	}
	type cmp struct {
		op string
		n  float64
	}
	var cmps []cmp
	for i := 0; i < len(a); i += 2 {
		op, ok := a[i].(string)
		if !ok {
			return nil, fmt.Errorf("%s: operator %v is not a string", p, a[i])
		}
		switch op {
		case "=", "<", "<=", ">", ">=":
		default:
			return nil, fmt.Errorf("%s: unknown numeric operator %q", p, op)
		}
		num, ok := a[i+1].(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s: %v is not a number", p, a[i+1])
		}
		f, err := num.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		cmps = append(cmps, cmp{op, f})
	}
	return func(v any, present bool) bool {
		// Numeric matching applies to JSON numbers only. DynamoDB's N values
		// are strings in the record, and Lambda does not compare them as
		// numbers either.
		n, ok := number(v)
		if !present || !ok {
			return false
		}
		for _, c := range cmps {
			var hold bool
			switch c.op {
			case "=":
				hold = n == c.n
			case "<":
				hold = n < c.n
			case "<=":
				hold = n <= c.n
			case ">":
				hold = n > c.n
			case ">=":
				hold = n >= c.n
			}
			if !hold {
				return false
			}
		}
		return true
	}, nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

// Filters is a mapping's FilterCriteria: a record passes when any pattern
// matches; with no patterns every record passes.
type Filters []*Pattern

// Match reports whether a record (as JSON) passes.
func (fs Filters) Match(record []byte) (bool, error) {
	if len(fs) == 0 {
		return true, nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(record)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return false, fmt.Errorf("record is not JSON: %w", err)
	}
	obj, _ := v.(map[string]any)
	for _, p := range fs {
		if p.root(obj) {
			return true, nil
		}
	}
	return false, nil
}
