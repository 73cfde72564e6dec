package caller_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// countingClient counts the requests that go over the wire.
type countingClient struct {
	base aws.HTTPClient
	n    atomic.Int64
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.Do(r)
}

// ssmClient is the SDK's SSM client on moto (the emulators serve no SSM),
// to write parameters, and the registry's reader (NewSSM) on the same moto,
// with its requests counted.
func ssmClient(t *testing.T) (*ssm.Client, caller.SSMAPI, *countingClient) {
	env := testenv.Get(t)
	if env.Backend() != emulator.MotoServer {
		t.Skip("the emulators serve no SSM; `make test-moto` runs this against moto")
	}
	cfg := env.AWS.Copy()
	base := cfg.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	c := &countingClient{base: base}
	cfg.HTTPClient = c
	return ssm.NewFromConfig(env.AWS), caller.NewSSM(cfg), c
}

func put(t *testing.T, api *ssm.Client, name, value string, typ types.ParameterType) {
	t.Helper()
	if _, err := api.PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ}); err != nil {
		t.Fatal(err)
	}
}

func tree(t *testing.T) string {
	return fmt.Sprintf("/dispatcher/test-%d/callers", time.Now().UnixNano())
}

func TestLoadParameterTreeReadsEveryCallerUnderThePathOnEveryPage(t *testing.T) {
	api, reader, calls := ssmClient(t)
	path := tree(t)
	want := map[string]string{}
	for i := range 12 { // more than a page of 10
		id := fmt.Sprintf("team-%02d", i)
		doc := fmt.Sprintf(`{"secrets":["whsec_%d"],"aggregates":["Account/%s-*"]}`, i, id)
		put(t, api, path+"/"+id, doc, types.ParameterTypeSecureString)
		want[id] = doc
	}
	// Deeper than the callers, and beside the tree: not callers.
	put(t, api, path+"/team-00/notes", "x", types.ParameterTypeSecureString)
	put(t, api, path+"-old/team-99", `{}`, types.ParameterTypeSecureString)

	calls.n.Store(0)
	got, err := caller.LoadParameterTree(context.Background(), reader, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d callers, want %d: %v", len(got), len(want), got)
	}
	for id, doc := range want {
		if got[id] != doc {
			t.Errorf("caller %s: %q, want the decrypted document %q", id, got[id], doc)
		}
	}
	if n := calls.n.Load(); n != 2 {
		t.Errorf("%d requests for 12 callers, want 2 (10 a page)", n)
	}

	empty, err := caller.LoadParameterTree(context.Background(), reader, tree(t))
	if err != nil || len(empty) != 0 {
		t.Errorf("an empty tree: %v, %v; want no callers and no error", empty, err)
	}
}

func TestLoadParameterTreeRefusesWhatIsNotACallerNamingTheParameter(t *testing.T) {
	api, reader, _ := ssmClient(t)
	for _, tt := range []struct {
		name, leaf string
		typ        types.ParameterType
		want       string
	}{
		{"a name that is not a caller id", "Team_A", types.ParameterTypeSecureString, "is not a caller id"},
		{"a name one over the longest id", strings.Repeat("a", dispatch.MaxCallerIDLen+1), types.ParameterTypeSecureString, "is not a caller id"},
		{"a plain String", "team-a", types.ParameterTypeString, "not a SecureString"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tree(t)
			put(t, api, path+"/ok", `{}`, types.ParameterTypeSecureString)
			put(t, api, path+"/"+tt.leaf, `{}`, tt.typ)
			got, err := caller.LoadParameterTree(context.Background(), reader, path)
			if err == nil || dispatch.KindOf(err) != dispatch.Invalid || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path+"/"+tt.leaf) {
				t.Fatalf("got %v, err %v; want an invalid error naming %s/%s and saying %q", got, err, path, tt.leaf, tt.want)
			}
		})
	}
	// The longest id is one.
	path := tree(t)
	longest := strings.Repeat("a", dispatch.MaxCallerIDLen)
	put(t, api, path+"/"+longest, `{}`, types.ParameterTypeSecureString)
	if got, err := caller.LoadParameterTree(context.Background(), reader, path); err != nil || got[longest] != `{}` {
		t.Errorf("the longest id: %v, %v", got, err)
	}
}

func TestLoadParameterTreeRefusesARelativePathBeforeAnyCall(t *testing.T) {
	_, err := caller.LoadParameterTree(context.Background(), nil, "dispatcher/callers")
	if dispatch.KindOf(err) != dispatch.Invalid {
		t.Fatalf("err %v, want invalid", err)
	}
}
