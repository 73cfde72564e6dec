package cfn

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Resolver answers Ref and Fn::GetAtt for resources that exist (provisioned
// locally, or deployed).
type Resolver interface {
	Ref(logicalID string) (string, error)
	GetAtt(logicalID, attribute string) (any, error)
}

// Stack is what evaluation needs beyond the template itself.
type Stack struct {
	Name       string
	Region     string
	AccountID  string
	Parameters map[string]string // overrides of the template's defaults
	Resolver   Resolver
}

// Evaluator evaluates intrinsic functions against one stack.
type Evaluator struct {
	t      *Template
	s      Stack
	params map[string]any
	conds  map[string]bool
	// pending holds the conditions being evaluated, so a cycle is an error
	// instead of unbounded recursion (a fatal stack overflow).
	pending map[string]bool
}

// noValue is what AWS::NoValue evaluates to; containers drop it.
type noValue struct{}

// NewEvaluator checks the parameters (unknown names, missing values, allowed
// values) and evaluates every condition once.
func (t *Template) NewEvaluator(s Stack) (*Evaluator, error) {
	if s.Name == "" {
		return nil, fmt.Errorf("cfn: stack name is required")
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.AccountID == "" {
		s.AccountID = "000000000000"
	}
	e := &Evaluator{t: t, s: s, params: map[string]any{}, conds: map[string]bool{}, pending: map[string]bool{}}
	for name := range s.Parameters {
		if _, ok := t.Parameters[name]; !ok {
			return nil, fmt.Errorf("cfn: parameter %q is not declared in the template", name)
		}
	}
	for name, p := range t.Parameters {
		var v any = p.Default
		if o, ok := s.Parameters[name]; ok {
			v = o
		}
		if v == nil {
			return nil, fmt.Errorf("cfn: parameter %q has no default and no value was given", name)
		}
		if len(p.AllowedValues) > 0 && !containsScalar(p.AllowedValues, v) {
			return nil, fmt.Errorf("cfn: parameter %q = %v is not one of %v", name, v, p.AllowedValues)
		}
		if err := p.check(v); err != nil {
			return nil, fmt.Errorf("cfn: parameter %q = %v %w", name, v, err)
		}
		e.params[name] = v
	}
	names := make([]string, 0, len(t.Conditions))
	for name := range t.Conditions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := e.Condition(name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// StackName returns the stack name in use.
func (e *Evaluator) StackName() string { return e.s.Name }

// check applies AllowedPattern (to the whole value) and MinValue and
// MaxValue (to a number).
func (p Parameter) check(v any) error {
	s, err := scalarString(v)
	if err != nil {
		return err
	}
	if p.AllowedPattern != "" {
		re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
		if err != nil {
			return fmt.Errorf("has an AllowedPattern Go cannot read: %w", err)
		}
		if !re.MatchString(s) {
			return fmt.Errorf("does not match its AllowedPattern %s", p.AllowedPattern)
		}
	}
	for _, b := range []struct {
		bound any
		out   func(n, b float64) bool
		what  string
	}{{p.MinValue, func(n, b float64) bool { return n < b }, "MinValue"}, {p.MaxValue, func(n, b float64) bool { return n > b }, "MaxValue"}} {
		if b.bound == nil {
			continue
		}
		bs, _ := scalarString(b.bound)
		bound, err1 := strconv.ParseFloat(bs, 64)
		n, err2 := strconv.ParseFloat(s, 64)
		if err1 != nil || err2 != nil || b.out(n, bound) {
			return fmt.Errorf("is outside its %s %s", b.what, bs)
		}
	}
	return nil
}

// Param returns a parameter's value as a string.
func (e *Evaluator) Param(name string) (string, error) {
	v, ok := e.params[name]
	if !ok {
		return "", fmt.Errorf("cfn: no parameter %q", name)
	}
	return scalarString(v)
}

// Condition evaluates a named condition (memoized).
func (e *Evaluator) Condition(name string) (bool, error) {
	if v, ok := e.conds[name]; ok {
		return v, nil
	}
	def, ok := e.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("cfn: no condition %q", name)
	}
	if e.pending[name] {
		return false, fmt.Errorf("cfn: condition %s refers to itself (circular)", name)
	}
	e.pending[name] = true
	defer delete(e.pending, name)
	v, err := e.Eval(def)
	if err != nil {
		return false, fmt.Errorf("cfn: condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("cfn: condition %s does not evaluate to a boolean", name)
	}
	e.conds[name] = b
	return b, nil
}

// Enabled reports whether a resource exists under the stack's conditions.
func (e *Evaluator) Enabled(r Resource) (bool, error) {
	if r.Condition == "" {
		return true, nil
	}
	return e.Condition(r.Condition)
}

// Eval evaluates every intrinsic function in v. AWS::NoValue removes the key
// or list element that holds it.
func (e *Evaluator) Eval(v any) (any, error) {
	out, err := e.eval(v)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(noValue); ok {
		return nil, nil
	}
	return out, nil
}

func (e *Evaluator) eval(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return e.fn(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			ev, err := e.eval(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := ev.(noValue); !drop {
				out[k] = ev
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, val := range x {
			ev, err := e.eval(val)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if _, drop := ev.(noValue); !drop {
				out = append(out, ev)
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

func (e *Evaluator) fn(name string, arg any) (any, error) {
	switch name {
	case "Ref":
		id, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref takes a name")
		}
		return e.ref(id)
	case "Condition":
		id, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Condition takes a name")
		}
		return e.Condition(id)
	case "Fn::GetAtt":
		return e.getAtt(arg)
	case "Fn::Sub":
		return e.sub(arg)
	case "Fn::If":
		return e.fnIf(arg)
	case "Fn::Equals":
		return e.equals(arg)
	case "Fn::Not", "Fn::And", "Fn::Or":
		return e.logic(name, arg)
	case "Fn::Join":
		return e.join(arg)
	case "Fn::Select":
		return e.selectOne(arg)
	case "Fn::Split":
		return e.split(arg)
	case "Fn::ToJsonString":
		v, err := e.Eval(arg)
		if err != nil {
			return nil, err
		}
		return JSON(v)
	}
	return nil, fmt.Errorf("%s is not supported by the local evaluator", name)
}

func (e *Evaluator) getAtt(arg any) (any, error) {
	parts, err := e.strings(arg, 2)
	if err != nil {
		return nil, fmt.Errorf("Fn::GetAtt: %w", err)
	}
	if _, ok := e.t.Resources[parts[0]]; !ok {
		return nil, fmt.Errorf("Fn::GetAtt: no resource %q", parts[0])
	}
	if e.s.Resolver == nil {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no resources are known yet", parts[0], parts[1])
	}
	return e.s.Resolver.GetAtt(parts[0], parts[1])
}

func (e *Evaluator) fnIf(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 3 {
		return nil, fmt.Errorf("Fn::If takes [condition, then, else]")
	}
	cond, ok := l[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::If: condition must be a name")
	}
	b, err := e.Condition(cond)
	if err != nil {
		return nil, err
	}
	if b {
		return e.eval(l[1])
	}
	return e.eval(l[2])
}

func (e *Evaluator) equals(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Equals takes two values")
	}
	a, err := e.eval(l[0])
	if err != nil {
		return nil, err
	}
	b, err := e.eval(l[1])
	if err != nil {
		return nil, err
	}
	as, err1 := scalarString(a)
	bs, err2 := scalarString(b)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("Fn::Equals compares scalars")
	}
	return as == bs, nil
}

// logic evaluates Fn::Not, Fn::And and Fn::Or over conditions.
func (e *Evaluator) logic(name string, arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) == 0 || (name == "Fn::Not" && len(l) != 1) {
		return nil, fmt.Errorf("%s: wrong arguments", name)
	}
	vals := make([]bool, len(l))
	for i, c := range l {
		v, err := e.eval(c)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s takes conditions", name)
		}
		vals[i] = b
	}
	switch name {
	case "Fn::Not":
		return !vals[0], nil
	case "Fn::And":
		return !slices.Contains(vals, false), nil
	default:
		return slices.Contains(vals, true), nil
	}
}

func (e *Evaluator) join(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Join takes [delimiter, list]")
	}
	delim, ok := l[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::Join: delimiter must be a string")
	}
	items, err := e.eval(l[1])
	if err != nil {
		return nil, err
	}
	list, ok := items.([]any)
	if !ok {
		return nil, fmt.Errorf("Fn::Join: second argument must be a list")
	}
	parts := make([]string, len(list))
	for i, it := range list {
		s, err := scalarString(it)
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		parts[i] = s
	}
	return strings.Join(parts, delim), nil
}

// split evaluates Fn::Split: a literal delimiter (as CloudFormation
// requires) and a string.
func (e *Evaluator) split(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Split takes [delimiter, string]")
	}
	delim, ok := l[0].(string)
	if !ok || delim == "" {
		return nil, fmt.Errorf("Fn::Split: delimiter must be a non-empty string")
	}
	v, err := e.eval(l[1])
	if err != nil {
		return nil, err
	}
	src, err := scalarString(v)
	if err != nil {
		return nil, fmt.Errorf("Fn::Split: %w", err)
	}
	parts := strings.Split(src, delim)
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func (e *Evaluator) selectOne(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Select takes [index, list]")
	}
	iv, err := e.eval(l[0])
	if err != nil {
		return nil, err
	}
	is, err := scalarString(iv)
	if err != nil {
		return nil, err
	}
	i, err := strconv.Atoi(is)
	if err != nil {
		return nil, fmt.Errorf("Fn::Select: index %q", is)
	}
	lv, err := e.eval(l[1])
	if err != nil {
		return nil, err
	}
	list, ok := lv.([]any)
	if !ok || i < 0 || i >= len(list) {
		return nil, fmt.Errorf("Fn::Select: index %d out of range", i)
	}
	return list[i], nil
}

func (e *Evaluator) ref(id string) (any, error) {
	switch id {
	case "AWS::NoValue":
		return noValue{}, nil
	case "AWS::StackName":
		return e.s.Name, nil
	case "AWS::Region":
		return e.s.Region, nil
	case "AWS::AccountId":
		return e.s.AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/local", e.s.Region, e.s.AccountID, e.s.Name), nil
	}
	if v, ok := e.params[id]; ok {
		return v, nil
	}
	if _, ok := e.t.Resources[id]; ok {
		if e.s.Resolver == nil {
			return nil, fmt.Errorf("Ref %s: no resources are known yet", id)
		}
		return e.s.Resolver.Ref(id)
	}
	return nil, fmt.Errorf("Ref %s: no such parameter or resource", id)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (e *Evaluator) sub(arg any) (any, error) {
	var (
		format string
		vars   = map[string]any{}
	)
	switch a := arg.(type) {
	case string:
		format = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub takes a string or [string, variables]")
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub: first argument must be a string")
		}
		format = s
		for k, v := range asMap(a[1]) {
			ev, err := e.eval(v)
			if err != nil {
				return nil, err
			}
			vars[k] = ev
		}
	default:
		return nil, fmt.Errorf("Fn::Sub takes a string or [string, variables]")
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(format, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		var (
			v   any
			err error
		)
		if x, ok := vars[name]; ok {
			v = x
		} else if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			v, err = e.fn("Fn::GetAtt", []any{res, attr})
		} else {
			v, err = e.ref(name)
		}
		if err == nil {
			var s string
			s, err = scalarString(v)
			if err == nil {
				return s
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		return ""
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func (e *Evaluator) strings(arg any, n int) ([]string, error) {
	v, err := e.eval(arg)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok || len(l) != n {
		return nil, fmt.Errorf("takes %d values", n)
	}
	out := make([]string, n)
	for i, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("value %d is not a string", i)
		}
		out[i] = s
	}
	return out, nil
}

// Dependencies lists the resources that v refers to through Ref, Fn::GetAtt
// or Fn::Sub, sorted and without duplicates.
func (t *Template) Dependencies(v any) []string {
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "Ref":
					if s, ok := val.(string); ok {
						if _, isRes := t.Resources[s]; isRes {
							seen[s] = true
						}
					}
				case "Fn::GetAtt":
					if l, ok := val.([]any); ok && len(l) > 0 {
						if s, ok := l[0].(string); ok {
							seen[s] = true
						}
					}
				case "Fn::Sub":
					format := val
					var vars map[string]any
					if l, ok := val.([]any); ok && len(l) > 0 {
						format = l[0]
						if len(l) > 1 {
							vars = asMap(l[1])
						}
					}
					if s, ok := format.(string); ok {
						for _, m := range subVar.FindAllStringSubmatch(s, -1) {
							if _, local := vars[m[1]]; local {
								continue // the variables map wins, as in sub
							}
							name, _, _ := strings.Cut(m[1], ".")
							if _, isRes := t.Resources[name]; isRes {
								seen[name] = true
							}
						}
					}
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%v (%T) is not a scalar", v, v)
}

func containsScalar(list []any, v any) bool {
	s, err := scalarString(v)
	if err != nil {
		return false
	}
	for _, x := range list {
		if xs, err := scalarString(x); err == nil && xs == s {
			return true
		}
	}
	return false
}

// String converts an evaluated scalar to its string form.
func String(v any) (string, error) { return scalarString(v) }
