package webhook

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "reads one secret", in: "whsec_a", want: []string{"whsec_a"}},
		{name: "reads secrets separated by a space", in: "whsec_a whsec_b", want: []string{"whsec_a", "whsec_b"}},
		{name: "reads secrets separated by a comma", in: "whsec_a,whsec_b", want: []string{"whsec_a", "whsec_b"}},
		{name: "reads secrets separated by a comma and spaces", in: " whsec_a , whsec_b\n", want: []string{"whsec_a", "whsec_b"}},
		{name: "reads secrets separated by a newline and a tab", in: "whsec_a\n\twhsec_b", want: []string{"whsec_a", "whsec_b"}},
		{name: "reads a JSON array", in: `["whsec_a","whsec_b"]`, want: []string{"whsec_a", "whsec_b"}},
		{name: "reads a JSON array with spaces and newlines", in: "[\n  \"whsec_a\",\n  \"whsec_b\"\n]\n", want: []string{"whsec_a", "whsec_b"}},
		{name: "trims spaces inside JSON array elements", in: `[" whsec_a ","whsec_b\n"]`, want: []string{"whsec_a", "whsec_b"}},
		{name: "decodes JSON escapes in an array", in: `["whsec_a\/b\u002bc"]`, want: []string{"whsec_a/b+c"}},
		{name: "keeps three secrets for NewVerifier to refuse", in: "whsec_a whsec_b whsec_c", want: []string{"whsec_a", "whsec_b", "whsec_c"}},
		{name: "rejects an empty value", in: "", wantErr: "no secrets"},
		{name: "rejects separators only", in: " , \n", wantErr: "no secrets"},
		{name: "rejects an empty JSON array", in: "[]", wantErr: "no secrets"},
		{name: "rejects an unterminated JSON array", in: `["whsec_topsecretvalue",`, wantErr: "not a JSON array of strings"},
		{name: "rejects a JSON array of numbers", in: `[1,2]`, wantErr: "not a JSON array of strings"},
		{name: "rejects a JSON array with an empty string", in: `["whsec_a",""]`, wantErr: "element 2 of the JSON array is empty"},
		{name: "rejects a JSON object", in: `{"WEBHOOK_SECRETS":"whsec_topsecretvalue"}`, wantErr: "is a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecrets(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecrets = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Errorf("error %q quotes the value", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseSecrets = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

type ctxKey struct{}

// fakeSource is a SecretSource holding values in maps; it records calls and
// checks that the caller's context reached it.
type fakeSource struct {
	t       *testing.T
	secrets map[string]string
	params  map[string]string
	err     error
	calls   []string
}

func (f *fakeSource) SecretString(ctx context.Context, arn string) (string, error) {
	return f.get(ctx, "secret "+arn, f.secrets, arn)
}

func (f *fakeSource) Parameter(ctx context.Context, name string) (string, error) {
	return f.get(ctx, "parameter "+name, f.params, name)
}

func (f *fakeSource) get(ctx context.Context, call string, m map[string]string, k string) (string, error) {
	f.calls = append(f.calls, call)
	if ctx.Value(ctxKey{}) == nil {
		f.t.Errorf("%s: the caller's context did not reach the SecretSource", call)
	}
	if f.err != nil {
		return "", f.err
	}
	v, ok := m[k]
	if !ok {
		return "", errors.New("not found")
	}
	return v, nil
}

func TestLoadSecrets(t *testing.T) {
	const (
		arn   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:webhook-AbCdEf"
		param = "/dispatcher/webhook-secrets"
	)
	errThrottled := errors.New("ThrottlingException: rate exceeded")
	tests := []struct {
		name      string
		env       map[string]string
		source    *fakeSource // nil: no SecretSource at all
		sourceErr error
		want      []string
		wantCalls []string
		wantErr   string
		wantIs    error
	}{
		{
			name:   "uses WEBHOOK_SECRETS without asking the cloud",
			env:    map[string]string{"WEBHOOK_SECRETS": "whsec_a whsec_b"},
			source: &fakeSource{},
			want:   []string{"whsec_a", "whsec_b"},
		},
		{
			name:   "prefers WEBHOOK_SECRETS over WEBHOOK_SECRETS_ARN",
			env:    map[string]string{"WEBHOOK_SECRETS": "whsec_local", "WEBHOOK_SECRETS_ARN": arn},
			source: &fakeSource{secrets: map[string]string{arn: "whsec_cloud"}},
			want:   []string{"whsec_local"},
		},
		{
			name: "uses WEBHOOK_SECRETS when no SecretSource is given",
			env:  map[string]string{"WEBHOOK_SECRETS": "whsec_a"},
			want: []string{"whsec_a"},
		},
		{
			name:      "reads the Secrets Manager secret named by WEBHOOK_SECRETS_ARN",
			env:       map[string]string{"WEBHOOK_SECRETS_ARN": arn},
			source:    &fakeSource{secrets: map[string]string{arn: `["whsec_a","whsec_b"]`}},
			want:      []string{"whsec_a", "whsec_b"},
			wantCalls: []string{"secret " + arn},
		},
		{
			name:      "reads the SSM parameter named by WEBHOOK_SECRETS_PARAMETER",
			env:       map[string]string{"WEBHOOK_SECRETS_PARAMETER": param},
			source:    &fakeSource{params: map[string]string{param: "whsec_a,whsec_b"}},
			want:      []string{"whsec_a", "whsec_b"},
			wantCalls: []string{"parameter " + param},
		},
		{
			name:    "rejects a configuration with no variable set, naming all three",
			env:     map[string]string{},
			source:  &fakeSource{},
			wantErr: "set WEBHOOK_SECRETS (the secrets themselves, for local use), WEBHOOK_SECRETS_ARN (a Secrets Manager secret) or WEBHOOK_SECRETS_PARAMETER",
		},
		{
			name:    "rejects both WEBHOOK_SECRETS_ARN and WEBHOOK_SECRETS_PARAMETER",
			env:     map[string]string{"WEBHOOK_SECRETS_ARN": arn, "WEBHOOK_SECRETS_PARAMETER": param},
			source:  &fakeSource{secrets: map[string]string{arn: "whsec_a"}, params: map[string]string{param: "whsec_b"}},
			wantErr: "both WEBHOOK_SECRETS_ARN and WEBHOOK_SECRETS_PARAMETER are set",
		},
		{
			name:      "reports a Secrets Manager failure with the variable it came from",
			env:       map[string]string{"WEBHOOK_SECRETS_ARN": arn},
			source:    &fakeSource{err: errThrottled},
			wantCalls: []string{"secret " + arn},
			wantErr:   "webhook: reading WEBHOOK_SECRETS_ARN: ThrottlingException",
			wantIs:    errThrottled,
		},
		{
			name:      "reports an SSM failure with the variable it came from",
			env:       map[string]string{"WEBHOOK_SECRETS_PARAMETER": param},
			source:    &fakeSource{err: errThrottled},
			wantCalls: []string{"parameter " + param},
			wantErr:   "webhook: reading WEBHOOK_SECRETS_PARAMETER: ThrottlingException",
			wantIs:    errThrottled,
		},
		{
			name:      "rejects an empty secret value, naming where it came from",
			env:       map[string]string{"WEBHOOK_SECRETS_ARN": arn},
			source:    &fakeSource{secrets: map[string]string{arn: "  "}},
			wantCalls: []string{"secret " + arn},
			wantErr:   "the value of WEBHOOK_SECRETS_ARN: no secrets",
		},
		{
			name:    "rejects a malformed WEBHOOK_SECRETS",
			env:     map[string]string{"WEBHOOK_SECRETS": `["whsec_a"`},
			wantErr: "the value of WEBHOOK_SECRETS: starts with [",
		},
		{
			name:    "rejects a cloud variable when there is no SecretSource",
			env:     map[string]string{"WEBHOOK_SECRETS_PARAMETER": param},
			wantErr: "no SecretSource",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.WithValue(t.Context(), ctxKey{}, true)
			getenv := func(k string) string { return tt.env[k] }
			var src SecretSource
			if tt.source != nil {
				tt.source.t = t
				src = tt.source
			}
			got, err := LoadSecrets(ctx, getenv, src)
			if tt.source != nil && !slices.Equal(tt.source.calls, tt.wantCalls) {
				t.Errorf("SecretSource calls = %q, want %q", tt.source.calls, tt.wantCalls)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadSecrets = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %v does not wrap %v", err, tt.wantIs)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("LoadSecrets = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
