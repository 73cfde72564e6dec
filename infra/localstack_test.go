package infra_test

import (
	"os"
	"regexp"
	"testing"
)

// LocalStack's latest image needs an auth token since 23 March 2026; the
// compose file must name a version that starts without one (docs/local.md).
func TestTheLocalStackImageIsPinnedToOneThatNeedsNoToken(t *testing.T) {
	b, err := os.ReadFile("../localstack/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*image:\s*localstack/localstack:(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no localstack/localstack image with a tag in localstack/docker-compose.yml")
	}
	if tag := string(m[1]); tag != "4.14.0" {
		t.Errorf("LocalStack image %s: want 4.14.0, the last version that runs without an auth token", tag)
	}
}
