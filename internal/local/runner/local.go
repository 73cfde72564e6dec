package runner

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/consumerfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/replayfn"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// DevWebhookSecret is the webhook secret of `make dev`'s default caller:
// fixed so that examples keep working across restarts, and plainly not a
// production one.
var DevWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("dispatcher-local-dev-secret-NOT-FOR-PRODUCTION"))

// DevSecondCaller is `make dev`'s second caller, a tenant of its own: its own
// secret (DevSecondCallerSecret), its idempotency keys, and a grant of the
// accounts whose id starts with DevSecondCallerPrefix and the templates and
// events of the account commands only.
const (
	DevSecondCaller       = "team-b"
	DevSecondCallerPrefix = "b-"
)

// DevSecondCallerSecret is DevSecondCaller's webhook secret, fixed like
// DevWebhookSecret.
var DevSecondCallerSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("dispatcher-local-team-b-secret-NOT-FOR-PRODUCTION"))

// devCallers is `make dev`'s caller registry (CALLERS): DevSecondCaller. The
// default caller is WEBHOOK_SECRETS's.
func devCallers() string {
	doc := []map[string]any{{
		"id":         DevSecondCaller,
		"secrets":    []string{DevSecondCallerSecret},
		"aggregates": []string{"Account/" + DevSecondCallerPrefix + "*"},
		"templates":  []string{dispatch.TemplateAccountWelcome, dispatch.TemplateDepositReceipt, dispatch.TemplateWithdrawalReceipt},
		"events":     []string{"Account*", "Funds*"},
	}}
	b, _ := json.Marshal(doc)
	return string(b)
}

// LocalEnv is what the runner adds to every function's environment from
// the template: the default caller's webhook secrets (WEBHOOK_SECRETS in the
// environment, else DevWebhookSecret) and the caller registry (CALLERS in
// the environment, else DevSecondCaller), which a deployed stack reads from
// Secrets Manager or SSM instead.
func LocalEnv(getenv func(string) string) map[string]string {
	s := getenv("WEBHOOK_SECRETS")
	if s == "" {
		s = DevWebhookSecret
	}
	c := getenv("CALLERS")
	if c == "" {
		c = devCallers()
	}
	return map[string]string{"WEBHOOK_SECRETS": s, "CALLERS": c}
}

// FunctionDirs maps each function's logical id to its folder under
// functions/, read from the Makefile's build-<LogicalId> rules, which are
// what `sam build` runs: the one place that ties template and code together.
func FunctionDirs(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rule := regexp.MustCompile(`^build-([A-Za-z0-9]+):`)
	dir := regexp.MustCompile(`\./functions/([A-Za-z0-9_-]+)`)
	out := map[string]string{}
	current := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := rule.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if current != "" && strings.HasPrefix(line, "\t") {
			if m := dir.FindStringSubmatch(line); m != nil {
				out[current] = m[1]
				current = ""
			}
			continue
		}
		current = ""
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no build-<LogicalId> rules building ./functions/<name> in %s/Makefile", root)
	}
	return out, nil
}

// constructor builds one function's handler from its environment, exactly
// as its main.go does before lambda.Start.
type constructor func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error)

// constructors, by folder under functions/. Each calls the Build that
// folder's main.go calls and hands over what it gives lambda.Start.
var constructors = map[string]constructor{
	"command": func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error) {
		h, err := commandfn.Build(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	},
	"stream-relay": func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error) {
		h, err := deliveryfn.Build(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	},
	"command-consumer": func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error) {
		c, err := consumerfn.Build(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return c.Handle, nil
	},
	"dlq-replay": func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error) {
		r, err := replayfn.Build(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return r.Invoke, nil
	},
	"stream-recovery": func(ctx context.Context, cfg aws.Config, getenv func(string) string) (any, error) {
		r, err := replayfn.BuildRecovery(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return r.Recover, nil
	},
}

// InProcessFunctions builds every function of the spec in this process,
// with its template environment plus extra, through the same constructors
// as the functions' main.go. dirs maps logical ids to functions/ folders
// (FunctionDirs).
func InProcessFunctions(ctx context.Context, cfg aws.Config, spec *Spec, stackName string, dirs map[string]string, extra map[string]string) (map[string]Function, error) {
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	ids := make([]string, 0, len(spec.Functions))
	for id := range spec.Functions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := map[string]Function{}
	for _, id := range ids {
		fs := spec.Functions[id]
		dir, ok := dirs[id]
		if !ok {
			return nil, fmt.Errorf("function %s: no build-%s rule in the Makefile says which functions/ folder it is", id, id)
		}
		build, ok := constructors[dir]
		if !ok {
			return nil, fmt.Errorf("function %s (functions/%s): the local runner has no in-process constructor for it; add one to internal/local/runner/local.go", id, dir)
		}
		env := mergeEnv(fs.Env, extra)
		h, err := build(ctx, cfg, func(k string) string { return env[k] })
		if err != nil {
			return nil, fmt.Errorf("function %s: cold start: %w", id, err)
		}
		arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s-%s", region, LocalAccountID, stackName, id)
		out[id] = NewInProcess(arn, fs.Timeout, h)
	}
	return out, nil
}

func mergeEnv(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
