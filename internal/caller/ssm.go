package caller

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/dispatcher-dev/dispatcher/internal/awserr"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// SSMAPI is the SSM call the registry makes; *ssm.Client is one.
type SSMAPI interface {
	GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, opts ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
}

// maxParametersPage is what SSM returns at most per GetParametersByPath.
const maxParametersPage = 10

// LoadParameterTree reads every parameter directly under path (not deeper:
// a caller is a leaf of the tree), decrypted, all pages: caller id (the
// parameter's last path segment) → its value, the caller's JSON document as
// stored. A name that is not a valid caller id (dispatch.ValidCallerID), or
// a parameter that is not a SecureString, is an Invalid error that names the
// parameter: an operator's mistake is reported at cold start, not skipped.
// Cost: one call per 10 parameters.
func LoadParameterTree(ctx context.Context, api SSMAPI, path string) (map[string]string, error) {
	const op = "caller.LoadParameterTree"
	if !strings.HasPrefix(path, "/") {
		return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("the parameter path %q does not start with /", path), nil)
	}
	prefix := strings.TrimSuffix(path, "/") + "/"
	out := map[string]string{}
	in := &ssm.GetParametersByPathInput{
		Path:           aws.String(path),
		Recursive:      aws.Bool(false),
		WithDecryption: aws.Bool(true),
		MaxResults:     aws.Int32(maxParametersPage),
	}
	for {
		page, err := api.GetParametersByPath(ctx, in)
		if err != nil {
			return nil, awserr.Classify(op, fmt.Errorf("GetParametersByPath %s: %w", path, err))
		}
		for _, p := range page.Parameters {
			name := aws.ToString(p.Name)
			id, ok := strings.CutPrefix(name, prefix)
			if !ok || !dispatch.ValidCallerID(id) {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("parameter %s: %q is not a caller id (1 to %d of a-z, 0-9 and -, not starting with -)", name, id, dispatch.MaxCallerIDLen), nil)
			}
			// A caller's document holds its secrets: a plain String is
			// readable by anyone with ssm:GetParameter and not encrypted.
			if p.Type != types.ParameterTypeSecureString {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("parameter %s is a %s, not a SecureString", name, p.Type), nil)
			}
			out[id] = aws.ToString(p.Value)
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}
