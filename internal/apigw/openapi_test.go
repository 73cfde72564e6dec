package apigw

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"gopkg.in/yaml.v3"

	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// The parts of api/openapi.yaml that TestOpenAPI holds to the code.
type oasFile struct {
	Paths      map[string]map[string]oasOperation `yaml:"paths"`
	Components struct {
		Responses map[string]oasResponse `yaml:"responses"`
		Schemas   map[string]oasSchema   `yaml:"schemas"`
	} `yaml:"components"`
}

type oasOperation struct {
	Responses map[string]oasResponse `yaml:"responses"`
}

type oasResponse struct {
	Ref          string   `yaml:"$ref"`
	ProblemTypes []string `yaml:"x-problem-types"`
}

type oasSchema struct {
	Ref        string               `yaml:"$ref"`
	Enum       []string             `yaml:"enum"`
	Const      string               `yaml:"const"`
	Properties map[string]oasSchema `yaml:"properties"`
	OneOf      []oasSchema          `yaml:"oneOf"`
	Examples   []map[string]any     `yaml:"examples"`
}

func loadOpenAPI(t *testing.T) oasFile {
	t.Helper()
	b, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f oasFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return f
}

func (f oasFile) response(t *testing.T, r oasResponse) oasResponse {
	return deref(t, r, r.Ref, "#/components/responses/", f.Components.Responses)
}

func (f oasFile) schema(t *testing.T, s oasSchema) oasSchema {
	return deref(t, s, s.Ref, "#/components/schemas/", f.Components.Schemas)
}

// deref is v, or, when it is a $ref, the component it names.
func deref[T any](t *testing.T, v T, ref, prefix string, components map[string]T) T {
	t.Helper()
	if ref == "" {
		return v
	}
	got, ok := components[strings.TrimPrefix(ref, prefix)]
	if !ok {
		t.Fatalf("api/openapi.yaml: no component %s", ref)
	}
	return got
}

// stubExec and stubReader answer every command and read with "not found",
// which is not the handler's "No such route".
type stubExec struct{}

func (stubExec) Execute(context.Context, command.Request) (command.Result, error) {
	return command.Result{}, dispatch.E("stub", dispatch.NotFound, "stub", nil)
}

type stubReader struct{}

func (stubReader) Load(context.Context, string) (dispatch.Aggregate, error) {
	return dispatch.Aggregate{}, nil
}

func (stubReader) ListOutbox(context.Context, string, int, string) ([]dispatch.OutboxItem, string, error) {
	return nil, "", nil
}

func (stubReader) FirstUnsettled(context.Context, string) (dispatch.OutboxKey, bool, error) {
	return dispatch.OutboxKey{}, false, nil
}

func (stubReader) ListEvents(context.Context, string, int, string) ([]dispatch.OutboxItem, string, error) {
	return nil, "", nil
}

// answers drives the handler with an IAM-authorized API Gateway v2 event of
// a $default route and says whether it answered other than "No such route".
func answers(t *testing.T, method, path string) bool {
	t.Helper()
	h := New(stubExec{}, stubReader{}, iamOnly(t), obs.NewLogger(io.Discard, 0), obs.NewMetrics(io.Discard, "Dispatcher"))
	req := events.APIGatewayV2HTTPRequest{RouteKey: "$default", RawPath: path, Body: "{}",
		Headers: map[string]string{"content-type": "application/json", "idempotency-key": "k1"}}
	req.RequestContext.HTTP.Method = method
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:user/test"}}
	resp, err := h.Handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var p Problem
	_ = json.Unmarshal([]byte(resp.Body), &p)
	if resp.StatusCode == http.StatusUnauthorized {
		t.Fatalf("%s %s: 401 to an IAM caller: %s", method, path, resp.Body)
	}
	return !(resp.StatusCode == noRouteProblem.status && p.Title == noRouteProblem.title)
}

