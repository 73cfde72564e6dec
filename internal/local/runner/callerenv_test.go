package runner_test

import (
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// The local command function gets the rate-limit table the local stack
// provisioned and the template's default rate; the local stack has no SSM,
// so CALLERS_PARAMETER_PATH stays empty (callers come from CALLERS there).
func TestTheCommandFunctionGetsTheRateLimitTableAndNoRegistryPath(t *testing.T) {
	env := testenv.Get(t)
	spec, err := runner.ReadSpec(env.Stack)
	if err != nil {
		t.Fatal(err)
	}
	vars := spec.Functions["CommandFunction"].Env
	want := map[string]string{
		"RATE_LIMIT_TABLE":       env.Stack.Physical("RateLimitTable"),
		"CALLER_RATE_PER_SECOND": "50",
		"CALLER_BURST":           "100",
		"CALLERS_PARAMETER_PATH": "",
	}
	for k, v := range want {
		got, ok := vars[k]
		if !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if want["RATE_LIMIT_TABLE"] == "" {
		t.Error("the local stack provisioned no RateLimitTable")
	}
}
