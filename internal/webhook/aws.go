package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/awsjson"
)

// The two reads are one signed JSON request each (internal/awsjson), made
// with the SDK's own SigV4 signer rather than the Secrets Manager and SSM
// service clients: those two packages and their schemas were 40% of the
// command binary and a third of its init (docs/cost.md, "Cold start"), for
// two calls per cold start.
//
// The requests are exactly what the SDK sends (AWS JSON 1.1, X-Amz-Target
// secretsmanager.GetSecretValue and AmazonSSM.GetParameter), to the endpoint
// the SDK would choose: AWS_ENDPOINT_URL_SECRETS_MANAGER or
// AWS_ENDPOINT_URL_SSM, else AWS_ENDPOINT_URL, else the regional endpoint.
type awsSecretSource struct{ c *awsjson.Client }

// NewAWSSecretSource reads secrets from Secrets Manager and SSM Parameter
// Store with the given configuration (region, credentials, HTTP client).
func NewAWSSecretSource(cfg aws.Config) SecretSource { return &awsSecretSource{c: awsjson.New(cfg)} }

// maxSecretResponse bounds what is read of an answer: a secret is at most
// 64 KB, a parameter 8 KB; JSON escaping can double that.
const maxSecretResponse = 256 << 10

var (
	secretsManager = awsjson.Service{SigningName: "secretsmanager", SDKID: "Secrets Manager", TargetPrefix: "secretsmanager.", JSONVersion: "1.1", MaxResponse: maxSecretResponse}
	parameterStore = awsjson.Service{SigningName: "ssm", SDKID: "SSM", TargetPrefix: "AmazonSSM.", JSONVersion: "1.1", MaxResponse: maxSecretResponse}
)

func (s *awsSecretSource) SecretString(ctx context.Context, arn string) (string, error) {
	var out struct {
		SecretString *string
		SecretBinary *string
	}
	if err := s.c.Call(ctx, secretsManager, "GetSecretValue", map[string]any{"SecretId": arn}, &out); err != nil {
		return "", err
	}
	if out.SecretString == nil {
		return "", errors.New("the secret has no SecretString (a binary secret is not supported)")
	}
	return *out.SecretString, nil
}

func (s *awsSecretSource) Parameter(ctx context.Context, name string) (string, error) {
	var out struct {
		Parameter *struct {
			Type  string
			Value *string
		}
	}
	if err := s.c.Call(ctx, parameterStore, "GetParameter", map[string]any{"Name": name, "WithDecryption": true}, &out); err != nil {
		return "", err
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", errors.New("the parameter has no value")
	}
	// Secrets in a plain String parameter are readable by anyone with
	// ssm:GetParameter and are not encrypted at rest: refuse them.
	if t := out.Parameter.Type; t != "SecureString" {
		return "", fmt.Errorf("the parameter is a %s, not a SecureString", t)
	}
	return *out.Parameter.Value, nil
}
