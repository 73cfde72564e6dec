package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

type awsSecretSource struct {
	sm  *secretsmanager.Client
	ssm *ssm.Client
}

// NewAWSSecretSource reads secrets from Secrets Manager and SSM Parameter
// Store with the given configuration (endpoints, region, credentials).
func NewAWSSecretSource(cfg aws.Config) SecretSource {
	return &awsSecretSource{sm: secretsmanager.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg)}
}

func (s *awsSecretSource) SecretString(ctx context.Context, arn string) (string, error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", err // the SDK's error names the operation and the cause
	}
	if out.SecretString == nil {
		return "", errors.New("the secret has no SecretString (a binary secret is not supported)")
	}
	return *out.SecretString, nil
}

func (s *awsSecretSource) Parameter(ctx context.Context, name string) (string, error) {
	out, err := s.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", err
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", errors.New("the parameter has no value")
	}
	// Secrets in a plain String parameter are readable by anyone with
	// ssm:GetParameter and are not encrypted at rest: refuse them.
	if t := out.Parameter.Type; t != ssmtypes.ParameterTypeSecureString {
		return "", fmt.Errorf("the parameter is a %s, not a SecureString", t)
	}
	return *out.Parameter.Value, nil
}
