package caller

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/awserr"
	"github.com/dispatcher-dev/dispatcher/internal/awsjson"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Parameter is one SSM parameter as GetParametersByPath returns it.
type Parameter struct {
	Name, Type, Value string
}

// SSMAPI is the SSM call the registry makes: one page of
// GetParametersByPath (not recursive, decrypted) after nextToken ("" for the
// first), and the next page's token ("" after the last). NewSSM is one.
type SSMAPI interface {
	GetParametersByPath(ctx context.Context, path, nextToken string, maxResults int) (params []Parameter, next string, err error)
}

// NewSSM calls SSM Parameter Store with cfg's region, credentials and HTTP
// client: one signed JSON request a page (internal/awsjson), as the SDK's
// client sends it (AmazonSSM.GetParametersByPath, AWS JSON 1.1), without
// linking that client into the command function (docs/cost.md, "Cold start").
func NewSSM(cfg aws.Config) SSMAPI { return signedSSM{awsjson.New(cfg)} }

type signedSSM struct{ c *awsjson.Client }

// maxPageResponse bounds what is read of one page: 10 parameters of at most
// 8 KB each, which JSON escaping can double.
const maxPageResponse = 256 << 10

var parameterStore = awsjson.Service{SigningName: "ssm", SDKID: "SSM", TargetPrefix: "AmazonSSM.", JSONVersion: "1.1", MaxResponse: maxPageResponse}

func (s signedSSM) GetParametersByPath(ctx context.Context, path, nextToken string, maxResults int) ([]Parameter, string, error) {
	in := map[string]any{"Path": path, "Recursive": false, "WithDecryption": true, "MaxResults": maxResults}
	if nextToken != "" {
		in["NextToken"] = nextToken
	}
	var out struct {
		Parameters []Parameter
		NextToken  string
	}
	if err := s.c.Call(ctx, parameterStore, "GetParametersByPath", in, &out); err != nil {
		return nil, "", err
	}
	return out.Parameters, out.NextToken, nil
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
	token := ""
	for {
		params, next, err := api.GetParametersByPath(ctx, path, token, maxParametersPage)
		if err != nil {
			return nil, awserr.Classify(op, fmt.Errorf("GetParametersByPath %s: %w", path, err))
		}
		for _, p := range params {
			id, ok := strings.CutPrefix(p.Name, prefix)
			if !ok || !dispatch.ValidCallerID(id) {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("parameter %s: %q is not a caller id (1 to %d of a-z, 0-9 and -, not starting with -)", p.Name, id, dispatch.MaxCallerIDLen), nil)
			}
			// A caller's document holds its secrets: a plain String is
			// readable by anyone with ssm:GetParameter and not encrypted.
			if p.Type != "SecureString" {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("parameter %s is a %s, not a SecureString", p.Name, p.Type), nil)
			}
			out[id] = p.Value
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}
