package consumerfn

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

// The consumer renders as the command function does: it loads the same
// EMAIL_TEMPLATES_DIR at cold start and stops on a broken folder, naming
// the file and line.
func TestBuildLoadsTheTemplateFolder(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg := aws.Config{Region: "us-east-1"}
	if c, err := Build(context.Background(), cfg, env(map[string]string{"TABLE_NAME": "t"})); err != nil || c == nil {
		t.Fatalf("Build = %v, %v", c, err)
	}
	if _, err := Build(context.Background(), cfg, env(map[string]string{"TABLE_NAME": "t", "EMAIL_TEMPLATES_DIR": templatedir.Write(t, templatedir.User(t))})); err != nil {
		t.Fatal(err)
	}
	dir := templatedir.Write(t, templatedir.Broken(t))
	_, err := Build(context.Background(), cfg, env(map[string]string{"TABLE_NAME": "t", "EMAIL_TEMPLATES_DIR": dir}))
	if want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, templatedir.BrokenFile), templatedir.BrokenLine); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Build = %v, want it to name %s", err, want)
	}
}