// iamOnly is the callers of a deployment with API_AUTH=iam and no
// registry: every IAM principal is its own caller.
func iamOnly(t *testing.T) Authenticator {
	t.Helper()
	r, err := caller.New(caller.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// samplePath is a path of the template with an aggregate id in it.
func samplePath(template string) string {
	return strings.ReplaceAll(template, "{id}", "acct-1")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPI holds the handler to api/openapi.yaml both ways: its routes,
// the statuses and problem types it answers, and the command types and
// their data fields of dispatch's registry. A route, status, problem type
// or field added on one side only fails here.
func TestOpenAPI(t *testing.T) {
	f := loadOpenAPI(t)

	t.Run("routes", func(t *testing.T) {
		described := map[string]bool{}
		for path, ops := range f.Paths {
			for method := range ops {
				key := strings.ToUpper(method) + " " + path
				described[key] = true
				if !slices.Contains(routes, key) {
					t.Errorf("api/openapi.yaml describes %s; the handler has no such route", key)
				}
			}
			// The handler itself, driven as a $default route: every method on
			// a described path that it answers is described, and every
			// described one is answered (not with "No such route").
			for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions} {
				key := m + " " + path
				if answered := answers(t, m, samplePath(path)); answered && !described[key] {
					t.Errorf("the handler answers %s; api/openapi.yaml does not describe it", key)
				} else if !answered && described[key] {
					t.Errorf("api/openapi.yaml describes %s; the handler answers it %q", key, noRouteProblem.title)
				}
			}
		}
		for _, r := range routes {
			if !described[r] {
				t.Errorf("the handler answers %s; api/openapi.yaml does not describe it", r)
			}
		}
	})

	// The code's problem types, by slug; one slug has one status.
	code := map[string]int{}
	for _, pt := range append(slices.Collect(maps.Values(problemTypes)), edgeProblems...) {
		if s, ok := code[pt.slug]; ok && s != pt.status {
			t.Fatalf("problem type %s has two statuses, %d and %d", pt.slug, s, pt.status)
		}
		code[pt.slug] = pt.status
	}
	// The statuses the handler answers: the problems', and its successes.
	success := map[string]int{RouteCommands: http.StatusAccepted, RouteAggregate: http.StatusOK,
		RouteAggregateOutbox: http.StatusOK, RouteAggregateEvents: http.StatusOK}
	codeStatuses := map[int]bool{}
	for _, s := range code {
		codeStatuses[s] = true
	}
	for _, s := range success {
		codeStatuses[s] = true
	}

	t.Run("statuses and problem types", func(t *testing.T) {
		fileStatuses := map[int]bool{}
		fileSlugs := map[string]bool{}
		for path, ops := range f.Paths {
			for method, op := range ops {
				key := strings.ToUpper(method) + " " + path
				for _, st := range sortedKeys(op.Responses) {
					status, err := strconv.Atoi(st)
					if err != nil {
						t.Errorf("%s: response %q is not a status", key, st)
						continue
					}
					fileStatuses[status] = true
					if !codeStatuses[status] {
						t.Errorf("%s: api/openapi.yaml describes status %d; the handler never answers it", key, status)
					}
					r := f.response(t, op.Responses[st])
					if status < 400 {
						if want, ok := success[key]; ok && status != want {
							t.Errorf("%s: api/openapi.yaml describes success %d; the handler answers %d", key, status, want)
						}
						continue
					}
					if len(r.ProblemTypes) == 0 {
						t.Errorf("%s %d: no x-problem-types", key, status)
					}
					for _, slug := range r.ProblemTypes {
						fileSlugs[slug] = true
						if s, ok := code[slug]; !ok {
							t.Errorf("%s %d: problem type %q is not one the handler answers", key, status, slug)
						} else if s != status {
							t.Errorf("%s %d: problem type %q is a %d", key, status, slug, s)
						}
					}
				}
				if want, ok := success[key]; ok {
					if _, ok := op.Responses[strconv.Itoa(want)]; !ok {
						t.Errorf("%s: api/openapi.yaml does not describe its success %d", key, want)
					}
				}
			}
		}
		for s := range codeStatuses {
			if !fileStatuses[s] {
				t.Errorf("the handler answers %d; api/openapi.yaml describes it on no route", s)
			}
		}
		for slug := range code {
			if !fileSlugs[slug] {
				t.Errorf("the handler answers problem type %q; no response of api/openapi.yaml lists it", slug)
			}
		}
		// The Problem schema's type enum is the code's types, as URIs.
		enum := map[string]bool{}
		for _, u := range f.Components.Schemas["Problem"].Properties["type"].Enum {
			slug, ok := strings.CutPrefix(u, ProblemBase)
			if !ok {
				t.Errorf("Problem.type %q is not under %s", u, ProblemBase)
			}
			enum[slug] = true
			if _, ok := code[slug]; !ok {
				t.Errorf("Problem.type lists %q; the handler has no such problem type", slug)
			}
		}
		for slug := range code {
			if !enum[slug] {
				t.Errorf("the handler answers problem type %q; Problem.type does not list it", slug)
			}
		}
		// The fields the handler writes in a problem are the schema's.
		want := jsonFields(reflect.TypeOf(Problem{}))
		got := sortedKeys(f.Components.Schemas["Problem"].Properties)
		if !slices.Equal(got, want) {
			t.Errorf("Problem's properties are %v; the handler writes %v", got, want)
		}
	})

	t.Run("command types", func(t *testing.T) {
		cmd := f.Components.Schemas["Command"]
		if got, want := slices.Sorted(slices.Values(cmd.Properties["type"].Enum)), dispatch.CommandTypes(); !slices.Equal(got, want) {
			t.Errorf("Command.type lists %v; the registry has %v", got, want)
		}
		var branches []string
		for _, b := range cmd.OneOf {
			typ := b.Properties["type"].Const
			branches = append(branches, typ)
			if len(b.Examples) == 0 {
				t.Errorf("Command %s: no example", typ)
				continue
			}
			// The example is a command the code accepts; the fields of the
			// command it decodes to are the data schema's.
			body, _ := json.Marshal(b.Examples[0])
			_, c, err := dispatch.Parse(body)
			if err != nil {
				t.Errorf("Command %s: the example is refused: %v", typ, err)
				continue
			}
			want := jsonFields(reflect.TypeOf(c).Elem())
			got := sortedKeys(f.schema(t, b.Properties["data"]).Properties)
			if !slices.Equal(got, want) {
				t.Errorf("Command %s: data's properties are %v; the registry's type has %v", typ, got, want)
			}
		}
		if got := slices.Sorted(slices.Values(branches)); !slices.Equal(got, dispatch.CommandTypes()) {
			t.Errorf("Command.oneOf describes %v; the registry has %v", got, dispatch.CommandTypes())
		}
	})
}

// jsonFields lists a struct type's JSON field names (an embedded struct's
// too, as encoding/json promotes them), sorted.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		fld := typ.Field(i)
		name, _, _ := strings.Cut(fld.Tag.Get("json"), ",")
		switch {
		case fld.Anonymous && name == "" && fld.Type.Kind() == reflect.Struct:
			out = append(out, jsonFields(fld.Type)...)
		case name != "" && name != "-" && fld.IsExported():
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
