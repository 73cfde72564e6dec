package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// The environment variables LoadSecrets reads, in order of precedence.
const (
	envSecrets          = "WEBHOOK_SECRETS"           // the secrets themselves, for local use
	envSecretsARN       = "WEBHOOK_SECRETS_ARN"       // a Secrets Manager secret holding them
	envSecretsParameter = "WEBHOOK_SECRETS_PARAMETER" // an SSM SecureString parameter holding them
)

// SecretSource fetches a configured value from where the cloud keeps secrets.
type SecretSource interface {
	// SecretString returns the SecretString of a Secrets Manager secret.
	SecretString(ctx context.Context, arn string) (string, error)
	// Parameter returns the decrypted value of an SSM SecureString parameter.
	Parameter(ctx context.Context, name string) (string, error)
}

// LoadSecrets finds the webhook secrets once per cold start: WEBHOOK_SECRETS
// if set, else the Secrets Manager secret named by WEBHOOK_SECRETS_ARN or the
// SSM parameter named by WEBHOOK_SECRETS_PARAMETER, read through cloud. The
// value is in ParseSecrets' format. Setting both cloud variables is an error
// rather than a silent choice.
func LoadSecrets(ctx context.Context, getenv func(string) string, cloud SecretSource) ([]string, error) {
	if s := getenv(envSecrets); s != "" {
		return parseFrom(envSecrets, s)
	}
	arn, param := getenv(envSecretsARN), getenv(envSecretsParameter)
	var (
		from  string
		value string
		err   error
	)
	switch {
	case arn != "" && param != "":
		return nil, fmt.Errorf("webhook: both %s and %s are set; set one", envSecretsARN, envSecretsParameter)
	case arn == "" && param == "":
		return nil, fmt.Errorf("webhook: no secrets configured: set %s (the secrets themselves, for local use), %s (a Secrets Manager secret) or %s (an SSM SecureString parameter)", envSecrets, envSecretsARN, envSecretsParameter)
	case cloud == nil:
		return nil, errors.New("webhook: no SecretSource to read the configured secret with")
	case arn != "":
		from = envSecretsARN
		value, err = cloud.SecretString(ctx, arn)
	default:
		from = envSecretsParameter
		value, err = cloud.Parameter(ctx, param)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: reading %s: %w", from, err)
	}
	return parseFrom(from, value)
}

// Configured reports whether any of the variables LoadSecrets reads is set.
func Configured(getenv func(string) string) bool {
	return getenv(envSecrets) != "" || getenv(envSecretsARN) != "" || getenv(envSecretsParameter) != ""
}

// FromCloud reports whether LoadSecrets reads the secrets from Secrets
// Manager or SSM, where they can change while an instance lives (and so are
// worth reading again); WEBHOOK_SECRETS, in the environment, cannot.
func FromCloud(getenv func(string) string) bool {
	return getenv(envSecrets) == "" && (getenv(envSecretsARN) != "" || getenv(envSecretsParameter) != "")
}

func parseFrom(from, value string) ([]string, error) {
	secrets, err := ParseSecrets(value)
	if err != nil {
		return nil, fmt.Errorf("webhook: the value of %s: %w", from, err)
	}
	return secrets, nil
}

// ParseSecrets splits a configured value into secrets: separated by spaces,
// commas or both ("whsec_a whsec_b", "whsec_a,whsec_b"), or a JSON array of
// strings (`["whsec_a","whsec_b"]`), which is decoded as JSON so escapes such
// as `\/` work. It checks the shape only; NewVerifier checks each secret.
// Errors never quote the value.
func ParseSecrets(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "["):
		var secrets []string
		// json's syntax errors quote the offending character, a piece of a
		// secret perhaps: they are not wrapped.
		if err := json.Unmarshal([]byte(s), &secrets); err != nil {
			return nil, errors.New("starts with [ but is not a JSON array of strings")
		}
		if len(secrets) == 0 {
			return nil, errors.New("no secrets: the JSON array is empty")
		}
		for i, sec := range secrets {
			secrets[i] = strings.TrimSpace(sec)
			if secrets[i] == "" {
				return nil, fmt.Errorf("element %d of the JSON array is empty", i+1)
			}
		}
		return secrets, nil
	case strings.HasPrefix(s, "{"):
		// The Secrets Manager console stores key/value pairs by default.
		return nil, errors.New("is a JSON object; store the secrets as plain text (separated by spaces or commas) or as a JSON array of strings")
	}
	secrets := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(secrets) == 0 {
		return nil, errors.New("no secrets: the value is empty")
	}
	return secrets, nil
}
