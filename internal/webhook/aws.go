package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The two reads are one signed JSON request each, made with the SDK's own
// SigV4 signer rather than the Secrets Manager and SSM service clients: those
// two packages and their schemas were 40% of the command binary and a third
// of its init (docs/cost.md, "Cold start"), for two calls per cold start.
//
// The requests are exactly what the SDK sends (AWS JSON 1.1, X-Amz-Target
// secretsmanager.GetSecretValue and AmazonSSM.GetParameter), to the endpoint
// the SDK would choose: AWS_ENDPOINT_URL_SECRETS_MANAGER or
// AWS_ENDPOINT_URL_SSM, else AWS_ENDPOINT_URL, else the regional endpoint.
type awsSecretSource struct {
	cfg    aws.Config
	signer *v4.Signer
	getenv func(string) string
}

// NewAWSSecretSource reads secrets from Secrets Manager and SSM Parameter
// Store with the given configuration (region, credentials, HTTP client).
func NewAWSSecretSource(cfg aws.Config) SecretSource {
	return &awsSecretSource{cfg: cfg, signer: v4.NewSigner(), getenv: os.Getenv}
}

// awsService is what one of the two services needs to be called.
type awsService struct {
	signingName string // SigV4 service name, also the endpoint's host prefix
	endpointEnv string // the SDK's service-specific endpoint variable
	target      string // X-Amz-Target prefix
}

var (
	secretsManager = awsService{"secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "secretsmanager."}
	parameterStore = awsService{"ssm", "AWS_ENDPOINT_URL_SSM", "AmazonSSM."}
)

// maxSecretResponse bounds what is read of an answer: a secret is at most
// 64 KB, a parameter 8 KB; JSON escaping can double that.
const maxSecretResponse = 256 << 10

// secretCallAttempts is how many times a throttled or failed (5xx, network)
// read is tried, as the SDK's standard retryer would.
const secretCallAttempts = 3

func (s *awsSecretSource) SecretString(ctx context.Context, arn string) (string, error) {
	var out struct {
		SecretString *string
		SecretBinary *string
	}
	if err := s.call(ctx, secretsManager, "GetSecretValue", map[string]any{"SecretId": arn}, &out); err != nil {
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
	if err := s.call(ctx, parameterStore, "GetParameter", map[string]any{"Name": name, "WithDecryption": true}, &out); err != nil {
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

// APIError is an error answer of Secrets Manager or SSM.
type APIError struct {
	Operation string // e.g. "secretsmanager.GetSecretValue"
	Status    int
	Code      string // e.g. "ResourceNotFoundException", "AccessDeniedException"
	Message   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.Operation, e.Status, e.Code, e.Message)
}

func (e *APIError) retryable() bool {
	return e.Status >= 500 || e.Code == "ThrottlingException" || e.Code == "Throttling" || e.Code == "TooManyUpdates"
}

// call makes one signed request, retried on throttling, 5xx and network
// failures, and decodes the answer into out.
func (s *awsSecretSource) call(ctx context.Context, svc awsService, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	endpoint, err := s.endpoint(svc)
	if err != nil {
		return err
	}
	var last error
	for attempt := range secretCallAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (after: %v)", ctx.Err(), last)
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
		}
		var apiErr *APIError
		last = s.once(ctx, svc, op, endpoint, body, out)
		if last == nil || errors.As(last, &apiErr) && !apiErr.retryable() || ctx.Err() != nil {
			return last
		}
	}
	return last
}

func (s *awsSecretSource) once(ctx context.Context, svc awsService, op, endpoint string, body []byte, out any) error {
	name := svc.target + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", name)
	if s.cfg.Credentials == nil {
		return fmt.Errorf("%s: no AWS credentials configured", name)
	}
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("%s: credentials: %w", name, err)
	}
	sum := sha256.Sum256(body)
	if err := s.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), svc.signingName, s.cfg.Region, time.Now()); err != nil {
		return fmt.Errorf("%s: sign: %w", name, err)
	}
	client := s.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSecretResponse+1))
	if err != nil {
		return fmt.Errorf("%s: read the answer: %w", name, err)
	}
	if len(data) > maxSecretResponse {
		return fmt.Errorf("%s: the answer is over %d bytes", name, maxSecretResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(name, resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode the answer: %w", name, err)
	}
	return nil
}

// decodeAPIError reads an AWS JSON 1.1 error: the code in X-Amzn-ErrorType
// or the body's __type (either may carry a namespace before '#' and a
// suffix after ':'), the message in "message" or "Message".
func decodeAPIError(op string, resp *http.Response, data []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(data, &e)
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		code = e.Type
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	msg := e.Message
	if msg == "" {
		msg = e.MessageU
	}
	return &APIError{Operation: op, Status: resp.StatusCode, Code: code, Message: msg}
}

// endpoint is where the SDK would send the service's requests.
func (s *awsSecretSource) endpoint(svc awsService) (string, error) {
	for _, k := range []string{svc.endpointEnv, "AWS_ENDPOINT_URL"} {
		if v := s.getenv(k); v != "" {
			return v, nil
		}
	}
	if s.cfg.BaseEndpoint != nil && *s.cfg.BaseEndpoint != "" {
		return *s.cfg.BaseEndpoint, nil
	}
	region := s.cfg.Region
	if region == "" {
		return "", fmt.Errorf("%s: no AWS region configured (AWS_REGION)", svc.signingName)
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://" + svc.signingName + "." + region + "." + suffix, nil
}
