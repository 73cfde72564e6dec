// Package awscfg builds the functions' AWS SDK configuration from the
// environment Lambda gives them, and from nothing else.
//
// config.LoadDefaultConfig would do it too, but it links every credential
// source a laptop or a container may need (shared profiles, SSO, STS web
// identity and assume-role, IMDS, ECS, login), with their service clients:
// a fifth of each bootstrap and a share of its init, for code a Lambda
// function never runs. On Lambda the region and the execution role's
// credentials are environment variables; this reads those, and the SDK's
// standard endpoint variables (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>,
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), so the local stack and LocalStack
// work unchanged.
package awscfg

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Load returns the configuration, or an error naming what is missing.
func Load(getenv func(string) string) (aws.Config, error) {
	// Retryer left nil: each service client uses the SDK's standard one.
	cfg := aws.Config{Region: getenv("AWS_REGION")}
	if cfg.Region == "" {
		cfg.Region = getenv("AWS_DEFAULT_REGION")
	}
	var missing []string
	if cfg.Region == "" {
		missing = append(missing, "AWS_REGION")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" {
		missing = append(missing, "AWS_ACCESS_KEY_ID")
	}
	if secret == "" {
		missing = append(missing, "AWS_SECRET_ACCESS_KEY")
	}
	if len(missing) > 0 {
		return aws.Config{}, fmt.Errorf("%s not set: Lambda sets them for the execution role; locally, set them (any non-empty keys for the emulators)", strings.Join(missing, ", "))
	}
	cfg.Credentials = credentials{aws.Credentials{
		AccessKeyID: id, SecretAccessKey: secret, SessionToken: getenv("AWS_SESSION_TOKEN"), Source: "environment",
	}}
	e := endpoints{getenv}
	if !e.ignored() {
		if v := getenv("AWS_ENDPOINT_URL"); v != "" {
			cfg.BaseEndpoint = aws.String(v)
		}
		cfg.ConfigSources = []any{e}
	}
	return cfg, nil
}

// credentials are the execution role's, as Lambda puts them in the
// environment for the life of the execution environment.
type credentials struct{ c aws.Credentials }

func (c credentials) Retrieve(context.Context) (aws.Credentials, error) { return c.c, nil }

// endpoints serves AWS_ENDPOINT_URL_<SERVICE> to the service clients, as
// the config package's EnvConfig does: the service's SDK id in upper case,
// spaces as underscores (DynamoDB Streams: AWS_ENDPOINT_URL_DYNAMODB_STREAMS).
type endpoints struct{ getenv func(string) string }

func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v := e.getenv("AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(sdkID), " ", "_"))
	return v, v != "", nil
}

// GetIgnoreConfiguredEndpoints is the SDK's switch to use none of them.
func (e endpoints) GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error) {
	return e.ignored(), true, nil
}

func (e endpoints) ignored() bool {
	return strings.EqualFold(e.getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true")
}
