package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

func (p *provisioner) configurationSet(ctx context.Context, id string, props map[string]any) (*Resource, error) {
	name, _ := props["Name"].(string)
	if name == "" {
		name = generatedName(p.stack.Eval.StackName(), id, 64)
	}
	res := &Resource{PhysicalID: name, Attributes: map[string]string{}}
	in := &sesv2.CreateConfigurationSetInput{ConfigurationSetName: aws.String(name)}
	if m, ok := props["SendingOptions"].(map[string]any); ok {
		in.SendingOptions = &types.SendingOptions{SendingEnabled: truthy(m["SendingEnabled"])}
	}
	if m, ok := props["ReputationOptions"].(map[string]any); ok {
		in.ReputationOptions = &types.ReputationOptions{ReputationMetricsEnabled: truthy(m["ReputationMetricsEnabled"])}
	}
	_, err := p.ses.CreateConfigurationSet(ctx, in)
	var exists *types.AlreadyExistsException
	switch {
	case err == nil:
	case errors.As(err, &exists):
		res.Notes = append(res.Notes, "configuration set already existed; reused")
	case unsupported(err):
		res.Notes = append(res.Notes, "this SES endpoint has no configuration sets; the name is still passed on every send")
	default:
		return nil, err
	}
	return res, nil
}

func (p *provisioner) emailIdentity(ctx context.Context, id string, props map[string]any) (*Resource, error) {
	identity, _ := props["EmailIdentity"].(string)
	if identity == "" {
		return nil, fmt.Errorf("EmailIdentity is required")
	}
	res := &Resource{PhysicalID: identity, Attributes: map[string]string{}}
	in := &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(identity)}
	if m, ok := props["ConfigurationSetAttributes"].(map[string]any); ok {
		if cs, ok := m["ConfigurationSetName"].(string); ok {
			in.ConfigurationSetName = aws.String(cs)
		}
	}
	_, err := p.ses.CreateEmailIdentity(ctx, in)
	var exists *types.AlreadyExistsException
	switch {
	case err == nil:
	case errors.As(err, &exists):
		res.Notes = append(res.Notes, "identity already existed; reused")
	case unsupported(err):
		res.Notes = append(res.Notes, "this SES endpoint verifies no identities; any sender is accepted")
	default:
		return nil, err
	}
	return res, nil
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(normalizeJSON(x), normalizeJSON(y))
}

// normalizeJSON makes "5" and 5 equal: SQS echoes maxReceiveCount either way.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			out[k] = normalizeJSON(val)
		}
		return out
	case float64:
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}
