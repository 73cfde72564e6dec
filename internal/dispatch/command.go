package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Envelope is the body of POST /v1/commands.
type Envelope struct {
	Type            string          `json:"type"`
	AggregateID     string          `json:"aggregateId"`
	ExpectedVersion *int64          `json:"expectedVersion,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Command is one command type: it validates its own data and decides, from
// the current state, the new state and the effects. Decide must be pure: it
// runs again after a concurrent write changed the state.
type Command interface {
	Validate() []FieldError
	Decide(current Aggregate, now time.Time) (Decision, error)
}

// Creator is implemented by commands that only ever create an aggregate
// (OpenAccount). The service then decides against an empty aggregate without
// reading it first, and the transaction's condition (the aggregate must not
// exist) catches the case where it does: one read fewer on the common path.
type Creator interface {
	CreatesAggregate() bool
}

// Decision is what a command decided.
type Decision struct {
	AggregateType string
	Data          map[string]any // the whole new state
	Events        []Event
	Emails        []Email
}

// Event is published to the events queue.
type Event struct {
	Type string
	Data map[string]any // published, as the CloudEvent's data
	// Private is what an event-sourced aggregate's fold needs but consumers
	// of the events queue must not see (personal data such as an email
	// address): kept on the aggregate's EVENT item, never published. In
	// outbox mode it is not stored at all: the state item holds it.
	Private map[string]any
}

// Email is rendered from a repository template and sent through SES.
type Email struct {
	To       []string
	Template string
	Data     map[string]any
}

// commands is the registry of command types. Adding a command type is adding
// a Go type that implements Command and one line here.
var commands = map[string]func() Command{
	"OpenAccount":   func() Command { return &OpenAccount{} },
	"DepositFunds":  func() Command { return &DepositFunds{} },
	"WithdrawFunds": func() Command { return &WithdrawFunds{} },
	"Dispatch":      func() Command { return &Dispatch{} },
}

// aggregateTypes names the aggregate type each command type changes, when
// it is fixed (a Dispatch caller names its own): what the service reads
// before deciding, in the type's mode (modes).
var aggregateTypes = map[string]string{
	"OpenAccount":   AccountType,
	"DepositFunds":  AccountType,
	"WithdrawFunds": AccountType,
}

// modes is each aggregate type's default mode; AGGREGATE_MODES overrides it
// for a type that has an evolver (ParseModes). A type not listed runs in
// ModeOutbox.
var modes = map[string]Mode{
	AccountType: ModeOutbox,
}

// templates lists the email templates of the command types that send
// templates of their own: the account templates speak for the bank about
// money and belong to the account commands. A command type not listed here
// lets its caller choose (Dispatch): what it may send is configuration, the
// deployment's Grants (grants.go), read from its template folder.
var templates = map[string][]string{
	"OpenAccount":   {TemplateAccountWelcome},
	"DepositFunds":  {TemplateDepositReceipt},
	"WithdrawFunds": {TemplateWithdrawalReceipt},
}

// TemplatesFor returns the email templates a command type sends of its
// own (none for a command type whose caller chooses, CallerChoosesEffects).
func TemplatesFor(commandType string) []string {
	return append([]string(nil), templates[commandType]...)
}

func templateAllowed(commandType, name string) bool {
	return slices.Contains(templates[commandType], name)
}

// CommandTypes lists the known command types, sorted.
func CommandTypes() []string {
	out := make([]string, 0, len(commands))
	for k := range commands {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FieldError is one problem with one field of the input.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError carries field-level problems; its kind is Invalid (400) or
// Unprocessable (422).
type ValidationError struct {
	Kind   Kind
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		// A whole-body error names no field: just its message.
		if f.Field == "" {
			parts[i] = f.Message
			continue
		}
		parts[i] = f.Field + ": " + f.Message
	}
	// A 422 is a rule of the domain refusing a well-formed command (an
	// overdraw), not a malformed request: it reads as a refusal.
	if e.kind() == Unprocessable {
		return "refused: " + strings.Join(parts, "; ")
	}
	return "validation: " + strings.Join(parts, "; ")
}

// InvalidField builds a 400 validation error for one field.
func InvalidField(field, format string, args ...any) *ValidationError {
	return &ValidationError{Kind: Invalid, Fields: []FieldError{{field, fmt.Sprintf(format, args...)}}}
}

// UnprocessableField builds a 422 refusal of one field.
func UnprocessableField(field, format string, args ...any) *ValidationError {
	return &ValidationError{Kind: Unprocessable, Fields: []FieldError{{field, fmt.Sprintf(format, args...)}}}
}

// Parse decodes a command body strictly: valid UTF-8, one JSON object, no
// unknown fields, no trailing data, a known type, a valid aggregate id, and
// data that its command type accepts.
func Parse(body []byte) (Envelope, Command, error) {
	var env Envelope
	if !utf8.Valid(body) {
		return env, nil, InvalidField("", "body is not valid UTF-8")
	}
	if err := strictDecode(body, &env); err != nil {
		return env, nil, err
	}
	var fields []FieldError
	newCmd, ok := commands[env.Type]
	switch {
	case env.Type == "":
		fields = append(fields, FieldError{"type", "is required"})
	case !ok:
		fields = append(fields, FieldError{"type", fmt.Sprintf("unknown command type %q; known: %s", Truncate(env.Type, 64), strings.Join(CommandTypes(), ", "))})
	}
	if env.AggregateID == "" {
		fields = append(fields, FieldError{"aggregateId", "is required"})
	} else if !ValidAggregateID(env.AggregateID) {
		fields = append(fields, FieldError{"aggregateId", fmt.Sprintf("must be 1 to %d characters of A-Z a-z 0-9 _ - starting with a letter or digit", MaxAggregateIDLen)})
	}
	if env.ExpectedVersion != nil && *env.ExpectedVersion < 0 {
		fields = append(fields, FieldError{"expectedVersion", "must be 0 or more"})
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		fields = append(fields, FieldError{"data", "is required"})
	}
	if len(fields) > 0 {
		return env, nil, &ValidationError{Kind: Invalid, Fields: fields}
	}
	cmd := newCmd()
	if err := strictDecode(env.Data, cmd); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			for i := range ve.Fields {
				ve.Fields[i].Field = joinField("data", ve.Fields[i].Field)
			}
		}
		return env, nil, err
	}
	if fe := cmd.Validate(); len(fe) > 0 {
		for i := range fe {
			fe[i].Field = joinField("data", fe[i].Field)
		}
		return env, nil, &ValidationError{Kind: Invalid, Fields: fe}
	}
	return env, cmd, nil
}

func joinField(prefix, f string) string {
	if f == "" {
		return prefix
	}
	if prefix == "" {
		return f
	}
	return prefix + "." + f
}

// strictDecode decodes exactly one JSON value into v, refusing unknown
// fields, wrong types and trailing data.
func strictDecode(b []byte, v any) error {
	if jsonTooDeep(b, MaxJSONDepth) {
		return InvalidField("", "the JSON nests objects and arrays more than %d deep", MaxJSONDepth)
	}
	// encoding/json matches keys case-insensitively and keeps the last of
	// duplicates; a body that two readers could read two ways is refused.
	if err := checkKeys(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return InvalidField(jsonErrorField(err), "%s", jsonErrorMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return InvalidField("", "unexpected data after the JSON value")
	}
	return nil
}

func jsonErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// The path names embedded Go structs (Movement.amount); JSON field
		// names here start lower-case, Go type names upper-case.
		var parts []string
		for _, p := range strings.Split(te.Field, ".") {
			if p != "" && !unicode.IsUpper(rune(p[0])) {
				parts = append(parts, p)
			}
		}
		return strings.Join(parts, ".")
	}
	return ""
}

func jsonErrorMessage(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		want := jsonTypeName(te.Type.Kind().String())
		if want == "a number" && strings.HasPrefix(te.Value, "number") {
			return "must be a whole number (no fraction or exponent) within range"
		}
		return fmt.Sprintf("must be %s, not %s", want, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF):
		return "body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end"
	}
	if name, ok := unknownFieldName(err.Error()); ok {
		return fmt.Sprintf("unknown field %q", Truncate(name, 64))
	}
	return "malformed JSON"
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}

// hasControl reports control characters (CR, LF, NUL, DEL, ...).
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// checkKeys walks a JSON value alongside the Go type it decodes into and
// refuses duplicate keys anywhere, and keys that differ from a struct's JSON
// field names only by case. Malformed JSON is left to the decoder.
func checkKeys(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkKeys(dec, t, ""); err != nil && !errors.Is(err, errMalformed) {
		return err
	}
	return nil
}

// errMalformed stops the key walk; the decoder then reports the syntax
// error with a better message.
var errMalformed = errors.New("malformed JSON")

func walkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return errMalformed
	}
	switch tok {
	case json.Delim('{'):
		fields := map[string]reflect.Type{}
		lower := map[string]string{}
		if t != nil && t.Kind() == reflect.Struct {
			collectFields(t, fields)
			for name := range fields {
				lower[strings.ToLower(name)] = name
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return errMalformed
			}
			k, _ := kt.(string)
			if seen[k] {
				return InvalidField(joinField(path, k), "appears twice")
			}
			seen[k] = true
			var child reflect.Type
			if t != nil {
				switch t.Kind() {
				case reflect.Struct:
					ft, ok := fields[k]
					if !ok {
						if exact, near := lower[strings.ToLower(k)]; near {
							return InvalidField(joinField(path, k), "unknown field; did you mean %q?", exact)
						}
					}
					child = ft
				case reflect.Map:
					child = t.Elem()
				}
			}
			if err := walkKeys(dec, child, joinField(path, k)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
	}
	return nil
}

// collectFields maps JSON field names to types, flattening embedded structs
// as encoding/json does.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, out)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
}

// DecodeStrict decodes exactly one JSON value into v as strictly as command
// bodies are: no unknown, case-variant or duplicate keys, no wrong types, no
// trailing data. Errors are *ValidationError.
func DecodeStrict(b []byte, v any) error { return strictDecode(b, v) }
